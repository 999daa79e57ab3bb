"""Monitoring: drift over 1,000,000 logged rows x 100 columns, and what monitoring costs a
server at c=64 (monitoring on against off, side by side).

    .venv/bin/python benchmarks/monitor.py [--rows 1000000] [--columns 100]
    .venv/bin/python benchmarks/monitor.py --part serving [--rounds 6 --duration 5]

Serving part: the SPEC §1 MNIST CNN of benchmarks/serve_throughput.py, with a reference
profile, served twice by `lepton serve` (each its own process, one torch thread): "on" is the
default (prediction log + per-window input sketches), "off" is `--no-sketches` (the
prediction log as it was before monitoring), plus "on + --log-inputs 1.0". Single-image OIP
JSON requests at c=64 from lepton.serve.loadgen, the servers measured in interleaved rounds;
the median round of each is compared.

Lepton side: the reference is profiled from 100,000 training rows (as `lepton train` does),
the window is folded into the reference's bins (what the server's sketches hold) and every
column is tested (Wasserstein for a window this large, PSI for all). 10 of the 100 columns
are shifted by 0.3 std; the script prints the time and which columns were named. Evidently
is not installed in Lepton's environment (never a dependency); when a separate benchmark venv
with it exists (EVIDENTLY_PYTHON=/path/to/python), its data-drift preset is timed on the
same data and the named columns compared.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def serving(rounds: int, duration: float, concurrency: int) -> None:
    import os
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    sys.path.insert(0, str(root))
    import serve_throughput as st

    from lepton.artifact.predictor import Predictor
    from lepton.artifact.save import write_reference
    from lepton.core import load_model
    from lepton.sketch.reference import reference_for

    tmp = Path(tempfile.mkdtemp(prefix="lepton-monitor-bench-"))
    artifact = tmp / "mnist_cnn"
    st.build_model(artifact)
    x = np.random.default_rng(1).random((2000, 28, 28, 1), dtype=np.float32)
    outputs = Predictor(load_model(artifact), {"task": "multiclass"}).forward(x)
    write_reference(artifact, reference_for(x, outputs, input_name="input_1",
                                            output_name=st.read_output_name(artifact),
                                            task="multiclass", labels=None))
    body = st.bodies(artifact)["json"]
    env = {**os.environ, "PYTHONPATH": str(root), "LEPTON_HOME": str(tmp / "home"),
           "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "lepton", "serve", str(artifact)]
    servers = {"off": base + ["--no-sketches"], "on": base,
               "on+inputs": base + ["--log-inputs", "1.0"]}
    procs, rps = {}, {name: [] for name in servers}
    try:
        for name, cmd in servers.items():
            port = st.free_port()
            proc = subprocess.Popen(cmd + ["--port", str(port)], env=env, cwd=tmp,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            st.wait_ready(url + "/v2/health/ready", proc, any_answer=False)
            procs[name] = (proc, url)
        for r in range(rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                result = st.measure(procs[name][1] + "/v2/models/mnist_cnn/infer", body,
                                    concurrency, duration)
                rps[name].append(result["rps"])
                print(f"  round {r + 1} {name:<10} {result['rps']:8.0f} req/s  errors "
                      f"{result['errors'] or 0}", flush=True)
    finally:
        for proc, _ in procs.values():
            st.stop(proc)
    med = {name: statistics.median(v) for name, v in rps.items()}
    print(f"\nc={concurrency}, {rounds} interleaved rounds of {duration:g} s, median req/s:")
    for name in servers:
        print(f"  monitoring {name:<10} {med[name]:8.0f}   on/off ratio "
              f"{med[name] / med['off']:.3f}   rounds: "
              + ", ".join(f"{v:.0f}" for v in rps[name]))
    loss = 1 - med["on"] / med["off"]
    print(f"throughput lost with monitoring on: {loss:.1%} (target <= 5 %)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["drift", "serving", "all"], default="all")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.part in ("serving", "all"):
        serving(args.rounds, args.duration, args.concurrency)
    if args.part == "serving":
        return
    from lepton.monitor.drift import feature_drift
    from lepton.sketch.folding import fold
    from lepton.sketch.reference import sketch

    rng = np.random.default_rng(0)
    train = rng.normal(size=(100_000, args.columns)).astype(np.float32)
    live = rng.normal(size=(args.rows, args.columns)).astype(np.float32)
    shifted = list(range(0, args.columns, 10))
    live[:, shifted] += 0.3
    t0 = time.perf_counter()
    ref = sketch(train)
    t1 = time.perf_counter()
    drifted = []
    for j, feature in enumerate(ref["features"]):
        result = feature_drift(str(j), feature, fold(feature, live[:, j]))[0]
        if result["drifted"]:
            drifted.append(j)
    t2 = time.perf_counter()
    print(f"reference profile of 100,000 x {args.columns}: {t1 - t0:.2f} s")
    print(f"drift over {args.rows:,} x {args.columns}: {t2 - t1:.2f} s "
          f"(target < 60 s); named {len(drifted)} columns, shifted {len(shifted)}, "
          f"agree: {drifted == shifted}")


if __name__ == "__main__":
    main()
