"""`lepton train`: train a model from a CSV/Parquet file or an image folder."""

from __future__ import annotations

import argparse

HELP = "train a model from a data file or image folder (--model auto picks one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="a .csv/.tsv/.parquet file or an image folder "
                        "(<label>/<image> or train|val|test/<label>/<image>)")
    parser.add_argument("--target", help="the column to predict (tables only)")
    parser.add_argument("--model", default="auto",
                        help="auto (default) or a preset: linear, mlp, mlp-small, mlp-large, "
                        "text-tfidf, text-embedding, text-bilstm, cnn-small, cnn")
    parser.add_argument("--config", help="a YAML file with data, target, model, "
                        "preprocessing, split and train sections (flags win)")
    parser.add_argument("--out", help="the artifact directory to write (default: model)")
    parser.add_argument("--name", help="register the model under this name "
                        "(default: the --out folder's name)")
    parser.add_argument("--epochs", type=int, help="at most this many epochs")
    parser.add_argument("--batch-size", type=int, help="override the batch size")
    parser.add_argument("--seed", type=int, help="split and shuffle seed (default 42)")
    parser.add_argument("--time-limit", type=float, help="stop training after this many seconds")
    parser.add_argument("--no-register", action="store_true",
                        help="do not record the model in the registry")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from lepton.errors import ConfigError
    from lepton.train.run import load_config, train

    cfg = load_config(args.config)
    data = args.data or cfg.get("data")
    if not data:
        raise ConfigError("No training data given", fix="pass --data PATH (or `data:` in --config)")
    out = args.out or cfg.get("out") or "model"
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *_a, **_k: print(f"warning: {msg}", file=sys.stderr)
        result = train(data, args.target, model=args.model, config=cfg, out=out,
                       name=args.name or cfg.get("name"), epochs=args.epochs,
                       batch_size=args.batch_size, seed=args.seed, time_limit=args.time_limit,
                       register=not args.no_register, verbose=0 if args.quiet else "auto",
                       log=say)
    m = result.metrics
    keys = [k for k in ("accuracy", "f1", "roc_auc", "r2", "rmse", "mae", "loss") if k in m]
    print("  ".join(f"{k} {m[k]:.4f}" for k in keys))
    print(f"model:  {result.path}")
    print(f"report: {result.report}")
    if result.registered:
        print(f"registered: {result.registered['name']}:{result.registered['version']}")
    print(f"time:   {result.seconds:.1f} s")
    return 0
