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
                        "text-tfidf, text-embedding, text-bilstm, cnn-small, cnn; or a "
                        "pretrained backbone to fine-tune: mobilenetv2, resnet18, resnet34, "
                        "resnet50, vgg16 (with --weights)")
    parser.add_argument("--weights", help="the backbone's weights: a .safetensors file in "
                        "torchvision's key layout (default: $LEPTON_HOME/weights/<name>."
                        "safetensors; with --model auto, used for small image folders)")
    parser.add_argument("--image-size", type=int, help="resize images to N x N pixels "
                        "(a pretrained backbone's default: 224 on a small image set)")
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
    parser.add_argument("--nproc", type=int, help="train in N processes on this machine "
                        "(torch.distributed; --batch-size is then the global batch)")
    parser.add_argument("--nnodes", type=int, help="machines taking part (with --nproc)")
    parser.add_argument("--node-rank", type=int, help="this machine's index (with --nnodes)")
    parser.add_argument("--master-addr", help="rank 0's machine (with --nnodes)")
    parser.add_argument("--master-port", type=int, help="rank 0's port (default 29500)")


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    import warnings

    from lepton.errors import ConfigError
    from lepton.train.run import load_config, train

    if args.nproc is not None or args.nnodes is not None:
        from lepton.train.launch import launch, strip_launch_args

        launch(args.nproc if args.nproc is not None else 1,
               ["-m", "lepton", "train", *strip_launch_args(args, ("command", "debug"))],
               nnodes=args.nnodes or 1, node_rank=args.node_rank or 0,
               master_addr=args.master_addr, master_port=args.master_port)
        return 0
    cfg = load_config(args.config)
    data = args.data or cfg.get("data")
    if not data:
        raise ConfigError("No training data given", fix="pass --data PATH (or `data:` in --config)")
    out = args.out or cfg.get("out") or "model"
    rank = int(os.environ.get("RANK", "0") or 0)  # under torchrun, rank 0 alone prints
    say = (lambda _m: None) if args.quiet or rank else (
        lambda m: print(m, file=sys.stderr, flush=True))
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda msg, *_a, **_k: print(f"warning: {msg}", file=sys.stderr)
        result = train(data, args.target, model=args.model, config=cfg, out=out,
                       name=args.name or cfg.get("name"), epochs=args.epochs,
                       batch_size=args.batch_size, seed=args.seed, time_limit=args.time_limit,
                       register=not args.no_register, verbose=0 if args.quiet else "auto",
                       log=say, weights=args.weights, image_size=args.image_size)
    if rank:
        return 0
    m = result.metrics
    keys = [k for k in ("accuracy", "f1", "roc_auc", "r2", "rmse", "mae", "loss") if k in m]
    print("  ".join(f"{k} {m[k]:.4f}" for k in keys))
    print(f"model:  {result.path}")
    print(f"report: {result.report}")
    if result.registered:
        print(f"registered: {result.registered['name']}:{result.registered['version']}")
    print(f"time:   {result.seconds:.1f} s")
    return 0
