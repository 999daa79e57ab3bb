"""``lepton serve MODEL...``: serve models over the Open Inference Protocol V2.

Every default comes from ``ServeOptions`` and ``ServerConfig`` (``lepton.serve.options``),
which also check the values: a setting is written once.
"""

from __future__ import annotations

import argparse
import math

from lepton.serve.options import ServeOptions, ServerConfig, defaults

HELP = "serve models over HTTP (Open Inference Protocol V2, adaptive batching, metrics)"
MIB = 1024 * 1024
OPTIONS = ServeOptions()
SERVER = defaults(ServerConfig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="artifact directory, or registry name / name:VERSION / name@ALIAS")
    parser.add_argument("--name", action="append", default=None,
                        help="serve under this name instead (one per MODEL, in order)")
    parser.add_argument("--host", default=SERVER["host"],
                        help="address to bind (default %(default)s; others need a token)")
    parser.add_argument("--port", type=int, default=SERVER["port"],
                        help="port to listen on (default %(default)s)")
    parser.add_argument("--workers", type=int, default=SERVER["workers"],
                        help="server processes sharing the port (default %(default)s)")
    parser.add_argument("--threads", type=int, default=OPTIONS.threads,
                        help="torch threads per worker (default %(default)s)")
    parser.add_argument("--token", default=OPTIONS.token,
                        help="bearer token required on every route but the health probes "
                             "(default $LEPTON_TOKEN)")
    parser.add_argument("--max-batch-size", type=int, default=OPTIONS.max_batch_size,
                        help="most rows in one model batch (default %(default)s)")
    parser.add_argument("--max-latency-ms", type=float, default=OPTIONS.max_latency_ms,
                        help="longest wait to fill a batch under load; never when idle "
                             "(default %(default)s)")
    parser.add_argument("--max-queue", type=int, default=OPTIONS.max_queue,
                        help="queued requests per model before answering 503 "
                             "(default %(default)s)")
    parser.add_argument("--timeout", type=float, default=OPTIONS.timeout_s,
                        help="seconds before a request gets 504 (default %(default)s)")
    parser.add_argument("--max-body-mb", type=float, default=OPTIONS.max_body_bytes / MIB,
                        help="request size limit in MiB, 413 above (default %(default)s)")
    parser.add_argument("--drain", type=float, default=OPTIONS.drain_s,
                        help="seconds to let in-flight requests finish on SIGTERM "
                             "(default %(default)s)")
    parser.add_argument("--no-log", action="store_true", default=not OPTIONS.log_predictions,
                        help="do not write predictions to the store (feedback then unavailable)")
    parser.add_argument("--log-inputs", action="store_true", default=OPTIONS.sample_inputs,
                        help="store each input with its prediction (default: a digest only)")


def run(args: argparse.Namespace) -> int:
    import logging

    from lepton.serve.auth import check_bind, resolve_token
    from lepton.serve.server import resolve_models, serve

    token = resolve_token(args.token)
    check_bind(args.host, token)
    mib = args.max_body_mb  # a non-finite one goes as it is, for ServeOptions to refuse
    options = ServeOptions(token=token,
                           max_body_bytes=int(mib * MIB) if math.isfinite(mib) else mib,
                           max_batch_size=args.max_batch_size, max_latency_ms=args.max_latency_ms,
                           max_queue=args.max_queue, timeout_s=args.timeout, drain_s=args.drain,
                           log_predictions=not args.no_log, sample_inputs=args.log_inputs,
                           threads=args.threads)
    config = ServerConfig(models=[], options=options, host=args.host, port=args.port,
                          workers=args.workers)  # checked before any model is looked for
    config.models = resolve_models(args.models, args.name)
    logger = logging.getLogger("lepton.serve")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    host = f"[{args.host}]" if ":" in args.host else args.host
    names = ", ".join(m.name + (f":{m.version}" if m.version else "") for m in config.models)
    print(f"lepton serve: {names} on http://{host}:{args.port} "
          f"({args.workers} worker{'s' if args.workers > 1 else ''}); docs at /docs", flush=True)
    return serve(config)
