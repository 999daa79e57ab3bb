"""`lepton evaluate`: metrics of a saved model on labelled data (a table or an image folder)."""

from __future__ import annotations

import argparse

HELP = "evaluate a saved model on labelled data (table for people, --json for machines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="the artifact directory")
    parser.add_argument("--data", required=True,
                        help="a table with the target column, or an image folder "
                        "(its test/ split when it has one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of metrics")
    parser.add_argument("--report", metavar="FILE", help="also write an HTML report here")
    parser.add_argument("--runtime", choices=["torch", "onnxruntime"], default=None,
                        help="run on this runtime instead of the one the artifact names")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import warnings

    from lepton.evaluate.run import evaluate_path

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *_a, **_k: print(f"warning: {msg}", file=sys.stderr)
        metrics = evaluate_path(args.model, args.data, report=args.report,
                                runtime=args.runtime)
    scalars = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    if args.json:
        print(json.dumps({**scalars, "confusion_matrix": metrics.get("confusion_matrix")}))
        return 0
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{Path(args.model).name} on {Path(args.data).name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in scalars.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    if args.report:
        print(f"report: {args.report}")
    return 0
