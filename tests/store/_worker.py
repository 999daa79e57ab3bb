"""Writer processes for the store's concurrency and kill tests (run by the tests, not pytest).

Every mode opens the store from LEPTON_DB_URL / LEPTON_HOME, like any Lepton process would.
Acknowledgements are printed, one line each and flushed, only *after* the store returned:
a line on stdout is a promise the test then checks.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from lepton.errors import ConflictError
from lepton.registry import Registry
from lepton.store import Store


def wait_for(go: Path) -> None:
    while not go.exists():
        time.sleep(0.001)


def mixed(worker: str, writes: str, go: str) -> None:
    """``writes`` transactions of every kind the server and trainer make, as fast as it can;
    prints how many rows of each kind it wrote (all acknowledged)."""
    store = Store.open()
    rng = random.Random(worker)
    run_id = store.start_run(f"run-{worker}", {"worker": worker})
    wait_for(Path(go))
    counts = {"predictions": 0, "feedback": 0, "metrics": 0}
    last = None
    for i in range(int(writes)):
        kind = rng.random()
        if kind < 0.6 or last is None:
            batch = [{"id": f"{worker}-{i}-{j}", "model": "m", "version": 1,
                      "outputs": [rng.random()], "latency_ms": 1.0}
                     for j in range(rng.randint(1, 8))]
            counts["predictions"] += store.log_predictions(batch)
            last = batch[0]["id"]
        elif kind < 0.9:
            store.add_feedback(last, label=rng.randint(0, 1), key=f"{worker}-{i}")
            counts["feedback"] += 1
        else:
            store.log_metrics(run_id, {"loss": rng.random()}, step=i)
            counts["metrics"] += 1
    store.end_run(run_id)
    print(json.dumps(counts), flush=True)


def kill_target(worker: str, batches: str) -> None:
    """Log batches of predictions, each followed by feedback; ids are deterministic, so a
    restarted writer replays what it may or may not have written before it was killed."""
    store = Store.open()
    for b in range(int(batches)):
        ids = [f"{worker}-{b}-{j}" for j in range(16)]
        store.log_predictions([{"id": i, "model": "m", "outputs": {"p": [0.25, 0.75]},
                                "input_sample": [1.0, 2.0]} for i in ids])
        print("P " + " ".join(ids), flush=True)
        store.add_feedback(ids[0], label="fraud", key=f"fb-{ids[0]}")
        print(f"F fb-{ids[0]}", flush=True)
    print("done", flush=True)


def register(name: str, version: str, artifact: str, go: str) -> None:
    registry = Registry()
    wait_for(Path(go))
    try:
        got = registry.register(artifact, name, version=int(version))
        print(f"won {got['version']} {got['path']}", flush=True)
    except ConflictError as exc:
        print(f"conflict {exc}", flush=True)


def promote(name: str, seed: str, moves: str, versions: str, go: str) -> None:
    registry = Registry()
    rng = random.Random(seed)
    wait_for(Path(go))
    for _ in range(int(moves)):
        registry.promote(name, rng.randint(1, int(versions)), "production", reason=seed)
    print("done", flush=True)


def watch(name: str, stop: str) -> None:
    """Read the production alias as fast as possible until ``stop`` exists."""
    registry = Registry()
    seen = 0
    while not Path(stop).exists():
        registry.resolve(f"{name}@production")
        seen += 1
    print(f"seen {seen}", flush=True)


if __name__ == "__main__":
    modes = {"mixed": mixed, "kill_target": kill_target, "register": register,
             "promote": promote, "watch": watch}
    mode, *args = sys.argv[1:]
    modes[mode](*args)
