"""``lepton demo``: the whole loop on MNIST, offline, in about a minute on a laptop CPU.

train the SPEC §1 CNN -> evaluate on the test set -> save the artifact -> HTML report ->
register and promote it -> serve it -> a few predictions and one feedback through the client.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LABELS = [str(d) for d in range(10)]


@dataclass
class DemoResult:
    artifact: Path
    accuracy: float
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def fastest_precision() -> str:
    """bf16 autocast where the CPU runs bf16 natively (AVX512-BF16/AMX) or on CUDA."""
    import torch

    from lepton.core.device import default_device

    if default_device().type == "cuda":
        return "auto"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"
    except (AttributeError, RuntimeError):
        return "32"


def build_cnn():
    """The second SPEC §1 example, exactly."""
    from lepton.core.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from lepton.core.models import Sequential
    from lepton.core.optimizers import Adam

    model = Sequential([
        Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        MaxPooling2D((2, 2)),
        Flatten(),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ])
    return model, Adam()


def load_mnist(samples: int | None = None):
    """MNIST scaled to [0, 1], channels-last; ``samples`` trims the training set."""
    from lepton.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    if samples:
        x_train, y_train = x_train[:samples], y_train[:samples]
    return ((x_train[..., None] / np.float32(255), y_train),
            (x_test[..., None] / np.float32(255), y_test))


def image_preprocessing() -> dict[str, Any]:
    """The saved preprocessing: PNG/JPEG -> 28×28 grayscale / 255, so the server's /v1
    route takes image files as well as pixel arrays."""
    from lepton.data.image_pipeline import ImagePipeline

    pipeline = ImagePipeline(size=(28, 28), channels=1, normalize=False, augment=False)
    pipeline.labels = list(LABELS)
    return pipeline.to_json()


def train_mnist(out: Path, data: tuple, epochs: int = 3, verbose: str | int = "auto",
                say: Callable[[str], Any] = print) -> DemoResult:
    """Train on ``data`` (from ``load_mnist``) and save the demo model; returns the artifact
    path and test accuracy."""
    from lepton.core import callbacks

    started = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = data
    model, optimizer = build_cnn()
    precision = fastest_precision()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision=precision)
    say(f"Training the SPEC §1 CNN on {len(x_train):,} MNIST digits "
        f"({epochs} epochs, batch 32, precision {precision})")
    # Adam at 1e-3, then a lower rate for the last epoch: 98.5 %+ in three epochs.
    schedule = callbacks.LearningRateScheduler(
        lambda epoch, lr: 1e-3 if epoch < max(epochs - 1, 1) else 3e-4)
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=verbose,
                        callbacks=[schedule])
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    artifact = model.save(out / "model", metadata={
        "task": "multiclass",
        "labels": LABELS,
        "preprocessing": image_preprocessing(),
        "metrics": {"test_accuracy": accuracy, "test_loss": loss},
        "history": history.history,
        "lineage": {"data": "MNIST (bundled with Lepton)", "train_samples": len(x_train),
                    "epochs_run": len(history.history["loss"])},
    })
    return DemoResult(artifact, accuracy, time.perf_counter() - started, history.history)


def png_base64(image: np.ndarray) -> str:
    """A 28×28 [0, 1] digit as base64 PNG, the way a user would send a file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((image.squeeze(-1) * 255).round().astype(np.uint8)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Served:
    """What the serving step did: where, which version, and the round trip it made."""

    url: str
    ref: str
    predictions: list[dict[str, Any]]
    truth: list[int]
    sample_png: Path


def register(artifact: Path) -> dict[str, Any]:
    """Register the artifact as ``mnist`` in the workspace store and promote it."""
    from lepton.registry import Registry
    from lepton.store import Store

    registry = Registry(Store.open())
    entry = registry.register(artifact, "mnist", description="lepton demo")
    registry.promote("mnist", entry["version"], "production", reason="lepton demo")
    return entry


def serve_and_try(entry: dict[str, Any], out: Path, x_test: np.ndarray, y_test: np.ndarray,
                  while_serving: Callable[[Served], None] | None = None,
                  samples: int = 5) -> Served:
    """Serve the registered model, predict a few test digits sent as PNG files through the
    client, and send one feedback (the true label of the first); ``while_serving`` runs
    while the server is still up (the CLI prints there, and may wait for Ctrl+C)."""
    from lepton.client import Client
    from lepton.serve.server import BackgroundServer, ModelRef, ServerConfig, build_app

    images = [png_base64(x) for x in x_test[:samples]]
    sample_png = out / "digit.png"
    sample_png.write_bytes(base64.b64decode(images[0]))
    ref = ModelRef("mnist", str(entry["path"]), version=str(entry["version"]),
                   registry_version=int(entry["version"]))
    server = BackgroundServer(build_app(ServerConfig(models=[ref])))
    url = server.start()
    try:
        with Client(url) as client:
            predictions = client.predict("mnist", images)
            client.feedback(predictions[0]["id"], label=str(int(y_test[0])))
        served = Served(url, f"mnist:{entry['version']}", predictions,
                        [int(y) for y in y_test[:samples]], sample_png.resolve())
        if while_serving is not None:
            while_serving(served)
    finally:
        server.stop()
    return served


def curl_line(url: str, png: Path) -> str:
    body = '{"inputs": ["\'"$(base64 -w0 ' + str(png) + ')"\'"]}'
    return (f"curl -s {url}/v1/models/mnist/predict -H 'Content-Type: application/json' "
            f"-d '{body}'")
