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
    parser.add_argument("--replicas", type=int, default=None, metavar="N",
                        help="N replica processes behind the port, supervised: one that dies "
                             "is restarted")
    parser.add_argument("--autoscale", metavar="MIN:MAX", default=None,
                        help="between MIN and MAX replicas, scaled on in-flight requests per "
                             "replica (--scale-target)")
    parser.add_argument("--scale-target", type=float, default=2.0, metavar="N",
                        help="in-flight requests per replica the autoscaler aims at "
                             "(default %(default)s)")
    parser.add_argument("--scale-up-delay", type=float, default=30.0, metavar="SECONDS",
                        help="load must need more replicas this long before one is added "
                             "(default %(default)s)")
    parser.add_argument("--scale-down-delay", type=float, default=600.0, metavar="SECONDS",
                        help="load must fit in fewer replicas this long before one is drained "
                             "(default %(default)s)")
    parser.add_argument("--threads", type=int, default=OPTIONS.threads,
                        help="torch / ONNX Runtime intra-op threads per worker "
                             "(default %(default)s)")
    parser.add_argument("--runtime", choices=["torch", "onnxruntime"], default=OPTIONS.runtime,
                        help="run every model on this runtime instead of the one its artifact "
                             "names (where the artifact has its files)")
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
    parser.add_argument("--log-inputs", type=float, nargs="?", const=1.0, metavar="RATE",
                        default=OPTIONS.sample_inputs,
                        help="keep the inputs of this share of requests (0-1; alone: all), "
                             "encrypted when $LEPTON_LOG_KEY is set (default: a digest only)")
    parser.add_argument("--redact", metavar="COL,...", default=None,
                        help="input columns hashed before anything is written (COL:drop drops "
                             "them)")
    parser.add_argument("--log-retention", metavar="PERIOD", default=None,
                        help="delete logged predictions and inputs older than this (30d, 12h), "
                             "folded into sketches first; rows with feedback stay")
    parser.add_argument("--reload", type=float, metavar="SECONDS", default=OPTIONS.reload_s,
                        help="check every SECONDS whether a NAME@ALIAS model moved to another "
                             "version, and serve the new one (default: never)")
    parser.add_argument("--no-sketches", action="store_true", default=not OPTIONS.sketches,
                        help="do not sketch served inputs per window for lepton monitor")
    parser.add_argument("--split", metavar="ARM=PCT,...", default=None,
                        help="route a model's requests between its served versions or aliases "
                             "by weight (e.g. production=90,candidate=10); stored as a traffic "
                             "experiment that `lepton traffic` changes live")
    parser.add_argument("--canary", metavar="ARM", default=None,
                        help="step this served version or alias up through the canary steps "
                             "(5, 25, 50, 100 %%), rolled back or promoted automatically; "
                             "`lepton traffic set` changes its settings")
    parser.add_argument("--shadow", metavar="ARM", default=None,
                        help="mirror every request to this served version or alias too; its "
                             "answers are compared, never returned")
    parser.add_argument("--tls-cert", metavar="FILE", default=SERVER["tls_cert"],
                        help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", metavar="FILE", default=SERVER["tls_key"],
                        help="the certificate's PEM private key")


