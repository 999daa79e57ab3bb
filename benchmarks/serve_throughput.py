"""Serving throughput: Lepton vs a FastAPI/pydantic endpoint, a bare Starlette endpoint, BentoML.

    python benchmarks/serve_throughput.py                            # 10 s per point, 2 rounds
    python benchmarks/serve_throughput.py --duration 3 --rounds 1    # quick look
    BENTOML_PYTHON=/tmp/bentovenv/bin/python python benchmarks/serve_throughput.py  # + BentoML

One run, one machine, everything side by side: the SPEC §1 MNIST CNN (saved with lepton.core),
single-image requests from the bounded load generator of ``lepton bench`` (lepton.serve.loadgen,
in this process; each server in its own process with one torch thread) at concurrency 1, 16
and 64. All servers are up at once and measured in interleaved rounds, so that load from other
work on the machine hits each alike; each point keeps its best round. Each point also reports
the CPU time per request of the server (all its processes) and of the load generator.
- Lepton as `lepton serve` runs by default (prediction log on), OIP V2 JSON; the same server
  with binary tensors, the body made by tritonclient;
- Lepton JSON with the prediction log off (what the log costs on the hot path);
- FastAPI + pydantic body, one forward per request; bare Starlette + orjson, one forward per
  request (benchmarks/serve_baselines.py);
- BentoML with adaptive batching, when ``BENTOML_PYTHON`` names a Python that has bentoml
  (kept in its own venv, so that its pins never touch Lepton's);
- the in-process ceiling: batched forward passes, no HTTP.
Prints the table and the ratios of the issue's targets; writes benchmarks/out/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

BENTO_SERVICE = '''
import os, numpy as np, bentoml, torch

@bentoml.service(workers=1)
class CNN:
    def __init__(self):
        from lepton.core import load_model
        torch.set_num_threads(1)
        self.model = load_model(os.environ["LEPTON_ARTIFACT"]).eval()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(inputs.astype(np.float32))).numpy()
'''


def build_model(path: Path) -> None:
    from lepton.core import Sequential, layers

    model = Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(path, metadata={"task": "multiclass", "labels": [str(i) for i in range(10)]})


def ceiling(path: Path, seconds: float = 1.5) -> dict[str, float]:
    """Images/s of the model alone, one thread, at the batch sizes a server forms."""
    import numpy as np
    import torch

    from lepton.core import load_model

    torch.set_num_threads(1)
    model = load_model(path).eval()
    out = {}
    for batch in (1, 8, 16, 32, 64):
        x = torch.from_numpy(np.random.rand(batch, 28, 28, 1).astype(np.float32))
        with torch.inference_mode():
            for _ in range(5):
                model(x)
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                model(x)
                n += batch
        out[batch] = n / (time.perf_counter() - start)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, any_answer: bool,
               timeout: float = 120) -> float:
    """Seconds until ``url`` answers 200 (or answers at all, for servers that load the model
    before they listen)."""
    import urllib.error
    import urllib.request

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode}): {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - start
        except urllib.error.HTTPError:
            if any_answer:
                return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server not ready after {timeout} s: {url}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def bodies(path: Path) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The same random 28x28 image as OIP JSON, as tritonclient binary, and as BentoML JSON."""
    import numpy as np
    import orjson
    import tritonclient.http as triton

    image = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    json_body = orjson.dumps({"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1],
                                          "datatype": "FP32",
                                          "data": image.reshape(-1).tolist()}]})
    inp = triton.InferInput("input_1", [1, 28, 28, 1], "FP32")
    inp.set_data_from_numpy(image, binary_data=True)
    out = triton.InferRequestedOutput(read_output_name(path), binary_data=True)
    binary, json_size = triton.InferenceServerClient.generate_request_body([inp], [out])
    return {
        "json": (json_body, {"Content-Type": "application/json"}),
        "binary": (binary, {"Content-Type": "application/octet-stream",
                            "Inference-Header-Content-Length": str(json_size)}),
        "bento": (orjson.dumps({"inputs": image.tolist()}), {"Content-Type": "application/json"}),
    }


