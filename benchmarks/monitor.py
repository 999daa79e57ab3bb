"""Monitoring: drift over 1,000,000 logged rows x 100 columns, and what monitoring costs a
server at c=64 (monitoring on against off, side by side).

    .venv/bin/python benchmarks/monitor.py [--rows 1000000] [--columns 100]
    .venv/bin/python benchmarks/monitor.py --part drift [--rows 10000 --no-evidently]
    .venv/bin/python benchmarks/monitor.py --part serving [--rounds 6 --duration 5]

Serving part: the SPEC §1 MNIST CNN of benchmarks/serve_throughput.py, with a reference
profile, served twice by `lepton serve` (each its own process, one torch thread): "on" is the
default (prediction log + per-window input sketches), "off" is `--no-sketches` (the
prediction log as it was before monitoring), plus "on + --log-inputs 1.0". Single-image OIP
JSON requests at c=64 from lepton.serve.loadgen, the servers measured in interleaved rounds;
the median round of each is compared, in req/s and in server CPU seconds per 1,000 requests
(after each round the server is left to finish its log backlog, which counts to that round).

Drift part: seeded data (normal, lognormal, uniform, exponential columns; see drift_data:
10 columns clearly changed, 10 trivially shifted by 0.02-0.05 std, 80 unchanged) is written
once as .npy to a temp dir. Lepton: the reference is profiled from the reference rows (as
`lepton train` does; train time, timed apart), the window is folded into its bins (what the
server's sketches hold) and every column tested. Evidently: DataDriftPreset with its
defaults, in a subprocess of its own venv (benchmarks/evidently_drift.py builds it on first
use from benchmarks/envs/evidently.txt; never a Lepton dependency), load and drift timed
apart. The table gives both times, the ratio, which columns each flagged and whether they
agree; past --evidently-timeout both sides run again at --fallback-rows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def serving(rounds: int, duration: float, concurrency: int) -> None:
    import os
    import shutil
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
    cpu: dict[str, list[float]] = {name: [] for name in servers}
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
                pid = procs[name][0].pid
                before = st.cpu_seconds(pid)
                result = st.measure(procs[name][1] + "/v2/models/mnist_cnn/infer", body,
                                    concurrency, duration)
                # the log's writer finishes its backlog after the load stops: wait for it,
                # count that CPU to this round, and start the next server on an idle machine
                spent = _settle(st.cpu_seconds, pid) - before
                rps[name].append(result["rps"])
                cpu[name].append(1000 * spent / max(result["requests"], 1))
                print(f"  round {r + 1} {name:<10} {result['rps']:8.0f} req/s  "
                      f"{cpu[name][-1]:.3f} CPU s/1k  errors {result['errors'] or 0}",
                      flush=True)
    finally:
        for proc, _ in procs.values():
            st.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in rps.items()}
    per_k = {name: statistics.median(v) for name, v in cpu.items()}
    print(f"\nc={concurrency}, {rounds} interleaved rounds of {duration:g} s, medians:")
    for name in servers:
        print(f"  monitoring {name:<10} {med[name]:8.0f} req/s "
              f"(on/off {med[name] / med['off']:.3f})"
              f"   {per_k[name]:.3f} server CPU s per 1k requests (on/off "
              f"{per_k[name] / per_k['off']:.3f})   rounds: "
              + ", ".join(f"{v:.0f}" for v in rps[name]))
    print(f"throughput lost with monitoring on: {1 - med['on'] / med['off']:.1%}; server CPU "
          f"per request added: {per_k['on'] / per_k['off'] - 1:.1%} (target <= 5 %)")


def _settle(cpu_seconds, pid: int, quiet: float = 0.01, limit: float = 15.0) -> float:
    """Wait until the process uses under ``quiet`` CPU seconds in half a second; its CPU total."""
    last, deadline = cpu_seconds(pid), time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < quiet:
            return now
        last = now
    return last


KINDS = ("normal", "lognormal", "uniform", "exponential")


def drift_data(rows: int, columns: int, reference_rows: int) -> tuple[np.ndarray, np.ndarray,
                                                                      dict[int, tuple[str, bool]]]:
    """Seeded reference and current windows, and the plan: column -> (change, trivial?).

    Every 5th column changes: the first ten clearly (mean +0.3 or +1.0 std, spread x1.5), the
    next ten trivially (mean +0.02 or +0.05 std), which a 1M-row window must not alarm on."""
    rng = np.random.default_rng(0)
    draw = {"normal": lambda n: rng.normal(size=n),
            "lognormal": lambda n: rng.lognormal(0, 0.5, n),
            "uniform": lambda n: rng.uniform(size=n),
            "exponential": lambda n: rng.exponential(size=n)}
    ref = np.empty((reference_rows, columns), np.float32)
    cur = np.empty((rows, columns), np.float32)
    for j in range(columns):
        ref[:, j] = draw[KINDS[j % 4]](reference_rows)
        cur[:, j] = draw[KINDS[j % 4]](rows)
    changes = [("mean", 0.3)] * 5 + [("mean", 1.0)] * 3 + [("spread", 1.5)] * 2 \
        + [("mean", 0.02)] * 5 + [("mean", 0.05)] * 5
    plan = {}
    for j, (how, size) in zip(range(0, columns, 5), changes):
        mean, std = float(ref[:, j].mean()), float(ref[:, j].std())
        if how == "mean":
            cur[:, j] += size * std
            plan[j] = (f"{KINDS[j % 4]}, mean +{size:g} std", size < 0.1)
        else:
            cur[:, j] = mean + (cur[:, j] - mean) * size
            plan[j] = (f"{KINDS[j % 4]}, spread x{size:g}", False)
    return ref, cur, plan


def lepton_drift(ref: dict, cur: np.ndarray) -> dict[str, dict]:
    """Every column folded into the reference's bins and tested, as `lepton monitor` does."""
    from lepton.monitor.drift import feature_drift
    from lepton.sketch.folding import fold

    return {f"c{j}": feature_drift(f"c{j}", feature, fold(feature, cur[:, j]))[0]
            for j, feature in enumerate(ref["features"])}


