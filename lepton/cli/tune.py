"""`lepton tune`: search models and training settings with Optuna; the best becomes a model."""

from __future__ import annotations

import argparse

HELP = "search models and settings with Optuna (processes, pruning); the best becomes a model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a .csv/.tsv/.parquet file or an image "
                        "folder (as for lepton train)")
    parser.add_argument("--target", help="the column to predict (tables only)")
    parser.add_argument("--space", help="a YAML search space (default: one per data kind)")
    parser.add_argument("--trials", type=int, default=20,
                        help="completed + pruned trials the study should hold (default 20)")
    parser.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, each with cores/jobs threads (default 1)")
    parser.add_argument("--storage", help="postgresql://... to share a study across machines "
                        "(default: a journal file in --out)")
    parser.add_argument("--study", help="study name; the same name resumes (default: the "
                        "data file's name)")
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    parser.add_argument("--metric", default="val_loss",
                        help="validation metric to optimise: val_loss (default), val_accuracy...")
    parser.add_argument("--out", default="tuned", help="folder for the study, the best model "
                        "(model/) and report.html (default: tuned)")
    parser.add_argument("--seed", type=int, default=42, help="split and sampler seed")
    parser.add_argument("--name", help="register the best model under this name "
                        "(default: the study name)")
    parser.add_argument("--no-register", action="store_true",
                        help="do not record the model in the registry")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from lepton.tune.api import tune

    say = (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *_a, **_k: print(f"warning: {msg}", file=sys.stderr)
        result = tune(args.data, args.target, space=args.space, trials=args.trials,
                      timeout=args.timeout, jobs=args.jobs, storage=args.storage,
                      study=args.study, pruner=args.pruner, metric=args.metric, out=args.out,
                      seed=args.seed, name=args.name, register=not args.no_register, log=say)
    n = result.counts
    print(f"best trial {result.best_trial}: {result.best_value:.4f} {result.best_params}")
    print(f"trials: {n['complete']} complete, {n['pruned']} pruned, {n['fail']} failed")
    m = result.metrics
    print("  ".join(f"{k} {m[k]:.4f}" for k in ("accuracy", "f1", "roc_auc", "r2", "rmse")
                    if k in m))
    print(f"model:  {result.path}")
    print(f"report: {result.report}")
    if result.registered:
        print(f"registered: {result.registered['name']}:{result.registered['version']}")
    print(f"time:   {result.seconds:.1f} s")
    return 0
