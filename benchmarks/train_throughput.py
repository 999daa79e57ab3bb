"""Training and inference throughput of the SPEC §1 CNN on full MNIST, side by side:

  lepton       Lepton ``fit`` with its defaults (float32 on CPU)
  lepton-fast  Lepton with its fastest switches on this machine (bf16 autocast; channels-last
               is always on)
  hand         an idiomatic hand-written PyTorch loop (whole-batch tensor indexing, no DataLoader)
  keras        Keras 3 on its torch backend
  lightning    PyTorch Lightning with the usual DataLoader

Each (framework, batch size) runs in a fresh process so "start to first step" includes the
interpreter start and imports. Steady-state samples/s skips the first 10 % of the epoch.
Runs are interleaved round by round; the best round is kept (the machine is shared).

    python benchmarks/train_throughput.py                  # full: 60,000 samples, 3 rounds
    python benchmarks/train_throughput.py --samples 6400 --rounds 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

FRAMEWORKS = ("hand", "lepton", "lepton-fast", "keras", "lightning")
THREADS = os.environ.get("BENCH_THREADS", "2")


# ----------------------------------------------------------------------------- child side
def child(framework: str, batch_size: int, samples: int, eval_samples: int, started: float) -> None:
    import numpy as np

    from lepton.datasets import mnist

    (x_train, y_train), (x_test, _) = mnist.load_data()
    x = (x_train[:samples, ..., None] / np.float32(255)).astype("float32")
    y = y_train[:samples].astype("int64")
    xt = (x_test[:eval_samples, ..., None] / np.float32(255)).astype("float32")
    warm = max(1, int(0.1 * (samples // batch_size)))
    result = RUNNERS[framework](x, y, xt, batch_size, warm, started)
    print("RESULT " + json.dumps(result), flush=True)


class StepClock:
    """Records the time of the first step and of the step that ends the warm-up."""

    def __init__(self, warm: int, started: float) -> None:
        self.warm, self.started, self.steps = warm, started, 0
        self.first = self.warm_end = None

    def tick(self) -> None:
        self.steps += 1
        if self.steps == 1:
            self.first = time.time() - self.started
        if self.steps == self.warm:
            self.warm_end = time.perf_counter()

    def rate(self, samples: int, batch_size: int) -> float:
        done = samples - self.warm * batch_size
        return done / (time.perf_counter() - self.warm_end)


def timed_inference(predict, xt) -> float:
    predict(xt[:512])
    start = time.perf_counter()
    predict(xt)
    return len(xt) / (time.perf_counter() - start)


def run_lepton(x, y, xt, batch_size, warm, started, precision="32"):
    import torch

    from lepton.core import Sequential, callbacks, layers
    from lepton.core.optimizers import Adam

    torch.manual_seed(0)
    model = Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=Adam(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision=precision)
    clock = StepClock(warm, started)

    class Tick(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.tick()

    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0, callbacks=[Tick()])
    end = time.perf_counter()
    rate = (len(x) - warm * batch_size) / (end - clock.warm_end)
    infer = timed_inference(lambda data: model.predict(data, batch_size=1024), xt)
    return {"train": rate, "infer": infer, "first_step": clock.first}


def run_lepton_fast(*args):
    return run_lepton(*args, precision="bf16")


def run_hand(x, y, xt, batch_size, warm, started):
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(5408, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    ys = torch.from_numpy(y)
    clock = StepClock(warm, started)
    model.train()
    correct, seen, running = 0, 0, 0.0
    order = torch.randperm(len(xs))
    for start in range(0, len(xs), batch_size):
        index = order[start: start + batch_size]
        xb, yb = xs[index], ys[index]
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        correct += (out.argmax(1) == yb).sum().item()
        seen += len(yb)
        clock.tick()
    rate = clock.rate(len(xs), batch_size)
    test = torch.from_numpy(xt).permute(0, 3, 1, 2).contiguous()

    def predict(data):
        model.eval()
        with torch.inference_mode():
            return torch.cat([torch.softmax(model(data[i: i + 1024]), 1)
                              for i in range(0, len(data), 1024)])

    return {"train": rate, "infer": timed_inference(predict, test), "first_step": clock.first}


def run_keras(x, y, xt, batch_size, warm, started):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    clock = StepClock(warm, started)

    class Tick(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            clock.tick()

    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0, callbacks=[Tick()])
    rate = clock.rate(len(x), batch_size)
    infer = timed_inference(lambda data: model.predict(data, batch_size=1024, verbose=0), xt)
    return {"train": rate, "infer": infer, "first_step": clock.first}


def run_lightning(x, y, xt, batch_size, warm, started):
    import logging

    import pytorch_lightning as pl
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.manual_seed(0)
    clock = StepClock(warm, started)

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Flatten(), nn.Linear(5408, 64), nn.ReLU(),
                                     nn.Linear(64, 10))

        def forward(self, xb):
            return self.net(xb)

        def training_step(self, batch, _):
            xb, yb = batch
            out = self(xb)
            loss = F.cross_entropy(out, yb)
            self.log("train_loss", loss)
            self.log("train_acc", (out.argmax(1) == yb).float().mean())
            return loss

        def on_train_batch_end(self, *args):
            clock.tick()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    xs = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    loader = DataLoader(TensorDataset(xs, torch.from_numpy(y)), batch_size=batch_size,
                        shuffle=True)
    model = Net()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, loader)
    rate = clock.rate(len(xs), batch_size)
    test = torch.from_numpy(xt).permute(0, 3, 1, 2).contiguous()

    def predict(data):
        out = trainer.predict(model, DataLoader(TensorDataset(data), batch_size=1024))
        return out

    model.predict_step = lambda batch, *_: torch.softmax(model(batch[0]), 1)
    return {"train": rate, "infer": timed_inference(predict, test), "first_step": clock.first}


RUNNERS = {"lepton": run_lepton, "lepton-fast": run_lepton_fast, "hand": run_hand,
           "keras": run_keras, "lightning": run_lightning}


# ---------------------------------------------------------------------------- parent side
def measure(framework: str, batch_size: int, args: argparse.Namespace) -> dict | None:
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "LEPTON_NUM_THREADS": THREADS,
           "PYTHONWARNINGS": "ignore", "KERAS_BACKEND": "torch"}
    started = time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", framework, str(batch_size),
                           str(args.samples), str(args.eval_samples), str(started)],
                          capture_output=True, text=True, env=env, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  {framework} bs={batch_size} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--eval-samples", type=int, default=10000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS))
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, bs, samples, eval_samples, started = args.child
        child(framework, int(bs), int(samples), int(eval_samples), float(started))
        return

    best: dict[tuple[str, int], dict] = {}
    for round_ in range(args.rounds):
        for bs in args.batch_sizes:
            for fw in args.frameworks:
                result = measure(fw, bs, args)
                print(f"round {round_ + 1} bs={bs:<4} {fw:<12} {json.dumps(result)}", flush=True)
                if result and (best.get((fw, bs)) is None or
                               result["train"] > best[(fw, bs)]["train"]):
                    best[(fw, bs)] = result

    print(f"\nSPEC §1 CNN, MNIST {args.samples} samples, {THREADS} threads, best of "
          f"{args.rounds} round(s)\n")
    print("| batch | framework | train samples/s | infer samples/s | start to first step (s) "
          "| lepton/this train | lepton/this infer |")
    print("|---|---|---|---|---|---|---|")
    for bs in args.batch_sizes:
        ours = best.get(("lepton", bs))
        for fw in args.frameworks:
            r = best.get((fw, bs))
            if not r:
                continue
            ratio = (f"{ours['train'] / r['train']:.2f}" if ours else "-")
            ratio_i = (f"{ours['infer'] / r['infer']:.2f}" if ours else "-")
            print(f"| {bs} | {fw} | {r['train']:,.0f} | {r['infer']:,.0f} | "
                  f"{r['first_step']:.1f} | {ratio} | {ratio_i} |")
        fast, hand = best.get(("lepton-fast", bs)), best.get(("hand", bs))
        if fast and hand:
            print(f"| {bs} | lepton-fast / hand | {fast['train'] / hand['train']:.2f}x | "
                  f"{fast['infer'] / hand['infer']:.2f}x | | | |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({f"{k[0]}@{k[1]}": v for k, v in best.items()}, handle, indent=2)


if __name__ == "__main__":
    main()
