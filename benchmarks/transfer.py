"""Transfer learning (issue 11 §7): fine-tuned MobileNetV2 against today's small CNN on
BreastMNIST, and MobileNetV2 inference against the same network in plain PyTorch.

    python benchmarks/transfer.py                       # both parts
    python benchmarks/transfer.py --only finetune --seeds 1 2 3   # --size N: not the plan's 224
    python benchmarks/transfer.py --only inference --rounds 7

Fine-tuning runs ``lepton.train.run.train`` (what ``lepton train`` runs) on BreastMNIST
written as PNG folders, ``--model mobilenetv2 --weights FILE --image-size N`` against
``--model auto`` without a weights file (the small CNN), per seed; test accuracy, ROC-AUC and
training time of each. Inference: batch 1 and 32 at 224x224, channels-last on both sides,
the two networks (and Lepton's BatchNormalization-folded copy) timed in alternation, medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet.safetensors"


def write_breastmnist(folder: Path) -> Path:
    from PIL import Image

    data = np.load(SHARED / "medical" / "breastmnist.npz")
    root = folder / "breastmnist"
    for split in ("train", "val", "test"):
        for i, (img, label) in enumerate(zip(data[f"{split}_images"],
                                             data[f"{split}_labels"].reshape(-1), strict=True)):
            d = root / split / ("malignant" if int(label) == 0 else "benign")
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


def finetune(args: argparse.Namespace, tmp: Path) -> None:
    from lepton.train.run import train

    data = write_breastmnist(tmp)
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in args.models}
    size = args.size or 224  # the small-set plan's default
    for seed in args.seeds:
        for name in args.models:
            kwargs = ({"model": "mobilenetv2", "weights": str(WEIGHTS),
                       "image_size": args.size, "epochs": args.epochs}  # None: the plan's
                      if name == "mobilenetv2" else {"model": "auto"})
            start = time.perf_counter()
            result = train(data, out=tmp / f"{name}_{seed}", seed=seed, register=False,
                           **kwargs)
            seconds = time.perf_counter() - start
            m = result.metrics
            rows[name].append((m["accuracy"], m["roc_auc"], seconds))
            print(f"seed {seed} {name:12s} acc {m['accuracy']:.4f} auc {m['roc_auc']:.4f} "
                  f"{seconds:.0f} s ({result.plan.preset})", flush=True)
    print(f"\nBreastMNIST test split (156 images), mean of seeds {args.seeds}; MobileNetV2 at "
          f"{size}x{size}:")
    print("| model | accuracy mean (sd; min-max) | ROC-AUC mean (sd; min-max) | training s "
          "|\n|---|---|---|---|")

    def cell(values: tuple[float, ...]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.4f} ({sd:.4f}; {min(values):.3f}-{max(values):.3f})"

    means = {}
    for name, label in (("mobilenetv2", f"MobileNetV2 fine-tuned ({size} px)"),
                        ("cnn", "small CNN (`--model auto`, 28 px)")):
        if not rows.get(name):
            continue
        acc, auc, sec = zip(*rows[name])
        means[name] = (statistics.mean(acc), statistics.mean(auc), statistics.mean(sec))
        print(f"| {label} | {cell(acc)} | {cell(auc)} | {statistics.mean(sec):.0f} |")
    if "mobilenetv2" in means:
        a1, u1, s1 = means["mobilenetv2"]
        print("target accuracy >= 0.88 and ROC-AUC >= 0.93: "
              f"{'met' if a1 >= 0.88 and u1 >= 0.93 else 'MISSED'}")
    if len(means) == 2:
        (a1, u1, s1), (a2, u2, s2) = means["mobilenetv2"], means["cnn"]
        print(f"ratios MobileNetV2 / CNN: accuracy {a1 / a2:.3f}, ROC-AUC {u1 / u2:.3f}, "
              f"training time {s1 / s2:.2f}")


def plain_mobilenet_v2():
    """torchvision's MobileNetV2 written in plain PyTorch: the one the parity test checks."""
    sys.path.insert(0, str(ROOT))
    from tests.core.test_applications import TorchMobileNetV2

    return TorchMobileNetV2()


def inference(args: argparse.Namespace) -> None:
    import torch
    from safetensors.torch import load_file

    from lepton.core.applications import MobileNetV2, fold_batchnorm

    torch.set_num_threads(args.threads)
    plain = plain_mobilenet_v2()
    plain.load_state_dict(load_file(str(WEIGHTS)))
    plain = plain.eval().to(memory_format=torch.channels_last)
    ours = MobileNetV2(weights=WEIGHTS, classifier_activation=None).eval()
    fused = fold_batchnorm(ours)
    print(f"\nMobileNetV2 224x224 inference, {args.threads} threads, torch.inference_mode, "
          f"channels-last; images/s (median of {args.rounds} interleaved rounds):")
    print("| batch | plain PyTorch | Lepton | Lepton folded BN | Lepton / PyTorch | "
          "folded / PyTorch |\n|---|---|---|---|---|---|")
    for batch, reps in ((1, 10), (32, 1)):
        x = torch.from_numpy(np.random.default_rng(0).normal(size=(batch, 224, 224, 3))
                             .astype("float32"))
        nchw = x.permute(0, 3, 1, 2)  # the same memory: a channels-last NCHW view
        runs = {"plain": (plain, nchw), "lepton": (ours, x), "fused": (fused, x)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        with torch.inference_mode():
            for fn, inp in runs.values():
                fn(inp)
            for _ in range(args.rounds):
                for key, (fn, inp) in runs.items():
                    start = time.perf_counter()
                    for _ in range(reps):
                        fn(inp)
                    times[key].append((time.perf_counter() - start) / reps)
        ips = {k: batch / statistics.median(v) for k, v in times.items()}
        print(f"| {batch} | {ips['plain']:.1f} | {ips['lepton']:.1f} | {ips['fused']:.1f} | "
              f"{ips['lepton'] / ips['plain']:.3f} | {ips['fused'] / ips['plain']:.3f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["finetune", "inference"])
    parser.add_argument("--size", type=int, default=None,
                        help="MobileNetV2 image size (default: the plan's, 224)")
    parser.add_argument("--models", nargs="*", default=["mobilenetv2", "cnn"],
                        choices=["mobilenetv2", "cnn"])
    parser.add_argument("--epochs", type=int, default=None,
                        help="fine-tuning epochs in all (default: the plan's)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=7, help="inference rounds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEPTON_HOME"] = str(Path(tmp) / "home")  # no weights file: auto = CNN
        if args.only in (None, "inference"):
            inference(args)
        if args.only in (None, "finetune"):
            finetune(args, Path(tmp))


if __name__ == "__main__":
    main()
