"""Compression: every variant `lepton compress` makes against the same variant made by hand.

    python benchmarks/compress.py                 # full run (~15 min on 2 cores)
    python benchmarks/compress.py --quick         # a short look (~3 min)
    python benchmarks/compress.py --serve         # + lepton serve --runtime onnxruntime vs torch
    python benchmarks/compress.py --only serve    # the serving section alone

One process, one machine, everything side by side, at 1 and 2 threads. Three models, trained
here with lepton.core on bundled data: the second SPEC §1 MNIST CNN (Conv2D 32 -> MaxPool ->
Flatten -> Dense 64 -> Dense 10), a wide MLP 784-1024-1024-10 on flattened MNIST, and the SPEC
text model (Embedding -> Bidirectional(LSTM 32) -> Dense 2, from logits) on
tests/fixtures/sms_spam.tsv. By hand (what a user writes with the same libraries): the model
in torch eager; ``torch.onnx.export`` + an ``onnxruntime.InferenceSession`` (fp32); ORT's own
``quantize_static`` (QDQ, per channel, 1,024 calibration rows through a
CalibrationDataReader) and ``quantize_dynamic``. Lepton: the variants ``lepton.compress``
writes (``compress()`` with its gate, and ``quantize`` for the other INT8 method), run through
``open_runtime(...).run``, the call the server's batcher makes. Timed passes alternate between
all candidates for several rounds; each number is the median over rounds of the per-round
median. Then: structured pruning (50 %, fine-tuned), distillation (half-width student vs the
same student from scratch, 3 seeds), and optionally the serving section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


# ---------------------------------------------------------------- data and models

def mnist(train_rows: int, test_rows: int) -> tuple:
    from lepton.datasets import mnist as m

    (xt, yt), (xv, yv) = m.load_data()
    def scaled(images: np.ndarray) -> np.ndarray:
        return (images[..., None] / np.float32(255)).astype(np.float32)

    return (scaled(xt[:train_rows]), yt[:train_rows].astype(np.int64),
            scaled(xv[:test_rows]), yv[:test_rows].astype(np.int64))


def sms(length: int = 40, vocab: int = 4000) -> tuple:
    """Token ids from the SMS spam fixture: a word vocabulary from the first 4,500 messages."""
    rows = [line.split("\t", 1) for line in
            (ROOT / "tests" / "fixtures" / "sms_spam.tsv").read_text().splitlines()[1:]]
    words = [re.findall(r"[a-z0-9']+", text.lower()) for _, text in rows]
    labels = np.array([label == "spam" for label, _ in rows], dtype=np.int64)
    counts: dict[str, int] = {}
    for w in words[:4500]:
        for t in w:
            counts[t] = counts.get(t, 0) + 1
    index = {t: i + 2 for i, t in enumerate(sorted(counts, key=lambda t: -counts[t])[:vocab - 2])}
    ids = np.zeros((len(words), length), dtype=np.int64)
    for i, w in enumerate(words):
        seq = [index.get(t, 1) for t in w][:length]
        ids[i, :len(seq)] = seq
    return ids[:4500], labels[:4500], ids[4500:], labels[4500:]


def build(kind: str, data: tuple) -> object:
    from lepton.core import Sequential, layers, losses

    if kind == "cnn":
        model = Sequential([
            layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)), layers.Flatten(),
            layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    elif kind == "mlp":
        model = Sequential([
            layers.Dense(1024, activation="relu", input_shape=(784,)),
            layers.Dense(1024, activation="relu"), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    else:
        model = Sequential([
            layers.Embedding(4000, 32, input_shape=(data[0].shape[1],)),
            layers.Bidirectional(layers.LSTM(32)), layers.Dense(2)])
        model.compile(optimizer="adam",
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return model


def datasets(kind: str, quick: bool) -> tuple:
    if kind == "text":
        return sms()
    x, y, xv, yv = mnist(5000 if quick else 20000, 2000 if quick else 10000)
    if kind == "mlp":
        return x.reshape(len(x), -1), y, xv.reshape(len(xv), -1), yv
    return x, y, xv, yv


# ---------------------------------------------------------------- by hand

def hand_export(model, x: np.ndarray, path: Path) -> Path:
    """What a user writes: torch.onnx.export with a dynamic batch axis (TorchScript exporter:
    the dynamo one needs onnxscript, not installed)."""
    import torch

    example = torch.from_numpy(x[:2])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], opset_version=17,
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return path


def hand_quantize(src: Path, dst: Path, method: str, calib: np.ndarray) -> Path:
    from onnxruntime import quantization as q

    if method == "dynamic":
        q.quantize_dynamic(str(src), str(dst), weight_type=q.QuantType.QInt8)
        return dst

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": calib[i:i + 64]} for i in range(0, len(calib), 64)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, activation_type=q.QuantType.QInt8,
                      weight_type=q.QuantType.QInt8)
    return dst


def hand_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------- candidates and timing

class Candidate:
    """One thing to time: ``call(x)`` returns the model's output for a batch ``x``."""

    def __init__(self, name: str, side: str, variant: str, size: int,
                 opener: Callable[[int], Callable[[np.ndarray], np.ndarray]]) -> None:
        self.name, self.side, self.variant, self.size = name, side, variant, size
        self.opener = opener
        self.call: Callable | None = None
        self.accuracy = float("nan")
        self.b1: dict[int, list[float]] = {}
        self.b64: dict[int, list[float]] = {}


