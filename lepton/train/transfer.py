"""``lepton train --model mobilenetv2 --weights PATH``: fine-tune a pretrained backbone on an
image folder.

On a small image set (under ``SMALL_IMAGE_SET`` images) the backbone sees the images at
224x224, ImageNet's size, where its frozen features are good (a linear probe on BreastMNIST's
28 px ultrasound scans resized up: ROC-AUC 0.93 at 224 px, 0.81-0.85 at 64), and trains in two
stages, as feature extraction then fine-tuning:

1. The frozen backbone (BatchNormalization in inference mode) reads the training images once,
   and the new head is fit to those features by full-batch L-BFGS (scikit-learn's L2
   penalty): the convex problem's optimum in seconds, where Adam on a few hundred images needs
   tens of epochs of full backbone passes to come near it.
2. The top blocks (``BACKBONES``' third entry on) are unfrozen, BatchNormalization still
   frozen, and train with the head at lr 1e-4, warmed up over two epochs (from a converged
   head Adam's first steps are full-size whatever the gradient: at 5e-4 without warm-up the
   training loss jumped from 0.3 to 15 in one step), then cosine decay, a short weight EMA and
   early stopping on validation loss. There is no augmentation: rotating, shifting and zooming
   small images moves the frozen features off the test images' (the probe falls to 0.84-0.87).

On larger sets the Keras guide's recipe: the head trains on the frozen backbone for a few
epochs with augmentation, then the top blocks are unfrozen at a lower learning rate, with
early stopping on validation loss.

Images are resized to ``--image-size`` (default: 224 on a small set, else their size up to
224 and at least 64), grayscale ones expanded to RGB, and normalised with ImageNet's
statistics, which the artifact's preprocessing keeps, so predict and the server feed the
network what it saw. ``--model auto`` on a small image folder tries this path when a weights
file is available (``--weights``, or ``$LEPTON_HOME/weights/mobilenet_v2.safetensors``),
trains the small CNN beside it on the same validation images, keeps whichever has the lower
validation loss, and says so.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ConfigError
from lepton.train.auto import Plan, apply_overrides

# name -> (builder in lepton.core.applications, weights file, first layer fine-tuned)
BACKBONES = {
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2.safetensors", "block_13_expand"),
    "resnet18": ("ResNet18", "resnet18.safetensors", "layer4_0_conv1"),
    "resnet34": ("ResNet34", "resnet34.safetensors", "layer4_0_conv1"),
    "resnet50": ("ResNet50", "resnet50.safetensors", "layer4_0_conv1"),
    "vgg16": ("VGG16", "vgg16.safetensors", "block5_conv1"),
}
SMALL_IMAGE_SET = 5000  # as in auto_plan: below this a pretrained backbone pays off most


@dataclasses.dataclass
class TransferPlan(Plan):
    """A Plan for a pretrained backbone: which file, what size, and the two stages."""

    weights: str = ""
    image_size: int = 96
    head_epochs: int = 5  # Adam epochs for the head on the frozen base (0 with head="lbfgs")
    head: str = "adam"  # or "lbfgs": fit to the frozen base's features, once
    fine_tune_from: str = ""  # first layer unfrozen in stage 2; "" = the whole network
    fine_tune_lr: float = 2e-4
    fine_tune_bn: bool = False  # whether BatchNormalization trains too (batch statistics)
    chosen_by: str = ""  # why auto took this path (empty for an explicit --model)

    def describe(self) -> str:
        why = f"; {self.chosen_by}" if self.chosen_by else ""
        head = ("new head fit by L-BFGS to the frozen base's features" if self.head == "lbfgs"
                else f"frozen base + new head for {self.head_epochs} epochs")
        layers = (f"layers from {self.fine_tune_from}" if self.fine_tune_from
                  else "the whole network")
        augment = "" if self.augment else ", no augmentation"
        warm = f", {self.warmup_epochs} warm-up epochs" if self.warmup_epochs else ""
        bn = ("BatchNormalization included" if self.fine_tune_bn
              else "BatchNormalization frozen")
        return (f"{self.preset} pretrained backbone (weights {Path(self.weights).name}{why}), "
                f"images {self.image_size}x{self.image_size} RGB; {head}, then {layers} unfrozen "
                f"({bn}) at lr {self.fine_tune_lr:g} (batch {self.batch_size}, up to {self.epochs} "
                f"epochs in all, patience {self.patience}, lr {self.learning_rate:g}, cosine "
                f"lr{warm}, weight EMA {self.average:g}, weight decay {self.weight_decay:g}"
                f"{augment})")


def _default_file(name: str) -> Path:
    from lepton.core.applications.weights import weights_dir

    return weights_dir() / BACKBONES[name][1]


def _count_images(data: Path) -> tuple[int, tuple[int, int]]:
    from lepton.data import scan_folder
    from lepton.data.images import infer_format

    files = [p for p, _ in scan_folder(data).files]
    return len(files), infer_format(files)[0]


def transfer_plan(model: str, data: Path, weights: str | None,
                  image_size: int | None) -> TransferPlan | None:
    """The plan when ``model`` names a backbone, or is ``auto`` on a small image set with a
    weights file at hand; None means the usual presets."""
    if model not in BACKBONES and model != "auto":
        if weights:
            raise ConfigError(f"--weights needs a pretrained backbone, not '{model}'",
                              expected=f"--model auto or one of {sorted(BACKBONES)}",
                              received=f"--model {model}", fix="drop --weights or change --model")
        return None
    name = model if model in BACKBONES else "mobilenetv2"
    path = Path(weights).expanduser() if weights else _default_file(name)
    chosen_by = ""
    if model == "auto":
        if not path.is_file():
            if weights:
                raise ConfigError(f"The weights file '{path}' does not exist",
                                  fix="check the --weights path")
            return None
        n, (h, w) = _count_images(data)
        if n >= SMALL_IMAGE_SET:
            return None
        chosen_by = (f"chosen by --model auto: {n} images (< {SMALL_IMAGE_SET}) and a "
                     f"weights file at {path}; kept only if it beats the small CNN on "
                     "validation loss")
    elif not path.is_file():
        raise ConfigError(
            f"--model {model} fine-tunes pretrained weights, and none were found",
            expected=f"--weights PATH, or the file {path}", received="no such file",
            fix="pass --weights /path/to/file.safetensors (torchvision key layout); Lepton "
                "never downloads weights")
    else:
        n, (h, w) = _count_images(data)
    small = n < SMALL_IMAGE_SET
    size = image_size
    if size is None:
        size = 224 if small else min(max(h, w, 64), 224)
    if size < 32:
        raise ConfigError("--image-size is too small for a pretrained backbone",
                          expected="at least 32 pixels", received=f"--image-size {size}",
                          fix="use --image-size 64 (images are resized up)")
    common = dict(batch_size=32, patience=10, learning_rate=1e-3, augment=True, min_epochs=3,
                  schedule="cosine", weight_decay=0.05, weights=str(path), image_size=size,
                  chosen_by=chosen_by)
    if small:  # features, then the top blocks (the module docstring)
        common.update(augment=False)
        return TransferPlan(name, {"dropout": 0.2}, epochs=10, average=0.9, head="lbfgs",
                            head_epochs=0, fine_tune_from=BACKBONES[name][2],
                            fine_tune_lr=1e-4, warmup_epochs=2, **common)
    return TransferPlan(name, {"dropout": 0.2}, epochs=30, average=0.99,
                        fine_tune_from=BACKBONES[name][2], **common)


def image_preprocessing(user: dict | None, plan: TransferPlan | None,
                        image_size: int | None) -> dict | None:
    """The image pipeline's options: the backbone's size, RGB, and no fitted statistics
    (:func:`use_imagenet_statistics` sets ImageNet's after the data is read)."""
    if plan is None and image_size is None:
        return user
    options = dict((user or {}).get("image", user or {}))
    if plan is not None:
        options.update(size=[plan.image_size] * 2, channels=3, normalize=False)
    else:
        options["size"] = [image_size] * 2
    return options


def use_imagenet_statistics(prepared: Any, log: Callable[[str], None]) -> None:
    """Normalise the prepared images as the backbone's weights expect (in place of the
    per-folder statistics), and keep those statistics in the artifact's preprocessing."""
    from lepton.core.applications.imagenet import MEAN, STD

    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    pipeline = prepared.pipeline
    for attr in ("x_val", "x_test"):
        value = getattr(prepared, attr)
        if value is not None:
            setattr(prepared, attr, (value - mean) / std)
    pipeline.mean, pipeline.std, pipeline.normalize = list(MEAN), list(STD), True
    log(f"images resized to {pipeline.size[0]}x{pipeline.size[1]}, grayscale expanded to RGB "
        "and normalised with ImageNet's statistics for the pretrained backbone")


def with_overrides(plan: TransferPlan, overrides: dict[str, Any] | None) -> TransferPlan:
    apply_overrides(plan, overrides)
    plan.head_epochs = min(plan.head_epochs, max(1, plan.epochs // 3))
    return plan


def build(plan: TransferPlan, input_shape: tuple, n_out: int) -> tuple[Any, Any]:
    """(the new model, its backbone) with the backbone frozen."""
    from lepton.core import Model, applications
    from lepton.core import layers as L

    builder = getattr(applications, BACKBONES[plan.preset][0])
    base = builder(include_top=False, weights=plan.weights, input_shape=tuple(input_shape),
                   pooling="avg")
    base.trainable = False
    x = L.Dropout(float(plan.options.get("dropout", 0.2)), name="head_dropout")(base.output)
    out = L.Dense(n_out, activation="softmax", name="output")(x)
    return Model(base.input, out, name=plan.preset), base


def unfreeze_top(net: Any, first: str, batchnorm: bool = False) -> int:
    """Unfreeze the layers from ``first`` on ("" = all), BatchNormalization only with
    ``batchnorm``; returns how many."""
    names = [layer.name for layer in net.layers]
    if first and first not in names:
        raise ConfigError(f"No layer '{first}' to fine-tune from", expected=f"one of {names}")
    count = 0
    for layer in net.layers[names.index(first) if first else 0:]:
        if batchnorm or type(layer).__name__ != "BatchNormalization":
            layer.trainable = True
            count += 1
    return count


def fitter(compile_model: Callable, make_callbacks: Callable, lbfgs: Callable) -> Callable:
    """``fit`` with run.py's compile, callback and L-BFGS helpers (passed in: run imports us)."""
    return functools.partial(fit, compile_model=compile_model, make_callbacks=make_callbacks,
                             lbfgs=lbfgs)


def fit_head(net: Any, base: Any, prepared: Any, optimizer: Any, cw: dict | None,
             compile_model: Callable) -> None:
    """Stage 1 as feature extraction: the frozen base's features of the training images,
    read once and unaugmented, and the new Dense head fit to them in one L-BFGS step."""
    from lepton.core import Sequential
    from lepton.core import layers as L

    n, chunk = len(prepared.y_train), 256
    features = np.concatenate([
        base.predict(prepared.train_read(np.arange(i, min(i + chunk, n))), batch_size=64,
                     verbose=0) for i in range(0, n, chunk)])
    dense = net.get_layer("output")
    probe = Sequential([L.Input((features.shape[1],)),
                        L.Dense(dense.units, activation="softmax", name="output")])
    compile_model(probe, prepared.task, 1.0, optimizer=optimizer, precision="32")
    probe.fit(features, prepared.y_train, batch_size=n, epochs=1, class_weight=cw,
              shuffle=False, verbose=0)
    dense.load_state_dict(probe.get_layer("output").state_dict())


def fit(prepared: Any, plan: TransferPlan, seed: int, time_limit: float | None, verbose: Any,
        on_epoch: Callable, *, compile_model: Callable, make_callbacks: Callable,
        lbfgs: Callable) -> tuple[Any, dict[str, list[float]]]:
    """Both stages (or the one, without head epochs) through ``fit``; returns (model,
    history of the stages joined)."""
    import torch

    from lepton.core.training.strategy import Strategy
    from lepton.data.augment import augment_batch
    from lepton.data.split import class_weights
    from lepton.train.stream import BatchStream, sample_weights

    if prepared.task == "regression":
        raise ConfigError("A pretrained backbone is trained here as a classifier",
                          received="a regression target", fix="use --model cnn")
    torch.manual_seed(seed)
    n_out = len(prepared.labels)
    net, base = build(plan, prepared.input_shape, n_out)
    cw = class_weights(prepared.y_train, n_out)
    rng = np.random.default_rng(seed)
    options = prepared.pipeline.augment or {}

    def read(idx):
        x = prepared.train_read(idx)
        return augment_batch(x, options, rng) if plan.augment else x

    stream = BatchStream(read, prepared.y_train, plan.batch_size, seed=seed,
                         weights=sample_weights(prepared.y_train, cw))
    strategy = Strategy(threads=None)
    validation = (prepared.x_val, prepared.y_val)
    steps = len(stream)
    head = dataclasses.replace(plan, epochs=plan.head_epochs, average=0.0,
                               schedule="plateau", patience=plan.head_epochs + 1)
    first = None
    if plan.head == "lbfgs":
        fit_head(net, base, prepared, lbfgs(prepared, plan), cw, compile_model)
    elif plan.head_epochs:
        compile_model(net, prepared.task, plan.learning_rate, strategy=strategy)
        first = net.fit(stream, epochs=plan.head_epochs, validation_data=validation,
                        verbose=verbose, seed=seed,
                        callbacks=make_callbacks(head, time_limit, on_epoch, steps, False)[-1:])
    unfreeze_top(net, plan.fine_tune_from, plan.fine_tune_bn)
    rest = max(1, plan.epochs - plan.head_epochs)
    tune = dataclasses.replace(plan, epochs=rest, learning_rate=plan.fine_tune_lr,
                               min_epochs=min(plan.min_epochs, rest))
    compile_model(net, prepared.task, plan.fine_tune_lr, plan.weight_decay, strategy=strategy)
    second = net.fit(stream, epochs=rest, validation_data=validation, verbose=verbose,
                     seed=seed, callbacks=make_callbacks(
                         tune, time_limit, lambda e, logs: on_epoch(e + plan.head_epochs, logs),
                         steps, False))
    before = first.history if first is not None else {}
    history = {k: [float(v) for v in before.get(k, [])] +
               [float(v) for v in second.history.get(k, [])]
               for k in {*before, *second.history}}
    return net, history
