"""Serving throughput with traffic experiments: a 90/10 split and a shadow against one version.

    python benchmarks/traffic.py                          # 5 s per point, 3 interleaved rounds
    python benchmarks/traffic.py --duration 3 --rounds 2  # quick look
    python benchmarks/traffic.py --replicas --duration 5 --rounds 3  # replicas instead

``--replicas``: one ``lepton serve`` process against ``--replicas 2`` (same model, one torch
thread per process, log off), interleaved rounds at the same concurrency; then the time from a
load step to the added replica taking traffic under ``--autoscale 1:2 --scale-up-delay 1``
(the 1 s delay is part of it, on purpose: it is the policy's, the rest is detection, process
start, model load and the first request accepted).

One run, side by side: the SPEC §1 MNIST CNN registered twice (production, candidate), three
``lepton serve`` processes (one torch thread each, prediction log on, each with its own
workspace so that each has its own experiment): the production version alone; both versions
with ``--split production=90,candidate=10``; both with ``--shadow candidate`` (every request
also run by the candidate on the shadow's own thread). Single-image OIP V2 JSON requests at
concurrency 64 from ``lepton.serve.loadgen`` (in this process, no unit header: each request
is assigned by a fresh request id). Rounds are interleaved (single, split, shadow, single, ...)
and each point keeps its median, since the machine is shared. Prints the table and the ratios
of the issue's targets (split >= 0.95x, shadow >= 0.9x of the single version).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serve_throughput import (  # noqa: E402 - after the path fix
    bodies,
    build_model,
    free_port,
    measure,
    stop,
    wait_ready,
)

SETUPS = {"single": ["mnist@production"],
          "split 90/10": ["mnist@production", "mnist@candidate", "--split",
                          "production=90,candidate=10"],
          "shadow": ["mnist@production", "mnist@candidate", "--shadow", "candidate"]}


def workspace(home: Path, artifacts: list[Path]) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(home),
           "LEPTON_DB_URL": f"sqlite:///{home / 'lepton.db'}"}
    env.pop("LEPTON_TOKEN", None)
    code = ("from lepton.registry import Registry\nfrom lepton.store import Store\n"
            "import sys\nr = Registry(Store.open())\n"
            "r.register(sys.argv[1], 'mnist'); r.register(sys.argv[2], 'mnist')\n"
            "r.promote('mnist', 1, 'production'); r.promote('mnist', 2, 'candidate')\n")
    subprocess.run([sys.executable, "-c", code, *map(str, artifacts)], env=env, check=True)
    return env


def replica_requests(url: str) -> dict[int, float]:
    """Requests served per replica pid, from /metrics (the supervisor's status slots)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {int(s.labels["pid"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "lepton_replica_requests"}


def replicas_bench(args: argparse.Namespace) -> None:
    """One process against --replicas 2, then the load step to the added replica's traffic."""
    import threading
    import time

    tmp = Path(tempfile.mkdtemp(prefix="lepton-replicas-bench-"))
    build_model(tmp / "mnist")
    body = bodies(tmp / "mnist")["json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(tmp / "home")}
    env.pop("LEPTON_TOKEN", None)
    setups = {"1 process": [], "--replicas 2": ["--replicas", "2"]}
    results: dict[str, list[float]] = {name: [] for name in setups}
    p99: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.rounds):  # one server at a time: they would share the 2 cores
        for name, extra in setups.items():
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve",
                                     str(tmp / "mnist"), "--name", "mnist", "--no-log",
                                     "--port", str(port), *extra], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_ready(url + "/v2/health/ready", proc, False)
                if extra:  # both replicas up before measuring
                    deadline = time.monotonic() + 120
                    while len(replica_requests(url)) < 2 and time.monotonic() < deadline:
                        time.sleep(0.2)
                    time.sleep(3)  # the second replica loads before it accepts
                measure(url + "/v2/models/mnist/infer", body, args.concurrency, 1.0)  # warm
                out = measure(url + "/v2/models/mnist/infer", body, args.concurrency,
                              args.duration)
                shares = sorted(replica_requests(url).values()) if extra else []
            finally:
                stop(proc)
            results[name].append(out["rps"])
            p99[name].append(out["p99_ms"])
            print(f"round {r + 1} {name:<13} {out['rps']:8.1f} req/s  p99 {out['p99_ms']:.1f} "
                  f"ms  errors {sum(out['errors'].values())}"
                  + (f"  per replica {[int(x) for x in shares]}" if shares else ""), flush=True)
    steps = []
    for _ in range(args.rounds):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve", str(tmp / "mnist"),
                                 "--name", "mnist", "--no-log", "--port", str(port),
                                 "--autoscale", "1:2", "--scale-up-delay", "1",
                                 "--scale-down-delay", "600"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url + "/v2/health/ready", proc, False)
            first = set(replica_requests(url))
            load = threading.Thread(target=measure, args=(
                url + "/v2/models/mnist/infer", body, args.concurrency, 60.0), daemon=True)
            stepped = time.monotonic()
            load.start()
            spawned = taking = None
            while time.monotonic() - stepped < 60 and taking is None:
                added = {p: n for p, n in replica_requests(url).items() if p not in first}
                if added and spawned is None:
                    spawned = time.monotonic() - stepped
                if any(n > 0 for n in added.values()):
                    taking = time.monotonic() - stepped
                time.sleep(0.05)
        finally:
            stop(proc)
        if spawned is None or taking is None:
            print(f"load step: no replica took traffic within 60 s (started: {spawned})")
            continue
        steps.append((spawned, taking))
        print(f"load step: replica started after {spawned:.2f} s, taking traffic after "
              f"{taking:.2f} s (up delay 1 s)", flush=True)
    base = statistics.median(results["1 process"])
    print(f"\nc={args.concurrency}, {args.rounds} interleaved rounds of {args.duration:g} s, "
          f"median (shared 2-core machine)")
    print("| setup | req/s (median) | p99 ms (median) | vs 1 process |")
    print("|---|---|---|---|")
    for name in setups:
        value = statistics.median(results[name])
        print(f"| {name} | {value:.0f} | {statistics.median(p99[name]):.1f} | "
              f"{value / base:.2f}x |")
    if not steps:
        return
    print(f"load step -> added replica taking traffic: median "
          f"{statistics.median(t for _, t in steps):.2f} s (replica process started after "
          f"{statistics.median(s for s, _ in steps):.2f} s; up delay 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--replicas", action="store_true",
                        help="benchmark --replicas 2 and the autoscaler's load step instead")
    args = parser.parse_args()
    if args.replicas:
        replicas_bench(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="lepton-traffic-bench-"))
    artifacts = [tmp / "a", tmp / "b"]
    for path in artifacts:
        build_model(path)
    body = bodies(artifacts[0])["json"]
    procs, urls = {}, {}
    try:
        for name, extra in SETUPS.items():
            env = workspace(tmp / name.replace(" ", "_").replace("/", "-"), artifacts)
            port = free_port()
            procs[name] = subprocess.Popen([sys.executable, "-m", "lepton", "serve", *extra,
                                            "--port", str(port)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, proc in procs.items():
            wait_ready(urls[name] + "/v2/health/ready", proc, False)
        results: dict[str, list[float]] = {name: [] for name in SETUPS}
        p99: dict[str, list[float]] = {name: [] for name in SETUPS}
        for r in range(args.rounds):
            for name in SETUPS:
                out = measure(urls[name] + "/v2/models/mnist/infer", body, args.concurrency,
                              args.duration)
                results[name].append(out["rps"])
                p99[name].append(out["p99_ms"])
                print(f"round {r + 1} {name:<12} {out['rps']:8.1f} req/s  "
                      f"p99 {out['p99_ms']:.1f} ms  errors {sum(out['errors'].values())}",
                      flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    base = statistics.median(results["single"])
    print(f"\nc={args.concurrency}, {args.rounds} interleaved rounds of {args.duration:g} s, "
          f"median per setup (shared 2-core machine)")
    print("| setup | req/s (median) | p99 ms (median) | vs single |")
    print("|---|---|---|---|")
    for name in SETUPS:
        value = statistics.median(results[name])
        print(f"| {name} | {value:.0f} | {statistics.median(p99[name]):.1f} | "
              f"{value / base:.2f}x |")


if __name__ == "__main__":
    main()
