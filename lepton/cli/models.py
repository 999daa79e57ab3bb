"""``lepton models``: register, list, show, promote, history, delete, gc (the model registry)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "manage registered models: register, list, show, promote, history, delete"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("register", help="copy an artifact into the registry as a new version")
    p.add_argument("path", help="artifact directory (or .zip/.tar.gz of one) from model.save")
    p.add_argument("--name", required=True, help="model name, e.g. fraud-detector")
    p.add_argument("--version", type=int, help="explicit version number (default: next)")
    p.add_argument("--description", default="", help="free text kept with the version")
    p.add_argument("--promote", metavar="ALIAS", help="also point this alias (e.g. staging) at it")
    _json_flag(p)

    p = sub.add_parser("list", help="list registered models")
    _json_flag(p)

    p = sub.add_parser("show", help="show a model (NAME) or one version (NAME:V, NAME@ALIAS)")
    p.add_argument("ref", metavar="NAME[:V|@ALIAS]")
    _json_flag(p)

    p = sub.add_parser("promote", help="point production, staging or any alias at a version")
    p.add_argument("ref", metavar="NAME:V")
    p.add_argument("--to", required=True, metavar="ALIAS", help="production | staging | ALIAS")
    p.add_argument("--reason", default="", help="why, kept in the history")
    _json_flag(p)

    p = sub.add_parser("unalias", help="remove an alias (e.g. retire staging)")
    p.add_argument("name")
    p.add_argument("--alias", required=True)
    p.add_argument("--reason", default="")

    p = sub.add_parser("history", help="who moved which alias when; --at for a point in time")
    p.add_argument("name")
    p.add_argument("--alias", help="only this alias")
    p.add_argument("--at", metavar="TIME", help="ISO time: print the version the alias had then")
    _json_flag(p)

    p = sub.add_parser("delete", help="delete a version (NAME:V) or a whole model (NAME)")
    p.add_argument("ref", metavar="NAME[:V]")
    p.add_argument("--force", action="store_true", help="also when an alias points at it")

    p = sub.add_parser("gc", help="remove artifact copies left behind by crashed registrations")
    p.add_argument("--older-than", type=float, default=3600.0, metavar="SECONDS")


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for scripts)")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[str("" if r.get(c) is None else r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _run_cost(reg: Any, version: dict[str, Any]) -> float | None:
    """The training run's cost (``cost_usd`` on its run record), if it was recorded."""
    from lepton.errors import NotFoundError

    if not version.get("run_id"):
        return None
    try:
        return reg.store.get_run(version["run_id"]).get("cost_usd")
    except NotFoundError:  # the run was deleted; the version stays
        return None


def _cost_text(cost: float | None) -> str:
    return "" if cost is None else f"${cost:.6f}"


def _version_line(v: dict[str, Any]) -> dict[str, Any]:
    metrics = v.get("metrics") or {}
    shown = ", ".join(f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}"
                      for k, val in list(metrics.items())[:3])
    return {**v, "aliases": ",".join(v["aliases"]), "metrics": shown}


def run(args: argparse.Namespace) -> int:
    from lepton.errors import ConfigError
    from lepton.registry import Registry, parse_ref

    reg = Registry()
    action = args.action
    if action == "register":
        version = reg.register(args.path, args.name, version=args.version,
                               description=args.description)
        if args.promote:
            reg.promote(args.name, version["version"], args.promote, reason="registered")
            version = reg.get(args.name, version["version"])
        if args.json:
            _print_json(version)
        else:
            print(f"registered {version['name']}:{version['version']} -> {version['path']}")
    elif action == "list":
        models = reg.list_models()
        if args.json:
            _print_json(models)
        else:
            _table([{**m, "aliases": ", ".join(f"{a}={v}" for a, v in m["aliases"].items())}
                    for m in models],
                   ["name", "versions", "latest_version", "aliases", "created_at"])
    elif action == "show":
        name, version, alias = parse_ref(args.ref)
        if version is None and alias is None:
            info: Any = {"name": name, "aliases": reg.aliases(name),
                         "versions": [{**v, "training_cost_usd": _run_cost(reg, v)}
                                      for v in reg.list_versions(name)]}
            if args.json:
                _print_json(info)
            else:
                print(f"model {name}")
                _table([{**_version_line(v), "cost": _cost_text(v["training_cost_usd"])}
                        for v in info["versions"]],
                       ["version", "aliases", "metrics", "cost", "created_at", "created_by"])
        else:
            entry = reg.resolve(args.ref)
            _print_json({**entry, "training_cost_usd": _run_cost(reg, entry)})
    elif action == "promote":
        name, version, _ = parse_ref(args.ref)
        if version is None:
            raise ConfigError("promote needs an explicit version", expected="NAME:VERSION",
                              received=args.ref, fix=f"lepton models promote {name}:3 --to "
                              f"{args.to}")
        event = reg.promote(name, version, args.to, reason=args.reason)
        if args.json:
            _print_json(event)
        elif event["changed"]:
            was = event["from_version"]
            print(f"{name}@{args.to} -> {version}" + (f" (was {was})" if was else ""))
        else:
            print(f"{name}@{args.to} is already {version}")
    elif action == "unalias":
        reg.remove_alias(args.name, args.alias, reason=args.reason)
        print(f"removed {args.name}@{args.alias}")
    elif action == "history":
        if args.at:
            if not args.alias:
                raise ConfigError("--at needs --alias", fix="e.g. --alias production --at "
                                  "2026-03-03T12:00:00Z")
            version = reg.version_at(args.name, args.alias, args.at)
            print(json.dumps(version) if args.json else
                  f"{args.name}@{args.alias} at {args.at}: "
                  + (str(version) if version is not None else "none"))
            return 0
        events = reg.history(args.name, args.alias)
        if args.json:
            _print_json(events)
        else:
            _table(events, ["at", "alias", "from_version", "to_version", "actor", "reason"])
    elif action == "delete":
        name, version, alias = parse_ref(args.ref)
        if alias is not None:
            raise ConfigError("delete takes NAME or NAME:VERSION", received=args.ref)
        deleted = reg.delete(name, version, force=args.force)
        print(f"deleted {name} version(s) {', '.join(map(str, deleted)) or '(none)'}")
    elif action == "gc":
        for path in reg.gc(args.older_than):
            print(f"removed {path}")
    return 0