def run(args: argparse.Namespace) -> int:
    import logging

    from lepton.serve.auth import check_bind, resolve_token
    from lepton.serve.server import resolve_models, serve

    token = resolve_token(args.token)
    check_bind(args.host, token)
    mib = args.max_body_mb  # a non-finite one goes as it is, for ServeOptions to refuse
    retention = 0.0
    if args.log_retention:
        from lepton.serve.retention import retention_seconds

        retention = retention_seconds(args.log_retention)
    options = ServeOptions(token=token,
                           max_body_bytes=int(mib * MIB) if math.isfinite(mib) else mib,
                           max_batch_size=args.max_batch_size, max_latency_ms=args.max_latency_ms,
                           max_queue=args.max_queue, timeout_s=args.timeout, drain_s=args.drain,
                           log_predictions=not args.no_log, sample_inputs=args.log_inputs,
                           threads=args.threads, runtime=args.runtime,
                           redact=tuple(filter(None, (args.redact or "").split(","))),
                           log_retention_s=retention, reload_s=args.reload,
                           sketches=not args.no_sketches)
    config = ServerConfig(models=[], options=options, host=args.host, port=args.port,
                          workers=args.workers, tls_cert=args.tls_cert,
                          tls_key=args.tls_key)  # checked before any model is looked for
    policy = _policy(args)  # --replicas / --autoscale, checked before loading too
    from lepton.store.prices import load_prices

    load_prices()  # $LEPTON_PRICES (cost on /metrics): a bad price sheet fails at start
    experiment = any(a is not None for a in (args.split, args.canary, args.shadow))
    if experiment:
        from lepton.serve.experiment import build_spec

        build_spec(split=args.split, canary=args.canary, shadow=args.shadow)  # before loading
    config.models = resolve_models(args.models, args.name)
    if experiment:
        _start_experiment(args, config)
    if args.tls_cert is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        import sys

        print(f"lepton serve: warning: {args.host} is not loopback and TLS is off: requests, "
              "answers and the bearer token travel in clear (use --tls-cert/--tls-key)",
              file=sys.stderr, flush=True)
    logger = logging.getLogger("lepton.serve")
    logger.addHandler(logging.StreamHandler())
    logger.setLevel(logging.INFO)
    host = f"[{args.host}]" if ":" in args.host else args.host
    names = ", ".join(m.name + (f":{m.version}" if m.version else "") for m in config.models)
    scheme = "https" if args.tls_cert else "http"
    if policy is not None:
        from lepton.serve.supervisor import serve_replicas

        print(f"lepton serve: {names} on {scheme}://{host}:{args.port} ({policy.min_replicas}"
              f"-{policy.max_replicas} replicas); docs at /docs", flush=True)
        return serve_replicas(config, policy)
    print(f"lepton serve: {names} on {scheme}://{host}:{args.port} "
          f"({args.workers} worker{'s' if args.workers > 1 else ''}); docs at /docs", flush=True)
    return serve(config)


def _policy(args: argparse.Namespace):  # -> scaling.Policy | None
    """The supervisor's policy for ``--replicas N`` or ``--autoscale MIN:MAX``, else None."""
    from lepton.errors import ConfigError
    from lepton.serve.scaling import Policy, parse_autoscale

    if args.replicas is None and args.autoscale is None:
        return None
    if args.replicas is not None and args.autoscale is not None:
        raise ConfigError("Give --replicas or --autoscale, not both",
                          received=f"--replicas {args.replicas} --autoscale {args.autoscale}")
    if args.workers > 1:
        raise ConfigError("--workers and --replicas/--autoscale both start processes",
                          received=f"--workers {args.workers}", fix="drop --workers")
    low, high = ((args.replicas, args.replicas) if args.autoscale is None
                 else parse_autoscale(args.autoscale))
    return Policy(low, high, target=args.scale_target, up_delay_s=args.scale_up_delay,
                  down_delay_s=args.scale_down_delay)


def _start_experiment(args: argparse.Namespace, config: ServerConfig) -> None:
    """``--split``/``--canary``/``--shadow``: the served model's experiment, stored before it
    starts; every arm must be a version or alias served here."""
    from lepton.errors import ConfigError
    from lepton.serve.experiment import build_spec, set_experiment
    from lepton.store import Store

    model = config.models[0].name
    served = {m.version for m in config.models if m.name == model} | {
        m.alias.split("@", 1)[1] for m in config.models if m.name == model and m.alias}
    first = config.models[0]
    champion = None if args.split else (first.alias.split("@", 1)[1] if first.alias
                                        else first.version)
    _, spec = build_spec(split=args.split, canary=args.canary, shadow=args.shadow,
                         champion=champion)
    arms = [*spec["arms"], *([spec["shadow"]] if spec["shadow"] else [])]
    unknown = [a for a in arms if a not in served]
    if unknown:
        raise ConfigError(f"Unknown version or alias for {model}", expected=sorted(
            v for v in served if v), received=", ".join(unknown),
            fix=f"serve {model}@{unknown[0]} too, or use a served version or alias")
    with Store.open() as store:
        set_experiment(store, model, split=args.split, canary=args.canary, shadow=args.shadow,
                       champion=champion)
