"""`lepton predict`: apply a saved model (and its saved preprocessing) to a file or folder."""

from __future__ import annotations

import argparse

HELP = "predict with a saved model on a table or an image folder, written to --out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="the artifact directory")
    parser.add_argument("--data", required=True, help="a table file or a folder of images")
    parser.add_argument("--out", required=True,
                        help="where to write predictions (.csv, .tsv, .parquet or .jsonl)")
    parser.add_argument("--keep-columns", action="store_true",
                        help="copy the input columns into the output (tables)")
    parser.add_argument("--runtime", choices=["torch", "onnxruntime"], default=None,
                        help="run on this runtime instead of the one the artifact names")


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from lepton.artifact.predict_files import predict_path

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *_a, **_k: print(f"warning: {msg}", file=sys.stderr)
        n, out = predict_path(args.model, args.data, args.out, keep_columns=args.keep_columns,
                              runtime=args.runtime)
    print(f"{n} predictions written to {out}")
    return 0
