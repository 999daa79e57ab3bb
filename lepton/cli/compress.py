"""`lepton compress MODEL --data HELDOUT`: INT8, pruned, distilled and ONNX variants, each
measured against the original, gated and registered as new versions of the model."""

from __future__ import annotations

import argparse

HELP = "make INT8 / pruned / distilled / ONNX variants, measure and gate each, register them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="artifact directory, or registry name / name:VERSION / name@ALIAS")
    parser.add_argument("--data", required=True,
                        help="held-out data: a table, an image folder, an .npz (x, y) or "
                             "mnist[:test][:ROWS]")
    parser.add_argument("--quantize", nargs="?", const="auto", default=None,
                        choices=["auto", "static", "dynamic"],
                        help="INT8 through ONNX Runtime (no value: chosen by layer type)")
    parser.add_argument("--calibration", help="calibration sample for static INT8 (same forms "
                        "as --data; default: the training data, when the artifact names it)")
    parser.add_argument("--prune", type=float, metavar="AMOUNT",
                        help="structured pruning: the fraction of channels/units removed")
    parser.add_argument("--fine-tune-epochs", type=int, default=1,
                        help="epochs of fine-tuning after pruning / of distillation")
    parser.add_argument("--distill", action="store_true", help="distill a smaller student")
    parser.add_argument("--distill-epochs", type=int, default=3,
                        help="epochs of distillation (default 3)")
    parser.add_argument("--student", default="half", metavar="half|PRESET",
                        help="the student for --distill: 'half' (the teacher at half width, "
                             "the default) or a lepton train preset that fits the teacher's "
                             "input (mlp-small, cnn-small, text-embedding...)")
    parser.add_argument("--train-data", help="training data for fine-tuning, distillation "
                        "and calibration (default: what the artifact names)")
    parser.add_argument("--export", choices=["onnx"], help="also export each variant to ONNX")
    parser.add_argument("--max-loss", type=float, default=0.5,
                        help="reject variants losing more points than this (default 0.5)")
    parser.add_argument("--keep-rejected", action="store_true",
                        help="register rejected variants too")
    parser.add_argument("--no-register", action="store_true", help="do not register variants")
    parser.add_argument("--name", help="registry name for the variants (default: the model's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads to measure with, as served (default 1)")
    parser.add_argument("--out", help="where the variants and the table go "
                        "(default ./<name>-compressed)")


def run(args: argparse.Namespace) -> int:
    import logging

    from rich.console import Console
    from rich.table import Table

    from lepton.compress.run import compress
    from lepton.compress.table import COLUMNS, cells
    from lepton.errors import ConfigError

    if args.threads < 1 or args.fine_tune_epochs < 0:
        raise ConfigError("--threads must be >= 1 and --fine-tune-epochs >= 0",
                          received=f"--threads {args.threads} --fine-tune-epochs "
                                   f"{args.fine_tune_epochs}")
    logging.getLogger().setLevel(logging.ERROR)  # ONNX Runtime's quantizer logs to root
    console = Console()
    if not any((args.quantize, args.prune is not None, args.distill, args.export)):
        args.quantize, args.export = "auto", "onnx"
        console.print("No variant asked for: exporting to ONNX and quantizing (auto)")
    result = compress(args.model, args.data, quantize=args.quantize,
                      calibration=args.calibration, prune=args.prune,
                      fine_tune_epochs=args.fine_tune_epochs, distill=args.distill,
                      distill_epochs=args.distill_epochs,
                      student=args.student, export=bool(args.export), max_loss=args.max_loss,
                      keep_rejected=args.keep_rejected, out=args.out, threads=args.threads,
                      train_data=args.train_data, name=args.name,
                      register=not args.no_register, say=console.print)
    table = Table(title=f"lepton compress ({args.threads} thread"
                        f"{'s' if args.threads > 1 else ''}; ratios to the original)")
    for column in COLUMNS:
        table.add_column(column)
    for row in result.table:
        table.add_row(*cells(row, result.recommended))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"Recommended: [bold]{result.recommended}[/bold]. Table: "
                  f"{result.out / 'compress.md'}, report: {result.out / 'report.html'}")
    return 0
