"""Distributed training on one machine, side by side in one run (python benchmarks/distributed.py):

1. samples/s of fit on the SPEC section 1 CNN: 2 processes x 1 thread (DDP, gloo) against
   1 process x 2 threads, and their test accuracy (target: ratio >= 0.9, equal accuracy);
2. launch to first step: ``--nproc 2`` (torch.distributed.run) against one process;
3. Lepton's DistributedStrategy against a hand-written DDP loop on the same data (>= 0.97x).

Rounds alternate A/B and the medians are printed (the machine may be shared and noisy).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS, EPOCHS, BATCH = int(os.environ.get("ROWS", 4096)), 1, 64


def _data():
    import numpy as np

    from lepton.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    prep = lambda a: (a[..., None] / 255.0).astype("float32")  # noqa: E731
    return prep(x[:ROWS]), y[:ROWS].astype(np.int64), prep(xt[:2000]), yt[:2000].astype(np.int64)


def _cnn():
    import torch

    from lepton.core import Sequential, layers

    torch.manual_seed(0)
    return Sequential([layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                       layers.MaxPooling2D((2, 2)), layers.Flatten(),
                       layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])


def worker(mode: str, out: str) -> None:
    """One process's part: 'lepton' (fit under whatever strategy applies) or 'hand' (DDP)."""
    import torch

    x, y, xt, yt = _data()
    rank = int(os.environ.get("RANK", 0))
    if mode == "first":
        model = _cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
        if rank == 0:
            Path(out).write_text(json.dumps({"first_step_at": time.time()}))
        return
    model = _cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    if mode == "lepton":
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, seed=1)
        seconds = time.perf_counter() - t0
    else:  # the hand-written DDP loop a PyTorch user would write, same data and order
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        strategy = model.compiled.strategy  # the process group and threads are set up
        net = model
        ddp = DistributedDataParallel(net)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        g = torch.Generator().manual_seed(1)
        n, world = len(xs), dist.get_world_size()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=g)
        for start in range(0, n, BATCH):
            idx = torch.tensor_split(order[start:start + BATCH], world)[strategy.rank]
            logits = ddp(xs[idx])
            loss = torch.nn.functional.cross_entropy(torch.log(logits.clamp_min(1e-7)), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
    accuracy = model.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    if rank == 0:
        Path(out).write_text(json.dumps({"samples_per_s": EPOCHS * ROWS / seconds,
                                         "accuracy": accuracy}))


def _run(nproc: int, mode: str, threads: int) -> dict:
    out = tempfile.mktemp(suffix=".json")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_NUM_THREADS": str(threads)}
    cmd = ([sys.executable, "-m", "lepton.train.launch", "--nproc", str(nproc)] if nproc > 1
           else [sys.executable])
    started = time.time()
    subprocess.run([*cmd, __file__, mode, out], env=env, check=True, cwd=ROOT,
                   capture_output=True)
    result = json.loads(Path(out).read_text())
    if "first_step_at" in result:
        result["launch_to_first_step_s"] = result["first_step_at"] - started
    return result


def main(rounds: int = 3) -> None:
    rows: dict[str, list[dict]] = {k: [] for k in ("1x2", "2x1", "hand", "first1", "first2")}
    for _ in range(rounds):  # interleaved A/B rounds
        rows["1x2"].append(_run(1, "lepton", 2))
        rows["2x1"].append(_run(2, "lepton", 1))
        rows["hand"].append(_run(2, "hand", 1))
        rows["first1"].append(_run(1, "first", 2))
        rows["first2"].append(_run(2, "first", 1))

    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in rows[key])

    one, two, hand = (med(k, "samples_per_s") for k in ("1x2", "2x1", "hand"))
    print(f"machine: {os.cpu_count()} CPUs, torch threads as labelled; {rounds} rounds, medians")
    print(f"1 proc x 2 threads : {one:8.0f} samples/s  test accuracy {med('1x2', 'accuracy'):.4f}")
    print(f"2 procs x 1 thread : {two:8.0f} samples/s  test accuracy {med('2x1', 'accuracy'):.4f}"
          f"  ratio {two / one:.2f} (target >= 0.9)")
    print(f"hand-written DDP   : {hand:8.0f} samples/s  Lepton/hand {two / hand:.2f} "
          "(target >= 0.97)")
    print(f"launch to first step: 1 proc {med('first1', 'launch_to_first_step_s'):.1f} s, "
          f"--nproc 2 {med('first2', 'launch_to_first_step_s'):.1f} s")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        worker(sys.argv[1], sys.argv[2])
    else:
        main(int(os.environ.get("ROUNDS", 3)))
