"""``lepton monitor MODEL``: drift and quality of a served model, window by window."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "drift and quality of a model's logged traffic against its training reference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="NAME, NAME:VERSION or NAME@ALIAS")
    parser.add_argument("--since", help="only traffic after this (24h, 7d, ISO time)")
    parser.add_argument("--window", help="rows per window (500) or a duration (1h)")
    parser.add_argument("--reference", help="training data (or a profile .json) for artifacts "
                                            "without a reference profile")
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--html", metavar="FILE", nargs="?", const="monitor.html",
                        help="write a self-contained HTML page (default monitor.html)")
    parser.add_argument("--no-save", action="store_true", help="do not store the reports")


def run(args: argparse.Namespace) -> int:
    from lepton.monitor.run import monitor

    result = monitor(args.model, since=args.since, window=args.window,
                     reference=args.reference, save=not args.no_save)
    if args.html:
        from lepton.monitor.page import save_page

        print(f"wrote {save_page(result, args.html)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    from rich.console import Console

    from lepton.monitor.table import windows_table

    summary, console = result["summary"], Console()
    console.print(f"{result['model']}:{result['version']}: {summary['rows']} predictions in "
                  f"{summary['windows']} window(s)")
    console.print(windows_table(result))
    unknown = sum(w.get("unknown_feedback") or 0 for w in result["windows"])
    if unknown:
        console.print(f"{unknown} feedback label(s) for unknown prediction ids")
    return 0