def torch_opener(model):
    import torch

    def open_(threads: int):
        def call(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
        return call
    return open_


def ort_opener(path: Path):
    def open_(threads: int):
        session = hand_session(path, threads)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    return open_


def lepton_file_opener(path: Path):
    """Lepton's model.onnx in Lepton's session options, called bare: the variant itself."""
    from lepton.artifact.runtimes.onnxruntime import session

    def open_(threads: int):
        sess = session((path / "model.onnx").read_bytes(), threads)
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    return open_


def lepton_opener(path: Path):
    from lepton.artifact.runtimes import open_runtime

    def open_(threads: int):
        runtime = open_runtime(path, threads=threads)
        name = runtime.inputs[0].name
        return lambda x: next(iter(runtime.run([{name: x}])[0].values()))
    return open_


def accuracy(call: Callable, x: np.ndarray, y: np.ndarray) -> float:
    out = np.concatenate([call(np.ascontiguousarray(x[i:i + 500])) for i in range(0, len(x), 500)])
    return float((out.argmax(1) == y).mean() * 100)


def burst(call: Callable, x: np.ndarray, seconds: float) -> float:
    """Median seconds per call over a timed burst, after a warm-up."""
    for _ in range(3):
        call(x)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_all(cands: list[Candidate], x: np.ndarray, threads: int, rounds: int,
             seconds: float) -> None:
    import torch

    torch.set_num_threads(threads)
    for c in cands:
        c.call = c.opener(threads)
    one, many = np.ascontiguousarray(x[:1]), np.ascontiguousarray(x[np.arange(64) % len(x)])
    for r in range(rounds):  # alternate; reverse every other round so order bias cancels
        for c in (cands if r % 2 == 0 else cands[::-1]):
            c.b1.setdefault(threads, []).append(burst(c.call, one, seconds))
            c.b64.setdefault(threads, []).append(burst(c.call, many, seconds))
    for c in cands:
        c.call = None


def p50_ms(c: Candidate, t: int) -> float:
    return float(np.median(c.b1[t])) * 1000


def rps64(c: Candidate, t: int) -> float:
    return 64 / float(np.median(c.b64[t]))


# ---------------------------------------------------------------- one model, every variant

PAIRS = [("fp32", "torch eager"), ("onnx-fp32", "ORT fp32"), ("int8-static", "ORT quantize_static"),
         ("int8-dynamic", "ORT quantize_dynamic"), ("pruned-50", None),
         ("pruned-50-onnx", "ORT fp32 of the pruned net")]


def run_model(kind: str, args: argparse.Namespace, tmp: Path, say: Callable) -> dict:
    from lepton.compress import quantize
    from lepton.compress.run import compress
    from lepton.compress.source import file_size
    from lepton.core import load_model
    from lepton.core.device import set_threads

    set_threads(2, interop=1)
    x, y, xv, yv = datasets(kind, args.quick)
    work = tmp / kind
    work.mkdir(parents=True)
    model = build(kind, (x,))
    epochs = 1 if args.quick else args.epochs
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    say(f"[{kind}] trained {epochs} epoch(s) on {len(x):,} rows in "
        f"{time.perf_counter() - start:.0f} s")
    art = model.save(work / "fp32", metadata={"task": "multiclass"})
    np.savez(work / "test.npz", x=xv, y=yv)
    np.savez(work / "train.npz", x=x, y=y)
    prunable = kind != "text"  # the text model's only Dense is its output layer
    start = time.perf_counter()
    result = compress(art, str(work / "test.npz"), quantize="auto",
                      prune=0.5 if prunable else None, fine_tune_epochs=args.fine_tune_epochs,
                      export=True, train_data=str(work / "train.npz"), register=False,
                      threads=2, out=work / "lepton", say=lambda *_: None)
    say(f"[{kind}] lepton compress made {len(result.rows) - 1} variants in "
        f"{time.perf_counter() - start:.0f} s; recommended {result.recommended}")
    paths = {r.name: r.path for r in result.rows}
    if kind == "mlp":  # the other INT8 method too, made by lepton.compress.quantize
        paths["int8-static"] = quantize(art, work / "lepton" / "int8-static", "static",
                                        calibration=x[:1024])
    teacher = load_model(art).eval()
    hand = {"torch eager": (teacher, None),
            "ORT fp32": (None, hand_export(teacher, x, work / "hand-fp32.onnx"))}
    hand["ORT quantize_static" if kind == "cnn" else "ORT quantize_dynamic"] = (None, None)
    if kind == "mlp":
        hand["ORT quantize_static"] = (None, None)
    for label in [k for k in hand if k.startswith("ORT quantize")]:
        method = label.split("_")[1]
        hand[label] = (None, hand_quantize(hand["ORT fp32"][1], work / f"hand-{method}.onnx",
                                           method, x[:1024]))
    if "pruned-50" in paths:
        hand["ORT fp32 of the pruned net"] = (None, hand_export(
            load_model(paths["pruned-50"]).eval(), x, work / "hand-pruned.onnx"))
    mine: dict[str, list[Candidate]] = {}
    for name, path in paths.items():
        mine[name] = [Candidate(f"lepton {name}", "lepton", name, file_size(path),
                                lepton_opener(path))]
        if (path / "model.onnx").is_file():
            mine[name].append(Candidate(f"lepton {name} [file]", "file", name,
                                        file_size(path), lepton_file_opener(path)))
    cands = []
    for label, (net, onnx_path) in hand.items():
        size = os.path.getsize(onnx_path) if onnx_path else file_size(art)
        cands.append(Candidate(label, "hand", label, size,
                               torch_opener(net) if net is not None else ort_opener(onnx_path)))
        cands += mine.pop(next((a for a, b in PAIRS if b == label), ""), [])
    cands += [c for group in mine.values() for c in group]
    import torch
    torch.set_num_threads(2)
    for c in cands:
        c.accuracy = accuracy(c.opener(2), xv, yv)
    for threads in args.threads:
        start = time.perf_counter()
        time_all(cands, xv, threads, args.rounds, args.seconds)
        say(f"[{kind}] timed {len(cands)} candidates at {threads} thread(s) in "
            f"{time.perf_counter() - start:.0f} s")
    return {"kind": kind, "rows": len(x), "test_rows": len(xv), "epochs": epochs,
            "candidates": {c.name: {"side": c.side, "variant": c.variant, "size": c.size,
                                    "accuracy": c.accuracy,
                                    **{f"p50_ms_b1_t{t}": p50_ms(c, t) for t in args.threads},
                                    **{f"rows_s_b64_t{t}": rps64(c, t) for t in args.threads},
                                    "rounds": {t: (c.b1[t], c.b64[t]) for t in args.threads}}
                           for c in cands},
            "gate": {r["variant"]: r["rejected"] or "accepted" for r in result.table},
            "gate_numbers": result.table, "recommended": result.recommended,
            "pairs": [(f"lepton {a}{s}", b) for a, b in PAIRS for s in ("", " [file]")
                      if f"lepton {a}{s}" in {c.name for c in cands} and b in hand]}


# ---------------------------------------------------------------- distillation

def distillation(args: argparse.Namespace, tmp: Path, say: Callable) -> dict:
    """Half-width student distilled from the CNN vs the same student from scratch."""
    import torch

    from lepton.compress import distill
    from lepton.compress.distillation import half_student, train_student
    from lepton.core import load_model

    x, y, xv, yv = datasets("cnn", args.quick)
    teacher_path = tmp / "cnn" / "fp32"
    teacher = load_model(teacher_path).eval()
    torch_call = torch_opener(teacher)(2)
    out = {"teacher": accuracy(torch_call, xv, yv), "distilled": [], "scratch": []}
    epochs = 1 if args.quick else args.distill_epochs
    for seed in range(args.seeds):
        start = time.perf_counter()
        path = distill(teacher_path, "half", (x, y), path=tmp / f"student-{seed}",
                       epochs=epochs, seed=seed)
        out["distilled"].append(accuracy(torch_opener(load_model(path).eval())(2), xv, yv))
        torch.manual_seed(seed)
        student = train_student(half_student(teacher), x, y, None, epochs=epochs, seed=seed)
        out["scratch"].append(accuracy(torch_opener(student)(2), xv, yv))
        say(f"[distill] seed {seed}: distilled {out['distilled'][-1]:.2f}, scratch "
            f"{out['scratch'][-1]:.2f} ({time.perf_counter() - start:.0f} s)")
    out["epochs"] = epochs
    return out


# ---------------------------------------------------------------- report

def ratio(c: dict, ours: str, theirs: str, t: int, batch: int) -> float:
    """Speed of ``ours`` over ``theirs``: the median over rounds of the per-round ratio (the
    two were timed in the same round, next to each other, so load drift cancels)."""
    a, b = c[ours]["rounds"][t][batch != 1], c[theirs]["rounds"][t][batch != 1]
    return float(np.median(np.asarray(b) / np.asarray(a)))


def table(res: dict, threads: list[int]) -> list[str]:
    cands = res["candidates"]
    lines = [f"\n### {res['kind']} ({res['rows']:,} training rows, {res['epochs']} epoch(s); "
             f"accuracy on {res['test_rows']:,} held-out rows)", "",
             "| candidate | size | accuracy | " + " | ".join(
                 f"p50 b1 ms ({t}t) | rows/s b64 ({t}t)" for t in threads) + " | gate |",
             "|---|---:|---:|" + "---:|---:|" * len(threads) + "---|"]
    for name, c in cands.items():
        verdict = res["gate"].get(c["variant"], "") if c["side"] == "lepton" else ""
        if c["side"] == "lepton" and c["variant"] == res["recommended"]:
            verdict = "**recommended**"
        cells = [f"{c[f'p50_ms_b1_t{t}']:.3f} | {c[f'rows_s_b64_t{t}']:,.0f}" for t in threads]
        lines.append(f"| {name} | {c['size'] / 1e6:.2f} MB | {c['accuracy']:.2f} | "
                     + " | ".join(cells) + f" | {verdict} |")
    lines += ["", "| Lepton / by hand | " + " | ".join(f"b1 ({t}t) | b64 ({t}t)" for t in threads)
              + " |", "|---|" + "---:|---:|" * len(threads)]
    for ours, theirs in res["pairs"]:
        if theirs is None:
            continue
        cells = [f"{ratio(cands, ours, theirs, t, 1):.2f}x | "
                 f"{ratio(cands, ours, theirs, t, 64):.2f}x" for t in threads]
        lines.append(f"| {ours} / {theirs} | " + " | ".join(cells) + " |")
    return lines


def check(label: str, ok: bool, detail: str, verdicts: list[str]) -> None:
    verdicts.append(f"- {'met' if ok else 'MISSED'}: {label} ({detail})")


def targets(results: dict, threads: list[int]) -> list[str]:
    v: list[str] = []
    for kind, res in results.items():
        if kind in ("distill", "serve"):
            continue
        c = res["candidates"]
        for ours, theirs in res["pairs"]:
            if theirs is None:
                continue
            worst = min(ratio(c, ours, theirs, t, b) for t in threads for b in (1, 64))
            check(f"{kind}: {ours} >= 0.95x {theirs} at b1 and b64", worst >= 0.95,
                  f"worst {worst:.2f}x", v)
        fp32 = c["lepton onnx-fp32"]
        if kind == "cnn":
            for t in threads:
                r64 = ratio(c, "lepton onnx-fp32", "torch eager", t, 64)
                r1 = ratio(c, "lepton onnx-fp32", "torch eager", t, 1)
                check(f"cnn: ORT fp32 >= 3x torch eager at b64, >= 2x at b1 ({t}t)",
                      r64 >= 3 and r1 >= 2, f"{r64:.2f}x b64, {r1:.2f}x b1", v)
            q = c["lepton int8-static"]
            lost = fp32["accuracy"] - q["accuracy"]
            check("cnn: INT8 loses <= 0.3 points, file <= 30% of fp32",
                  lost <= 0.3 and q["size"] <= 0.3 * fp32["size"],
                  f"{lost:+.2f} points lost, {q['size'] / fp32['size']:.0%} size", v)
            g = {r["variant"]: r for r in res["gate_numbers"]}
            a, b = g["onnx-fp32"], g["int8-static"]
            beaten = a["p50_ms_b1"] < b["p50_ms_b1"] and a["rows_per_s_b64"] > b["rows_per_s_b64"]
            why = res["gate"].get("int8-static", "")
            check("cnn: INT8 slower than ORT fp32 is rejected, naming onnx-fp32 when it is "
                  "faster at both sizes", why != "accepted" and (not beaten or why.startswith(
                      "onnx-fp32")), f"gate: {why}", v)
        if kind == "mlp":
            for name in ("lepton int8-dynamic", "lepton int8-static"):
                q = c[name]
                lost = fp32["accuracy"] - q["accuracy"]
                worst = min(ratio(c, name, "lepton onnx-fp32", t, b)
                            for t in threads for b in (1, 64))
                check(f"mlp: {name} >= 3x ORT fp32 at b1 and b64, <= 0.5 points lost",
                      worst >= 3 and lost <= 0.5, f"worst {worst:.2f}x, {lost:+.2f} points", v)
        for t in threads:
            r = ratio(c, f"lepton {res['recommended']}", "torch eager", t, 64)
            check(f"{kind}: recommended ({res['recommended']}) >= 4x torch eager at b64 ({t}t)",
                  r >= 4, f"{r:.2f}x", v)
        if "lepton pruned-50-onnx" in c:
            lost = c["lepton fp32"]["accuracy"] - c["lepton pruned-50"]["accuracy"]
            for t in threads:
                r = ratio(c, "lepton pruned-50-onnx", "lepton onnx-fp32", t, 64)
                rt = ratio(c, "lepton pruned-50", "lepton fp32", t, 64)
                check(f"{kind}: pruned 50% >= 1.6x unpruned at b64 (ORT, {t}t), <= 0.5 points",
                      r >= 1.6 and lost <= 0.5,
                      f"ORT {r:.2f}x, torch {rt:.2f}x, {lost:+.2f} points lost", v)
    if "distill" in results:
        d = results["distill"]
        dm, sm = float(np.mean(d["distilled"])), float(np.mean(d["scratch"]))
        check("distilled half-width student within 0.3 points of the teacher",
              d["teacher"] - dm <= 0.3, f"teacher {d['teacher']:.2f}, student {dm:.2f}", v)
        check("distilled student better than the same student from scratch", dm > sm,
              f"{dm:.2f} ± {np.std(d['distilled']):.2f} vs {sm:.2f} ± {np.std(d['scratch']):.2f}",
              v)
    return v


# ---------------------------------------------------------------- serving

def serving(artifact: Path, args: argparse.Namespace, tmp: Path, say: Callable) -> dict:
    """`lepton serve --runtime onnxruntime` vs `--runtime torch` on the same ONNX artifact,
    single images and 64-image requests (V2 binary tensors, JSON for single images), each
    server in its own process (1 intra-op thread), the load generator of benchmarks/
    serve_throughput.py in this process; rounds interleaved, best round kept as there."""
    import shutil
    import subprocess
    import urllib.request

    from serve_throughput import cpu_seconds, free_port, stop, wait_ready

    from lepton.serve.loadgen import infer_request
    from lepton.serve.loadgen import measure as load

    served = tmp / "serve" / "cnn"
    shutil.copytree(artifact, served)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEPTON_HOME": str(tmp / "serve-home"),
           "OMP_NUM_THREADS": "1"}
    procs, out = {}, {}
    try:
        for runtime in ("torch", "onnxruntime"):
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-m", "lepton", "serve", str(served),
                                     "--runtime", runtime, "--threads", "1", "--port",
                                     str(port)], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url + "/v2/health/ready", proc, any_answer=False)
            procs[runtime] = (proc, url)
        with urllib.request.urlopen(procs["torch"][1] + "/v2/models/cnn", timeout=5) as r:
            meta = json.loads(r.read())
        for runtime in procs:
            with urllib.request.urlopen(procs[runtime][1] + "/v2/models/cnn", timeout=5) as r:
                out.setdefault(runtime, {})["platform"] = json.loads(r.read()).get("platform")
        bodies = {"json-1": infer_request(meta, rows=1),
                  "binary-1": infer_request(meta, rows=1, binary=True),
                  "binary-64": infer_request(meta, rows=64, binary=True)}
        for round_ in range(args.serve_rounds):
            for c in (1, 64):
                for kind, body in bodies.items():
                    for runtime, (proc, url) in procs.items():
                        cpu = cpu_seconds(proc.pid)
                        r = load(url + "/v2/models/cnn/infer", body[0], body[1],
                                 concurrency=c, duration_s=args.serve_duration).as_dict()
                        r["server_cpu_us"] = round(1e6 * (cpu_seconds(proc.pid) - cpu)
                                                   / max(1, r["requests"]), 1)
                        r["images_s"] = r["rps"] * int(kind.split("-")[1])
                        key = f"{kind} c={c}"
                        best = out[runtime].get(key)
                        if best is None or r["rps"] > best["rps"]:
                            out[runtime][key] = r
                        say(f"[serve] round {round_ + 1} {runtime:<11} {key:<14} "
                            f"{r['rps']:>8,.0f} req/s p50 {r['p50_ms']:6.2f} ms "
                            f"p99 {r['p99_ms']:7.2f} ms errors {r['errors'] or 0}")
    finally:
        for runtime, (proc, _) in procs.items():
            out.setdefault(runtime, {})["exit_code"] = stop(proc)
    return out