def compare(args: argparse.Namespace, rows: int, python: str | None) -> bool:
    """One side-by-side comparison at `rows`; False when Evidently ran past its timeout."""
    import shutil
    import tempfile
    from pathlib import Path

    t0 = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="lepton-drift-bench-"))
    try:
        ref, cur, plan = drift_data(rows, args.columns, args.reference_rows)
        np.save(folder / "reference.npy", ref)
        np.save(folder / "current.npy", cur)
        del ref, cur  # each side loads the files itself
        print(f"\n{rows:,} current x {args.columns} columns, reference "
              f"{args.reference_rows:,} rows (generated and written in "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
        return _compare(args, rows, python, folder, plan)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _compare(args: argparse.Namespace, rows: int, python: str | None, folder,
             plan: dict[int, tuple[str, bool]]) -> bool:
    import statistics

    from scipy.stats import ks_2samp

    from lepton.sketch.reference import sketch

    lepton_s, load_s, theirs = [], [], []
    for r in range(args.drift_rounds):
        for side in ("lepton", "evidently") if r % 2 == 0 else ("evidently", "lepton"):
            if side == "lepton":
                t1 = time.perf_counter()
                ref, cur = np.load(folder / "reference.npy"), np.load(folder / "current.npy")
                t2 = time.perf_counter()
                profile = sketch(ref)  # train time: stored in the artifact, not per window
                t3 = time.perf_counter()
                ours = lepton_drift(profile, cur)
                lepton_s.append(time.perf_counter() - t3)
                load_s.append(t2 - t1)
                print(f"  Lepton: load {t2 - t1:.2f} s, reference profile {t3 - t2:.2f} s, "
                      f"drift {lepton_s[-1]:.2f} s", flush=True)
            elif python is not None and not (theirs and "timed_out" in theirs[-1]):
                from evidently_drift import measure

                theirs.append(measure(python, folder, args.evidently_timeout))
                e = theirs[-1]
                print("  Evidently: " + (f"timed out after {e['timed_out']:.0f} s"
                      if "timed_out" in e else f"load {e['load_s']:.2f} s, drift "
                      f"{e['drift_s']:.2f} s, snapshot.dict() {e['dict_s']:.2f} s"), flush=True)
    trivial = [j for j, (_, small) in plan.items() if small]
    ks = {j: ks_2samp(ref[:, j], cur[:, j]).pvalue for j in trivial}
    ok = [e for e in theirs if "timed_out" not in e]
    ours_set = {c for c, f in ours.items() if f["drifted"]}
    named = [f"c{j}" for j in range(args.columns)]
    ev = ok[-1]["columns"] if ok else {}
    theirs_set = {c for c in named if ev.get(c, {}).get("drifted")}
    planted = {f"c{j}" for j, (_, small) in plan.items() if not small}
    med = statistics.median(lepton_s)
    print(f"\n| rows | ref rows | cols | load s: Lepton / Evidently | Lepton drift s "
          f"| Evidently drift s | ratio (ours/theirs) | flagged: Lepton / Evidently / planted "
          f"| Jaccard | same set |\n|{'---|' * 10}")
    their_load = "—"
    if ok:
        their_s = statistics.median(e["drift_s"] for e in ok)
        their_load = f"{statistics.median(e['load_s'] for e in ok):.2f}"
        union = ours_set | theirs_set
        jaccard = len(ours_set & theirs_set) / len(union) if union else 1.0
        their_cell, ratio = f"{their_s:.1f}", f"{med / their_s:.4f}"
        agree, same = f"{jaccard:.2f}", "yes" if ours_set == theirs_set else "no"
    else:
        their_cell = (f"timed out after {theirs[-1]['timed_out']:.0f} s" if theirs
                      else "not run")
        ratio = agree = same = "—"
    print(f"| {rows:,} | {args.reference_rows:,} | {args.columns} | "
          f"{statistics.median(load_s):.2f} / {their_load} | {med:.1f} | {their_cell} | "
          f"{ratio} | {len(ours_set)} / {len(theirs_set) if ok else '—'} / {len(planted)} | "
          f"{agree} | {same} |")
    print(f"Lepton drift times: {', '.join(f'{t:.2f}' for t in lepton_s)} s; Evidently: "
          + (", ".join(f"{e['drift_s']:.1f}" for e in ok) or "—") + " s")
    print(f"Lepton named exactly the planted columns: {ours_set == planted}; Evidently: "
          + (str(theirs_set == planted) if ok else "—"))
    methods = sorted({f"{f['method']} >= {f['threshold']:g}" for f in ours.values()})
    their_methods = sorted({f"{v.get('method')} >= {v.get('threshold'):g}"
                            for v in ev.values()}) if ok else []
    held = sum(f["fixed_alarm"] and not f["drifted"] for f in ours.values())
    print(f"methods: Lepton {methods} and above the reference's chunk mean + 3 std ({held} "
          f"columns over the fixed threshold held back by it); Evidently {their_methods}")
    print("\n| column | planted change | Lepton score (drift) | Evidently score (drift) "
          "| KS p-value |\n|---|---|---|---|---|")
    for j, (how, _) in plan.items():
        c, mine, e = f"c{j}", ours[f"c{j}"], ev.get(f"c{j}", {})
        their = f"{e['score']:.3f} ({'yes' if e['drifted'] else 'no'})" if e else "—"
        p_value = f"{ks[j]:.1e}" if j in ks else ""
        print(f"| {c} | {how} | {mine['score']:.3f} ({'yes' if mine['drifted'] else 'no'}) | "
              f"{their} | {p_value} |")
    flagged = sum(p < 0.05 for p in ks.values())
    print(f"a KS test (p < 0.05) would alarm on {flagged} of the {len(ks)} trivial shifts")
    return bool(ok) or python is None


def drift_part(args: argparse.Namespace) -> None:
    import sys
    from pathlib import Path

    python = None
    if not args.no_evidently:
        sys.path.insert(0, str(Path(__file__).parent))
        from evidently_drift import ensure_python

        python, install_s, packages = ensure_python()
        print(f"Evidently venv: {python} ({packages} packages"
              + (f", installed in {install_s:.0f} s)" if install_s else ", reused)"))
    finished = compare(args, args.rows, python)
    if not finished and args.fallback_rows < args.rows:
        compare(args, args.fallback_rows, python)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["drift", "serving", "all"], default="all")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--drift-rounds", type=int, default=1,
                        help="Lepton and Evidently alternated this many times (medians)")
    parser.add_argument("--no-evidently", action="store_true",
                        help="Lepton's drift only, without Evidently side by side")
    parser.add_argument("--evidently-timeout", type=float, default=1800.0)
    parser.add_argument("--fallback-rows", type=int, default=100_000,
                        help="both sides again at this size when Evidently times out")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    if args.part in ("serving", "all"):
        serving(args.rounds, args.duration, args.concurrency)
    if args.part in ("drift", "all"):
        drift_part(args)


if __name__ == "__main__":
    main()
