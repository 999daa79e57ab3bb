"""Evidently's side of `benchmarks/monitor.py --part drift`, in Evidently's own venv.

Evidently is never a Lepton dependency: `ensure_python()` builds a separate venv from
benchmarks/envs/evidently.txt on first use (under ~/.cache/lepton-bench/, or
$LEPTON_BENCH_CACHE; $EVIDENTLY_PYTHON names an existing interpreter instead) and `measure()`
runs this file as a script in it:

    EVIDENTLY_PYTHON benchmarks/evidently_drift.py DIR

which reads DIR/reference.npy and DIR/current.npy, builds the two pandas frames (timed as
"load"), runs DataDriftPreset with its defaults (timed as "drift") and prints one JSON
object: the times and, per column, the method Evidently chose, its score and threshold, and
whether its per-column drift test failed. Top-level imports are stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = Path(__file__).parent / "envs" / "evidently.txt"
# Evidently would otherwise try to send usage telemetry from the benchmark.
CHILD_ENV = {"DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}


def ensure_python() -> tuple[str, float | None, int]:
    """(interpreter, seconds spent installing or None when reused, packages in the venv)."""
    if os.environ.get("EVIDENTLY_PYTHON"):
        python = os.environ["EVIDENTLY_PYTHON"]
    else:
        cache = Path(os.environ.get("LEPTON_BENCH_CACHE", "~/.cache/lepton-bench"))
        venv = cache.expanduser() / "evidently"
        python = str(venv / "bin" / "python")
        marker = venv / "requirements.sha256"
        digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
        if not (marker.exists() and marker.read_text() == digest):
            print(f"installing Evidently into {venv} (once; not part of the measurement)",
                  flush=True)
            t0 = time.perf_counter()
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "-r", str(REQUIREMENTS)], check=True)
            marker.write_text(digest)
            installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"],
                                       capture_output=True, text=True, check=True).stdout
            return python, time.perf_counter() - t0, len(installed.split())
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True).stdout
    return python, None, len(installed.split())


def measure(python: str, folder: Path, timeout: float) -> dict:
    """Evidently's result on folder's data, or {"timed_out": seconds} past the timeout."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run([python, __file__, str(folder)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **CHILD_ENV})
    except subprocess.TimeoutExpired:
        return {"timed_out": time.perf_counter() - t0}
    if done.returncode != 0:
        raise RuntimeError(f"Evidently's run failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    folder = Path(sys.argv[1])
    t0 = time.perf_counter()
    ref = np.load(folder / "reference.npy")
    cur = np.load(folder / "current.npy")
    names = [f"c{j}" for j in range(ref.shape[1])]
    reference, current = pd.DataFrame(ref, columns=names), pd.DataFrame(cur, columns=names)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    t2 = time.perf_counter()
    result = snapshot.dict()
    t3 = time.perf_counter()
    columns: dict[str, dict] = {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            columns[config["column"]] = {"method": config.get("method"),
                                         "threshold": config.get("threshold"),
                                         "score": metric.get("value")}
    prefix = "Value Drift for column "
    for test in result.get("tests", []):
        if test.get("name", "").startswith(prefix):
            column = test["name"][len(prefix):]
            columns.setdefault(column, {})["drifted"] = test.get("status") == "FAIL"
    import evidently

    print(json.dumps({"version": evidently.__version__, "load_s": t1 - t0, "drift_s": t2 - t1,
                      "dict_s": t3 - t2, "columns": columns}))


if __name__ == "__main__":
    main()
