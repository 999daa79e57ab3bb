"""`lepton demo`: run the whole loop offline on the bundled MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train, evaluate, save and serve a CNN on the bundled MNIST, offline (~1 minute)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("lepton-demo"),
                        help="where to write the artifact and report (default ./lepton-demo)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="5,000 training digits and 1 epoch: a smoke test")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lepton.demo import train_mnist
    from lepton.errors import ConfigError

    if args.epochs < 1:
        raise ConfigError("--epochs must be at least 1", received=f"--epochs {args.epochs}")
    console = Console()
    samples, epochs = (5000, 1) if args.quick else (None, args.epochs)
    result = train_mnist(args.out, epochs=epochs, samples=samples, say=console.print)
    console.print(f"[bold]Test accuracy: {result.accuracy:.2%}[/bold] "
                  f"(10,000 MNIST test digits, {result.seconds:.0f} s)")
    console.print(f"Model artifact: {result.artifact.resolve()}")
    return 0