def read_output_name(path: Path) -> str:
    return json.loads((path / "lepton.json").read_text())["signature"]["outputs"][0]["name"]


def measure(url: str, body: tuple[bytes, dict], concurrency: int, duration: float) -> dict:
    from lepton.serve.loadgen import measure as load

    return load(url, body[0], body[1], concurrency=concurrency, duration_s=duration).as_dict()


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and all its descendants, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / ticks
        todo += children.get(p, [])
    return total


def batch_sizes(url: str) -> float | None:
    """Mean rows per batch so far, from the server's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "lepton_batch_size":
            for s in family.samples:
                total += s.value if s.name.endswith("_sum") else 0
                count += s.value if s.name.endswith("_count") else 0
    return total / count if count else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds over all servers; each point keeps its best round")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--only", default="", help="comma list of servers to run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "serve.json"))
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    only = set(filter(None, args.only.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="lepton-serve-bench-"))
    artifact = tmp / "mnist_cnn"
    build_model(artifact)
    body = bodies(artifact)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(tmp / "home"),
           "OMP_NUM_THREADS": "1", "LEPTON_ARTIFACT": str(artifact)}
    baselines = [sys.executable, str(ROOT / "benchmarks" / "serve_baselines.py")]
    lepton = [sys.executable, "-m", "lepton", "serve", str(artifact)]
    # name -> (command, readiness path or None = any answer, process name shared with)
    servers = {
        "lepton": (lepton, "/v2/health/ready"),
        "lepton-nolog": (lepton + ["--no-log"], "/v2/health/ready"),
        "fastapi-pydantic": (baselines + ["fastapi", str(artifact)], None),
        "starlette-orjson": (baselines + ["starlette", str(artifact)], None),
    }
    bento_python = os.environ.get("BENTOML_PYTHON")
    if bento_python:
        (tmp / "service.py").write_text(BENTO_SERVICE)
        servers["bentoml"] = ([str(Path(bento_python).parent / "bentoml"), "serve",
                               "service:CNN", "--host", "127.0.0.1"], "/readyz")
    # what is measured: name -> (server, body kind, route)
    runs = {
        "lepton-json": ("lepton", "json", "/v2/models/mnist_cnn/infer"),
        "lepton-binary": ("lepton", "binary", "/v2/models/mnist_cnn/infer"),
        "lepton-json-nolog": ("lepton-nolog", "json", "/v2/models/mnist_cnn/infer"),
        "fastapi-pydantic": ("fastapi-pydantic", "json", "/v2/models/mnist_cnn/infer"),
        "starlette-orjson": ("starlette-orjson", "json", "/v2/models/mnist_cnn/infer"),
        "bentoml": ("bentoml", "bento", "/predict"),
    }
    runs = {k: v for k, v in runs.items() if v[0] in servers and (not only or k in only)}
    needed = {server for server, _, _ in runs.values()}
    results: dict[str, object] = {"ceiling": ceiling(artifact), "cpus": os.cpu_count(),
                                  "duration_s": args.duration, "rounds": args.rounds,
                                  "servers": {name: {"levels": {}} for name in runs}}
    print("in-process ceiling, images/s by batch size (1 thread): "
          + ", ".join(f"{k}: {v:,.0f}" for k, v in results["ceiling"].items()), flush=True)
    procs: dict[str, tuple[subprocess.Popen, str]] = {}
    try:
        for name, (cmd, ready) in servers.items():  # one at a time, to time the cold start
            if name not in needed:
                continue
            port = free_port()
            flag = ["--port", str(port)] if name.startswith(("lepton", "bento")) else [str(port)]
            proc = subprocess.Popen(cmd + flag, env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            cold = wait_ready(url + (ready or "/"), proc, any_answer=ready is None)
            procs[name] = (proc, url)
            print(f"  {name} ready after {cold:.2f} s", flush=True)
            for run, (server, _, _) in runs.items():
                if server == name:
                    results["servers"][run]["cold_start_s"] = round(cold, 2)
        for round_ in range(args.rounds):  # interleaved, so load drift hits all servers alike
            for c in levels:
                for run, (server, kind, route) in runs.items():
                    server_cpu, own_cpu = cpu_seconds(procs[server][0].pid), time.process_time()
                    r = measure(procs[server][1] + route, body[kind], c, args.duration)
                    requests = max(1, r["requests"])  # CPU per request, warm-up included
                    r["server_cpu_us"] = round(1e6 * (cpu_seconds(procs[server][0].pid)
                                                      - server_cpu) / requests, 1)
                    r["loadgen_cpu_us"] = round(1e6 * (time.process_time() - own_cpu)
                                                / requests, 1)
                    best = results["servers"][run]["levels"].get(c)
                    if best is None or r["rps"] > best["rps"]:
                        results["servers"][run]["levels"][c] = r
                    print(f"  round {round_ + 1} c={c:<3} {run:<17} {r['rps']:>9,.1f} req/s  "
                          f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
                          f"cpu/req server {r['server_cpu_us']:5.0f} us, generator "
                          f"{r['loadgen_cpu_us']:4.0f} us  errors {r['errors'] or 0}", flush=True)
        for run, (server, _, _) in runs.items():
            if server.startswith("lepton"):
                results["servers"][run]["mean_batch"] = batch_sizes(procs[server][1])
    finally:
        for name, (proc, _) in procs.items():
            code = stop(proc)
            for run, (server, _, _) in runs.items():
                if server == name:
                    results["servers"][run]["exit_code"] = code
    again = ceiling(artifact)
    results["ceiling"] = {k: round(max(v, again[k])) for k, v in results["ceiling"].items()}
    report(results, levels)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))


def report(results: dict, levels: list[int]) -> None:
    servers = results["servers"]
    print("\n| server | " + " | ".join(f"c={c} req/s (p50 / p99 ms)" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for name, entry in servers.items():
        if len(entry["levels"]) != len(levels):
            continue
        cells = [f"{e['rps']:,.0f} ({e['p50_ms']:.2f} / {e['p99_ms']:.1f})"
                 for e in (entry["levels"][c] for c in levels)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    top = max(levels)
    best = max(results["ceiling"], key=results["ceiling"].get)
    ceiling = results["ceiling"][best]
    print(f"| in-process ceiling (best batch size, {best}; 1 thread) | {ceiling:,.0f} images/s |")

    def rps(name: str, c: int = top) -> float | None:
        entry = servers.get(name)
        return entry["levels"][c]["rps"] if entry else None

    ours = rps("lepton-json")
    print(f"\nCPU per request at c={top} (server, all its processes / load generator), µs:")
    for name, entry in servers.items():
        e = entry["levels"].get(top)
        if e:
            print(f"  {name:<18} {e['server_cpu_us']:6.0f} / {e['loadgen_cpu_us']:4.0f}")
    print()
    for mine in ("lepton-json", "lepton-json-nolog"):
        for other in ("fastapi-pydantic", "bentoml", "starlette-orjson"):
            if rps(mine) and rps(other):
                print(f"ratio {mine} / {other} at c={top}: {rps(mine) / rps(other):.2f}x")
    if "lepton-json" in servers:
        print(f"lepton-json p99 at c={top}: {servers['lepton-json']['levels'][top]['p99_ms']:.1f}"
              " ms (target <= 50)")
        if 1 in levels and "starlette-orjson" in servers:
            gap = (servers["lepton-json"]["levels"][1]["p50_ms"]
                   - servers["starlette-orjson"]["levels"][1]["p50_ms"])
            print(f"c=1 p50, lepton-json minus starlette-orjson: {gap:+.2f} ms (target <= 0.5)")
        print(f"lepton cold start to ready: {servers['lepton-json'].get('cold_start_s')} s")
    if rps("lepton-binary"):
        print(f"lepton-binary / in-process ceiling at c={top}: "
              f"{rps('lepton-binary') / ceiling:.2f}")
    if ours and rps("lepton-json-nolog"):
        print(f"prediction log on / off at c={top}: {ours / rps('lepton-json-nolog'):.2f}")


if __name__ == "__main__":
    main()
