"""``lepton traffic``: set, show, pause, resume or abort a model's traffic experiment (A/B
split, canary, shadow). The experiment is stored in the Lepton store; a server serving the
model picks a change up within a second. ``--url`` also asks that server: ``set`` waits until
it routes by the new revision, ``show`` adds its live per-arm figures."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

HELP = "A/B, canary and shadow traffic between versions: set, show, pause, resume, abort"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("set", help="start or change the model's experiment")
    p.add_argument("model")
    p.add_argument("--split", metavar="ARM=PCT,...", help="weights by version or alias, sum 100")
    p.add_argument("--canary", metavar="ARM", help="step this version or alias up to 100 %%")
    p.add_argument("--shadow", metavar="ARM", help="mirror requests to this version (never "
                                                   "returned)")
    p.add_argument("--champion", metavar="ARM", help="the arm others are compared with "
                                                     "(default: the split's first, else "
                                                     "production)")
    p.add_argument("--name", help="experiment name (default: the model's)")
    p.add_argument("--steps", help="canary steps in percent (default 5,25,50,100)")
    p.add_argument("--step-s", type=float, help="seconds per canary step (default 60)")
    p.add_argument("--max-error-rate", type=float, help="canary guardrail (default 0.01)")
    p.add_argument("--slo-p99-ms", type=float, help="canary p99 guardrail (default 500)")
    p.add_argument("--min-requests", type=int, help="canary requests per step before it is "
                                                    "judged (default 50)")
    p.add_argument("--min-labels", type=int, help="feedback labels per version before the "
                                                  "accuracy test is read (default 30)")
    p.add_argument("--delta", type=float, help="accuracy (or agreement) drop the test must "
                                               "detect (default 0.05)")
    _server(p)
    p = sub.add_parser("show", help="the experiment, its decisions and evidence")
    p.add_argument("model")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    _server(p)
    for action, text in (("pause", "freeze the weights; the canary stops deciding"),
                         ("resume", "let a paused experiment go on"),
                         ("abort", "end it: every request to the champion")):
        p = sub.add_parser(action, help=text)
        p.add_argument("model")
        _server(p)


def _server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a server to ask (e.g. http://127.0.0.1:8000)")
    parser.add_argument("--token", default=None, help="its bearer token (default $LEPTON_TOKEN)")
    parser.add_argument("--ca-bundle", default=None, help="CA certificates for an https URL")


def _live(args: argparse.Namespace) -> dict[str, Any] | None:
    """The server's routing (``GET /v1/traffic``), or None without --url; unreachable raises
    ServerUnavailableError naming the URL."""
    if not args.url:
        return None
    from lepton.client import Client
    from lepton.serve.auth import resolve_token

    with Client(args.url, token=resolve_token(args.token), timeout=5.0,
                ca_bundle=args.ca_bundle) as client:
        return client.traffic()


def run(args: argparse.Namespace) -> int:
    from lepton.store import Store, _traffic

    if args.url:
        _live(args)  # an unreachable server is said before anything is written
    with Store.open() as store:
        if args.action == "set":
            from lepton.serve.experiment import set_experiment

            steps = None if args.steps is None else [float(s) for s in args.steps.split(",")]
            exp = set_experiment(store, args.model, name=args.name, split=args.split,
                                 canary=args.canary, shadow=args.shadow, champion=args.champion,
                                 steps=steps, step_s=args.step_s,
                                 max_error_rate=args.max_error_rate, slo_p99_ms=args.slo_p99_ms,
                                 min_requests=args.min_requests, min_labels=args.min_labels,
                                 delta=args.delta)
        elif args.action == "show":
            exp = _traffic.current(store, args.model)
            exp["decisions"] = _traffic.decisions(store, exp["id"])
            exp["assignments"] = _traffic.assignments(store, exp["name"])
            exp["live"] = (_live(args) or {}).get(args.model) if args.url else None
            if args.json:
                print(json.dumps(exp, indent=2, default=str))
            else:
                _print(exp)
            return 0
        else:
            state = {"pause": "paused", "resume": "running", "abort": "aborted"}[args.action]
            allowed = {"pause": ("running",), "resume": ("paused",),
                       "abort": ("running", "paused")}[args.action]
            exp = _traffic.set_state(store, args.model, state, allowed=allowed)
    weights = ", ".join(f"{a}={w:g}" for a, w in exp["spec"]["arms"].items())
    print(f"lepton traffic: {args.model} experiment '{exp['name']}' ({exp['kind']}) "
          f"{exp['state']}, revision {exp['revision']}: {weights}")
    if args.url:
        _wait(args, exp)
    return 0


def _wait(args: argparse.Namespace, exp: dict[str, Any], timeout_s: float = 5.0) -> None:
    """Until the server routes by this revision (it polls every 0.25 s)."""
    from lepton.errors import ConflictError

    started = time.monotonic()
    while True:
        live = (_live(args) or {}).get(args.model) or {}
        if live.get("error"):
            raise ConflictError("The server did not apply the experiment",
                                received=live["error"])
        if live.get("revision", 0) >= exp["revision"]:
            print(f"lepton traffic: {args.url} routes by it "
                  f"({time.monotonic() - started:.2f} s)")
            return
        if time.monotonic() - started > timeout_s:
            raise ConflictError("The server has not picked the experiment up",
                                expected=f"revision {exp['revision']} within {timeout_s:g} s",
                                received=f"revision {live.get('revision')}",
                                fix="check that this server serves the model from this store")
        time.sleep(0.1)


def _print(exp: dict[str, Any]) -> None:
    spec = exp["spec"]
    print(f"{exp['model']}: experiment '{exp['name']}' ({exp['kind']}), {exp['state']}, "
          f"revision {exp['revision']}, champion {spec['champion']}")
    for arm, weight in spec["arms"].items():
        logged = exp["assignments"].get(arm, 0)
        print(f"  {arm:<16} {weight:6.2f} %   {logged} logged predictions")
    if spec.get("shadow"):
        print(f"  shadow: {spec['shadow']}")
    if spec.get("canary"):
        c = spec["canary"]
        steps = " -> ".join(f"{s:g}" for s in c["steps"])
        print(f"  canary {c['arm']}: steps {steps} %, at step {c['step'] + 1}, "
              f"{c['step_s']:g} s each; promotes {c['promote_to']}")
    for d in exp["decisions"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["at"]))
        q = d["evidence"].get("quality") or {}
        print(f"  {when}  {d['action']:<8} {d['reason']}  [quality {q.get('mode')}: "
              f"{q.get('verdict')}]")
    live = exp.get("live")
    if live:
        for arm in live.get("arms", []):
            print(f"  live {arm['arm']}: v{arm['version']} {arm['weight']:g} %, "
                  f"{arm['requests']} requests, {arm['errors']} errors, p99 {arm['p99_ms']} ms")
        for key in ("shadow", "agreement"):
            if live.get(key):
                print(f"  live {key}: {live[key]}")