def serve_table(res: dict) -> list[str]:
    keys = [k for k in res["onnxruntime"] if "c=" in k]
    lines = ["\n### lepton serve: --runtime onnxruntime vs --runtime torch (CNN, 1 thread each)",
             "", "| request, concurrency | torch req/s (p50 / p99 ms) | onnxruntime req/s "
             "(p50 / p99 ms) | images/s torch / ORT | ORT / torch |",
             "|---|---:|---:|---:|---:|"]
    for k in keys:
        t, o = res["torch"][k], res["onnxruntime"][k]
        lines.append(f"| {k} | {t['rps']:,.0f} ({t['p50_ms']:.2f} / {t['p99_ms']:.1f}) | "
                     f"{o['rps']:,.0f} ({o['p50_ms']:.2f} / {o['p99_ms']:.1f}) | "
                     f"{t['images_s']:,.0f} / {o['images_s']:,.0f} | "
                     f"{o['rps'] / max(t['rps'], 1e-9):.2f}x |")
    lines.append(f"\nV2 metadata platform: torch server {res['torch'].get('platform')}, "
                 f"ORT server {res['onnxruntime'].get('platform')}")
    return lines


def untrained_onnx(tmp: Path) -> Path:
    from lepton.compress import export

    model = build("cnn", ())
    model.build_for([(28, 28, 1)], ["float32"])
    art = model.save(tmp / "cnn-untrained", metadata={"task": "multiclass"})
    return export(art, "onnx", tmp / "cnn-untrained-onnx")


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small data, 1 epoch, fewer rounds: a short look")
    parser.add_argument("--only", default="cnn,mlp,text,distill",
                        help="comma list of sections: cnn, mlp, text, distill, serve")
    parser.add_argument("--serve", action="store_true", help="add the serving section")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 7)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per timed burst (default 0.2)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of each model")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--distill-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--serve-duration", type=float, default=None)
    parser.add_argument("--serve-rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "compress.json"))
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.seconds = args.seconds or (0.15 if args.quick else 0.2)
    args.serve_duration = args.serve_duration or (1.5 if args.quick else 4.0)
    if args.quick:
        args.seeds = min(args.seeds, 2)
    sections = set(args.only.split(",")) | ({"serve"} if args.serve else set())
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer logs to the root logger
    warnings.filterwarnings("ignore")
    os.environ.setdefault("LEPTON_HOME", tempfile.mkdtemp(prefix="lepton-compress-home-"))
    tmp = Path(tempfile.mkdtemp(prefix="lepton-compress-bench-"))
    started = time.perf_counter()

    def say(text: str) -> None:
        print(f"{time.perf_counter() - started:6.0f}s {text}", flush=True)

    say(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
        f"threads {args.threads}, {args.rounds} rounds x {args.seconds} s bursts")
    results: dict = {}
    for kind in ("cnn", "mlp", "text"):
        if kind in sections:
            results[kind] = run_model(kind, args, tmp, say)
    if "distill" in sections and "cnn" in results:
        results["distill"] = distillation(args, tmp, say)
    if "serve" in sections:
        onnx = (Path(results["cnn"]["gate_numbers"][1]["path"]) if "cnn" in results
                else untrained_onnx(tmp))
        results["serve"] = serving(onnx, args, tmp, say)
    lines = [f"load average at the end {os.getloadavg()[0]:.2f}; total "
             f"{time.perf_counter() - started:.0f} s"]
    for kind in ("cnn", "mlp", "text"):
        if kind in results:
            lines += table(results[kind], args.threads)
            lines.append("\ngate (lepton compress, 2 threads): " + "; ".join(
                f"{k}: {v}" for k, v in results[kind]["gate"].items()))
    if "distill" in results:
        d = results["distill"]
        lines += [f"\n### distillation (CNN teacher {d['teacher']:.2f}; half-width student, "
                  f"{d['epochs']} epochs, {len(d['distilled'])} seeds)", "",
                  "| student | accuracy per seed | mean ± std |", "|---|---|---:|"]
        for k in ("distilled", "scratch"):
            lines.append(f"| {k} | {', '.join(f'{a:.2f}' for a in d[k])} | "
                         f"{np.mean(d[k]):.2f} ± {np.std(d[k]):.2f} |")
    if "serve" in results:
        lines += serve_table(results["serve"])
    lines += ["\n### targets"] + targets(results, args.threads)
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
