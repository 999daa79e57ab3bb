"""`lepton demo`: run the whole loop offline on the bundled MNIST."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

HELP = "train, evaluate, register, serve and query a CNN on the bundled MNIST (~1 minute)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("lepton-demo"),
                        help="where to write the artifact and report (default ./lepton-demo)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the initial weights and the shuffling (default 0): "
                             "one seed, one accuracy on a given machine")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 training digits and 1 epoch: a smoke test")
    parser.add_argument("--loop", action="store_true",
                        help="after monitoring, send true labels for the inverted digits and "
                             "retrain: a challenger is promoted only if it surely wins")
    parser.add_argument("--keep-serving", action=argparse.BooleanOptionalAction, default=None,
                        help="keep the server up until Ctrl+C (default: when run in a terminal)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lepton import demo
    from lepton.errors import ConfigError

    if args.epochs < 1:
        raise ConfigError("--epochs must be at least 1", received=f"--epochs {args.epochs}")
    console = Console()
    samples, epochs = (5000, 1) if args.quick else (None, args.epochs)
    data = demo.load_mnist(samples)
    _, (x_test, y_test) = data
    seed = demo.SEED if args.seed is None else args.seed
    result = demo.train_mnist(args.out, data, epochs=epochs, seed=seed, say=console.print)
    console.print(f"[bold]Test accuracy: {result.accuracy:.2%} ({result.precision})[/bold] "
                  f"on {len(y_test):,} MNIST test digits ({result.seconds:.0f} s)")
    report = result.report
    entry = demo.register(result.artifact)
    keep = args.keep_serving
    if keep is None:
        keep = sys.stdin.isatty() and sys.stdout.isatty()

    def while_serving(served: demo.Served) -> None:
        _print_summary(console, result, report, served)
        if keep:
            console.print(f"\nServing [bold]mnist@production[/bold] at {served.url} "
                          "(Ctrl+C to stop). Try:")
            console.print(demo.curl_line(served.url, served.sample_png), soft_wrap=True,
                          highlight=False, markup=False)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                console.print("Stopping the server")

    demo.serve_and_try(entry, args.out, x_test, y_test, while_serving,
                       loop=data if args.loop else None)
    if not keep:
        console.print("The demo server has stopped. Serve the model again with "
                      "`lepton serve mnist@production`, then try:")
        console.print(demo.curl_line("http://127.0.0.1:8000", args.out.resolve() / "digit.png"),
                      soft_wrap=True, highlight=False, markup=False)
    return 0


def _print_summary(console: Any, result: Any, report: Path, served: Any) -> None:
    from rich.table import Table

    table = Table(title=f"Predictions served at {served.url}")
    for column in ("prediction id", "true", "predicted", "confidence"):
        table.add_column(column)
    for prediction, truth in zip(served.predictions, served.truth):
        label = str(prediction["label"])
        table.add_row(prediction["id"], str(truth), label,
                      f"{prediction['probabilities'][label]:.1%}")
    console.print(table)
    console.print(f"Feedback recorded for prediction {served.predictions[0]['id']} "
                  f"(true label {served.truth[0]}).")
    if served.monitoring is not None:
        _print_monitoring(console, served.monitoring)
    where = Table(show_header=False, title="Where to look", title_justify="left")
    where.add_row("model artifact", str(result.artifact.resolve()))
    where.add_row("report", str(report.resolve()))
    where.add_row("registry", f"{served.ref}, promoted to production (lepton models show mnist)")
    decision = served.monitoring.retrain if served.monitoring is not None else None
    if decision is not None and decision["promoted"]:
        where.add_row("retrained", f"mnist:{decision['challenger_version']} is production now "
                                   "(promoted by lepton retrain; lepton models show mnist)")
    where.add_row("feedback", "lepton feedback export --model mnist")
    if served.monitoring is not None:
        where.add_row("monitor page", str(served.monitoring.page))
        where.add_row("monitor", "lepton monitor mnist@production --window 200")
    console.print(where)
    console.print(f"Model artifact: {result.artifact.resolve()}", soft_wrap=True)
    console.print(f"Report: {report.resolve()}", soft_wrap=True)


def _print_monitoring(console: Any, watched: Any) -> None:
    """The monitor's table over the demo's two windows, then the retrain decision."""
    from lepton.monitor.table import windows_table

    table = windows_table(watched.result, watched.traffic)
    table.title = f"{table.title}, {watched.seconds:.1f} s"
    console.print(table)
    console.print(f"Monitor page: {watched.page}", soft_wrap=True)
    if watched.retrain is not None:
        _print_retrain(console, watched.retrain)


def _print_retrain(console: Any, decision: dict[str, Any]) -> None:
    """Champion and challenger on the same rows, the interval, and the decision."""
    from rich.markup import escape
    from rich.table import Table

    data = decision.get("data") or {}
    table = Table(title=f"lepton retrain: v{decision['champion_version']} vs challenger "
                        f"v{decision.get('challenger_version')}, +"
                        f"{data.get('production_train', 0)} labelled inverted digits "
                        f"({decision.get('seconds', 0):.0f} s)")
    for column in ("rows scored", "rows", "champion", "challenger", "gain (95% interval)"):
        table.add_column(column)
    names = {"production_holdout": "inverted holdout", "original_test": "original test"}
    for key, label in names.items():
        c = (decision.get("comparison") or {}).get(key) or {}
        if c.get("rows"):
            table.add_row(label, str(c["rows"]), f"{c['champion']:.1f}%",
                          f"{c['challenger']:.1f}%", f"{c['difference']:+.1f} points "
                          f"[{c['low']:+.1f}, {c['high']:+.1f}]")
    console.print(table)
    verdict = "[bold green]promoted[/bold green]" if decision["promoted"] else \
        "[bold]not promoted[/bold]"
    console.print(f"Challenger {verdict}: {escape(decision.get('reason', ''))}",
                  soft_wrap=True)
