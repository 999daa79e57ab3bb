"""``lepton serve MODEL...``: serve models over the Open Inference Protocol V2."""

from __future__ import annotations

import argparse

HELP = "serve models over HTTP (Open Inference Protocol V2, adaptive batching, metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="artifact directory, or registry name / name:VERSION / name@ALIAS")
    parser.add_argument("--name", action="append", default=None,
                        help="serve under this name instead (one per MODEL, in order)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; others need a token)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes sharing the port (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (default 1)")
    parser.add_argument("--token", default=None,
                        help="bearer token required on every route but the health probes "
                             "(default $LEPTON_TOKEN)")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-latency-ms", type=float, default=2.0,
                        help="longest wait to fill a batch under load; never when idle")
    parser.add_argument("--max-queue", type=int, default=1024,
                        help="queued requests per model before answering 503")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds before a request gets 504")
    parser.add_argument("--max-body-mb", type=float, default=16.0,
                        help="request size limit in MiB (413 above)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="seconds to let in-flight requests finish on SIGTERM")
    parser.add_argument("--no-log", action="store_true",
                        help="do not write predictions to the store (feedback then unavailable)")
    parser.add_argument("--log-inputs", action="store_true",
                        help="store each input with its prediction (default: a digest only)")


def run(args: argparse.Namespace) -> int:
    import logging

    from lepton.errors import ConfigError
    from lepton.serve.app import ServeOptions
    from lepton.serve.auth import check_bind, resolve_token
    from lepton.serve.server import ServerConfig, resolve_models, serve

    token = resolve_token(args.token)
    check_bind(args.host, token)
    for flag in ("workers", "threads", "max_batch_size", "max_queue"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1",
                              received=getattr(args, flag))
    options = ServeOptions(token=token, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                           max_batch_size=args.max_batch_size, max_latency_ms=args.max_latency_ms,
                           max_queue=args.max_queue, timeout_s=args.timeout, drain_s=args.drain,
                           log_predictions=not args.no_log, sample_inputs=args.log_inputs,
                           threads=args.threads)
    config = ServerConfig(models=resolve_models(args.models, args.name), options=options,
                          host=args.host, port=args.port, workers=args.workers)
    logger = logging.getLogger("lepton.serve")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    host = f"[{args.host}]" if ":" in args.host else args.host
    names = ", ".join(m.name + (f":{m.version}" if m.version else "") for m in config.models)
    print(f"lepton serve: {names} on http://{host}:{args.port} "
          f"({args.workers} worker{'s' if args.workers > 1 else ''}); docs at /docs", flush=True)
    return serve(config)
