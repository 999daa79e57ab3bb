"""``lepton bench URL|MODEL``: load-test a server and print req/s, latency and batch sizes."""

from __future__ import annotations

import argparse

from lepton.serve.options import ServerConfig, defaults

HELP = "load-test a Lepton server (or start one for MODEL): req/s, p50/p95/p99, batch sizes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="URL|MODEL",
                        help="server URL (http://host:port[/v2/models/NAME]) or a model to "
                             "serve for the run (artifact directory or registry name)")
    parser.add_argument("--model", default=None, help="model name on the server "
                        "(default: from the URL, else the first served model)")
    parser.add_argument("--concurrency", "-c", type=int, default=16,
                        help="clients, each with one request in flight (default 16)")
    parser.add_argument("--duration", "-d", type=float, default=10.0,
                        help="seconds to measure, after a 1 s warm-up (default 10)")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    parser.add_argument("--binary", action="store_true",
                        help="send binary tensors (the OIP binary extension) instead of JSON")
    parser.add_argument("--token", default=None, help="bearer token (default $LEPTON_TOKEN)")
    parser.add_argument("--workers", type=int, default=defaults(ServerConfig)["workers"],
                        help="server workers when bench starts the server (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    import os
    from urllib.parse import urlsplit

    from lepton.errors import ConfigError

    if args.concurrency < 1 or args.duration <= 0 or args.rows < 1:
        raise ConfigError("--concurrency and --rows must be >= 1 and --duration > 0",
                          received=f"{args.concurrency}, {args.rows}, {args.duration}")
    token = args.token or os.environ.get("LEPTON_TOKEN")
    if args.target.startswith(("http://", "https://")):
        parts = urlsplit(args.target)
        path = parts.path.strip("/").split("/")
        model = args.model or (path[2] if len(path) >= 3 and path[:2] == ["v2", "models"]
                               else None)
        return _bench(f"{parts.scheme}://{parts.netloc}", model, token, args)
    with _StartedServer(args.target, args.workers) as url:
        return _bench(url, args.model, None, args)


def _bench(url: str, model: str | None, token: str | None, args: argparse.Namespace) -> int:
    from lepton.client import Client
    from lepton.serve import loadgen

    client = Client(url, token=token)
    if model is None:
        model = client.models()[0]["name"]
    body, headers = loadgen.infer_request(client.metadata(model), rows=args.rows,
                                          binary=args.binary)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    before = loadgen.batch_histogram(_metrics(client))
    result = loadgen.measure(f"{url}/v2/models/{model}/infer", body, headers,
                             concurrency=args.concurrency, duration_s=args.duration)
    scraped = _metrics(client)
    after = loadgen.batch_histogram(scraped)
    r = result.as_dict()
    kind = "binary" if args.binary else "JSON"
    print(f"{model} @ {url}: {args.concurrency} clients, {args.rows} row(s)/request, {kind}, "
          f"{args.duration:g} s")
    print(f"  {r['rps']:,.1f} req/s   p50 {r['p50_ms']:.2f} ms   p95 {r['p95_ms']:.2f} ms   "
          f"p99 {r['p99_ms']:.2f} ms   ok {r['requests']}   errors {sum(r['errors'].values())}"
          + (f" {r['errors']}" if r["errors"] else ""))
    rows = loadgen.histogram_delta(before, after)
    if rows:
        total = sum(n for _, n in rows)
        print("  server batch sizes (rows per batch):")
        for label, n in rows:
            print(f"    {label:>6}  {n:>8}  {'#' * max(1, round(40 * n / total))}")
    for line in _resources(scraped, model):
        print(line)
    return 0 if not r["errors"] else 1


def _resources(text: str, model: str) -> list[str]:
    """The server's own resource and cost figures for ``model`` (one line per version)."""
    from prometheus_client.parser import text_string_to_metric_families

    per: dict[str, dict[str, float]] = {}
    process: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if not labels:
                process[sample.name] = sample.value
            elif labels.get("model") == model and sample.name.startswith(("lepton_model_",
                                                                          "lepton_cost_")):
                key = sample.name + (f"_{labels['basis']}" if "basis" in labels else "")
                per.setdefault(labels.get("version", ""), {})[key] = sample.value
    lines = []
    if process:
        lines.append(f"  server process (the replica that answered /metrics): "
                     f"{process.get('lepton_process_cpu_seconds', 0):.1f} CPU s, "
                     f"RSS now {process.get('lepton_resident_memory_bytes', 0) / 2**20:.0f} MiB, "
                     f"replicas {process.get('lepton_replicas', 1):g}")
    for version, m in sorted(per.items()):
        if not m.get("lepton_model_predictions"):
            continue
        lines.append(
            f"  {model}:{version or '-'}  CPU {m.get('lepton_model_cpu_seconds', 0):.2f} s  "
            f"busy {m.get('lepton_model_busy_seconds', 0):.2f} s  "
            f"RSS at load {m.get('lepton_model_memory_at_load_bytes', 0) / 2**20:.0f} MiB  "
            f"queue wait {m.get('lepton_model_queue_wait_seconds', 0) * 1000:.2f} ms  "
            + (f"CUDA {m['lepton_model_cuda_memory_at_load_bytes'] / 2**20:.0f} MiB  "
               if "lepton_model_cuda_memory_at_load_bytes" in m else "")
            + f"cost/1k predictions: allocation "
            f"{m.get('lepton_cost_per_1k_predictions_allocation', 0):.6f}, usage "
            f"{m.get('lepton_cost_per_1k_predictions_usage', 0):.6f}")
    return lines


def _metrics(client) -> str:
    status, _, data = client._request("GET", "/metrics")
    return data.decode() if status == 200 else ""


class _StartedServer:
    """Serve MODEL on a free loopback port for the run, then stop it with SIGTERM."""

    def __init__(self, model: str, workers: int) -> None:
        self.model = model
        self.workers = workers

    def __enter__(self) -> str:
        import socket
        import subprocess
        import sys
        import time

        from lepton.client import Client
        from lepton.errors import LeptonError

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve", self.model,
                                      "--port", str(port), "--workers", str(self.workers),
                                      "--no-log"])
        url = f"http://127.0.0.1:{port}"
        client = Client(url)
        deadline = time.time() + 120
        while not client.ready():
            if self.proc.poll() is not None or time.time() > deadline:
                self.__exit__()
                raise LeptonError("The server for the benchmark did not start",
                                  received=self.model, fix="run `lepton serve MODEL` to see why")
            time.sleep(0.1)
        return url

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
