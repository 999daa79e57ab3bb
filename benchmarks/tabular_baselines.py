"""`lepton train --model auto` from files against scikit-learn on the same splits (issue 3 §5).

Each dataset is written to disk the way a user would have it (CSV, TSV, a folder of PNGs),
then `lepton train` runs as a fresh process (so its time includes imports, reading,
preprocessing, training, the report and registering), and scikit-learn's
LogisticRegression and HistGradientBoostingClassifier are fitted on exactly the same
train (+ validation) rows and scored on the same test rows.

    python benchmarks/tabular_baselines.py                  # breast cancer, digits, SMS spam
    python benchmarks/tabular_baselines.py --only mnist breastmnist
    python benchmarks/tabular_baselines.py --quick          # short settings, for a smoke run
    python benchmarks/tabular_baselines.py --only breast_cancer digits wine iris --splits 5
                                      # issue 13: mean over 5 stratified 80/20 splits (seeds 0-4)
    ... --splits 5 --tune 300         # also `lepton tune` with a 300 s budget on each split
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
    return {"seconds": seconds, **meta["metrics"], "model": meta["training"]["config"]["model"]}


def lepton_tune(data: Path, out: Path, target: str, seed: int, budget: float) -> dict:
    """Run `lepton tune --timeout budget` in a new process; returns the best model's metrics."""
    cmd = [sys.executable, "-m", "lepton", "tune", "--data", str(data), "--out", str(out),
           "--target", target, "--timeout", str(budget), "--trials", "100000", "--seed",
           str(seed), "--quiet", "--no-register"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"lepton tune failed on {data}:\n{proc.stderr[-2000:]}")
    meta = json.loads((out / "model" / "lepton.json").read_text())["metadata"]
    return {"seconds": seconds, **meta["metrics"]}


def baselines(data: Path, target: str, boosting: bool = True,
              seed: int = 42) -> dict[str, float]:
    """LogisticRegression and HistGradientBoosting on Lepton's own split and features
    (no boosting on 10,000 TF-IDF columns: it is not what anyone would use there)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from lepton.train.datasets import prepare_table

    p = prepare_table(data, target, None, {"seed": seed})
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

    loader = {"breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits,
              "wine": datasets.load_wine, "iris": datasets.load_iris}[name]
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
                        choices=["breast_cancer", "digits", "wine", "iris", "sms_spam", "mnist",
                                 "breastmnist"])
    parser.add_argument("--splits", type=int, default=0,
                        help="tables: mean over this many seeded stratified 80/20 splits "
                        "(seeds 0..N-1) instead of the default seed-42 split")
    parser.add_argument("--ab", action="store_true",
                        help="with --splits: also run auto without cross-validation "
                        "(`train: {cv_folds: 0}`, the pre-issue-13 rule), interleaved")
    parser.add_argument("--tune", type=float, default=0.0,
                        help="with --splits: also run `lepton tune` with this budget (s)")
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
        if args.splits:
            return splits_table(args, tmp, extra)
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


def splits_table(args: argparse.Namespace, tmp: Path, extra: list[str]) -> None:
    """Issue 13's table: auto against the better baseline, mean over seeded splits."""
    for name in args.only:
        data = write_sklearn_csv(name, tmp)
        rows = []
        for seed in range(args.splits):
            ours = lepton_train(data, tmp / f"{name}_{seed}", "target",
                                [*extra, "--seed", str(seed)])
            row = {"auto": ours["accuracy"], "seconds": ours["seconds"],
                   "model": ours["model"], **baselines(data, "target", seed=seed)}
            if args.ab:
                no_cv = tmp / "no_cv.yaml"
                no_cv.write_text("train:\n  cv_folds: 0\n")
                old = lepton_train(data, tmp / f"{name}_{seed}_nocv", "target",
                                   [*extra, "--seed", str(seed), "--config", str(no_cv)])
                row.update(no_cv=old["accuracy"], no_cv_seconds=old["seconds"])
            if args.tune:
                tuned = lepton_tune(data, tmp / f"{name}_{seed}_tune", "target", seed,
                                    args.tune)
                row["tune"] = tuned["accuracy"]
            rows.append(row)
            print(f"  {name} seed {seed}: auto {row['auto']:.4f} ({row['model']}, "
                  f"{row['seconds']:.1f} s)  logreg {row['logreg']:.4f}  hgb {row['hgb']:.4f}"
                  + (f"  tune {row['tune']:.4f}" if "tune" in row else "")
                  + (f"  no-CV auto {row['no_cv']:.4f} ({row['no_cv_seconds']:.1f} s)"
                     if "no_cv" in row else ""), flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "model"}
        best = max(mean["logreg"], mean["hgb"])
        print(f"{name:14s} auto {mean['auto']:.4f} | logreg {mean['logreg']:.4f} | hgb "
              f"{mean['hgb']:.4f} | auto - best baseline {mean['auto'] - best + 0.0:+.4f} "
              f"({'met' if mean['auto'] >= best - 1e-9 else 'MISSED'}) | mean wall "
              f"{mean['seconds']:.1f} s" + (f" | tune {mean['tune']:.4f}" if "tune" in mean
                                            else "")
              + (f" | no-CV auto {mean['no_cv']:.4f} in {mean['no_cv_seconds']:.1f} s (wall "
                 f"ratio {mean['seconds'] / mean['no_cv_seconds']:.2f}x)" if "no_cv" in mean
                 else ""), flush=True)


if __name__ == "__main__":
    main()
