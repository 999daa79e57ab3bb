"""`lepton train --model auto` from files against scikit-learn on the same splits (issue 3 §5).

Each dataset is written to disk the way a user would have it (CSV, TSV, a folder of PNGs),
then `lepton train` runs as a fresh process (so its time includes imports, reading,
preprocessing, training, the report and registering), and scikit-learn's
LogisticRegression and HistGradientBoostingClassifier are fitted on exactly the same
train (+ validation) rows and scored on the same test rows.

    python benchmarks/tabular_baselines.py                  # breast cancer, digits, SMS spam
    python benchmarks/tabular_baselines.py --only mnist breastmnist
    python benchmarks/tabular_baselines.py --quick          # short settings, for a smoke run
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


def lepton_train(data: Path, out: Path, target: str | None, extra: list[str]) -> dict:
    """Run `lepton train` in a new process; returns its test metrics and wall time."""
    cmd = [sys.executable, "-m", "lepton", "train", "--data", str(data), "--out", str(out),
           "--quiet", "--no-register", *extra]
    if target:
        cmd += ["--target", target]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"lepton train failed on {data}:\n{proc.stderr[-2000:]}")
    meta = json.loads((out / "lepton.json").read_text())["metadata"]
    return {"seconds": seconds, **meta["metrics"], "model": meta["lineage"]["config"]["model"]}


def baselines(data: Path, target: str, boosting: bool = True) -> dict[str, float]:
    """LogisticRegression and HistGradientBoosting on Lepton's own split and features
    (no boosting on 10,000 TF-IDF columns: it is not what anyone would use there)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from lepton.train.datasets import prepare_table

    p = prepare_table(data, target, None, {})
    x_train = np.concatenate([p.train_read(np.arange(len(p.y_train))), p.x_val])
    y_train = np.concatenate([p.y_train, p.y_val])
    out = {}
    models = [("logreg", LogisticRegression(max_iter=3000))]
    if boosting:
        models.append(("hgb", HistGradientBoostingClassifier(random_state=0)))
    for name, model in models:
        start = time.perf_counter()
        model.fit(x_train, y_train)
        out[name] = float((model.predict(p.x_test) == p.y_test).mean())
        out[f"{name}_seconds"] = time.perf_counter() - start
    return out


def write_sklearn_csv(name: str, folder: Path) -> Path:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    path = folder / f"{name}.csv"
    loader(as_frame=True).frame.to_csv(path, index=False)
    return path


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_mnist_folder(folder: Path, limit: int | None) -> Path:
    from PIL import Image

    root = folder / "mnist"
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _idx(SHARED / "mnist" / f"{prefix}-images-idx3-ubyte.gz")
        labels = _idx(SHARED / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")
        n = len(labels) if limit is None else min(limit, len(labels))
        for i in range(n):
            d = root / split / str(labels[i])
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(d / f"{i}.png")
    return root


def write_breastmnist_folder(folder: Path) -> Path:
    from PIL import Image

    data = np.load(SHARED / "medical" / "breastmnist.npz")
    root = folder / "breastmnist"
    names = {0: "malignant", 1: "benign"}
    for split in ("train", "val", "test"):
        for i, (img, label) in enumerate(zip(data[f"{split}_images"],
                                             data[f"{split}_labels"].reshape(-1), strict=True)):
            d = root / split / names[int(label)]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


def spam_f1(out: Path, data: Path) -> dict:
    """Accuracy and F1 of the spam class on the test split, from the model's own metrics."""
    meta = json.loads((out / "lepton.json").read_text())["metadata"]
    return {"spam_f1": meta["metrics"]["f1"], "labels": meta["labels"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["breast_cancer", "digits", "sms_spam"],
                        choices=["breast_cancer", "digits", "sms_spam", "mnist", "breastmnist"])
    parser.add_argument("--quick", action="store_true", help="short settings (smoke test)")
    parser.add_argument("--mnist-limit", type=int, default=None,
                        help="write only this many MNIST images per split")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    extra = ["--epochs", "3"] if args.quick else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("LEPTON_HOME", str(tmp / "home"))
        for name in args.only:
            out = tmp / f"{name}_model"
            if name in ("breast_cancer", "digits"):
                data = write_sklearn_csv(name, tmp)
                ours = lepton_train(data, out, "target", extra)
                theirs = baselines(data, "target")
                rows.append((name, ours, theirs))
            elif name == "sms_spam":
                data = SHARED / "text" / "sms_spam.tsv"
                ours = lepton_train(data, out, "Label", extra)
                ours.update(spam_f1(out, data))
                rows.append((name, ours, baselines(data, "Label", boosting=False)))
            elif name == "mnist":
                start = time.perf_counter()
                data = write_mnist_folder(tmp, args.mnist_limit)
                print(f"wrote MNIST PNGs in {time.perf_counter() - start:.0f} s", flush=True)
                rows.append((name, lepton_train(data, out, None, extra), {}))
            else:
                data = write_breastmnist_folder(tmp)
                rows.append((name, lepton_train(data, out, None, extra), {}))
            name, ours, theirs = rows[-1]
            line = (f"{name:14s} lepton acc {ours['accuracy']:.4f} in {ours['seconds']:.1f} s "
                    f"({ours['model']})")
            for key in ("roc_auc", "f1"):
                if key in ours:
                    line += f"  {key} {ours[key]:.4f}"
            for base in ("logreg", "hgb"):
                if base in theirs:
                    line += (f" | {base} {theirs[base]:.4f} (ours/theirs "
                             f"{ours['accuracy'] / theirs[base]:.3f})")
            print(line, flush=True)


if __name__ == "__main__":
    main()
