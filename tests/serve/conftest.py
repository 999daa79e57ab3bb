"""Shared fixtures: the SPEC §1 CNN as a plain torch module, and a real server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from torch import nn

from lepton.artifact.runtimes.torch import TorchRuntime
from lepton.artifact.signature import TensorSpec
from lepton.serve.app import LeptonApp, ModelSource, ServeOptions
from lepton.serve.server import ServerConfig, uvicorn_kwargs

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


class CNN(nn.Module):
    """Conv2D(32, 3, relu) -> MaxPool(2) -> Flatten -> Dense(64, relu) -> Dense(10, softmax)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 32, 3)
        self.fc1 = nn.Linear(32 * 13 * 13, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)  # NHWC at the API, channels-last in memory
        x = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return torch.softmax(self.fc2(x), dim=1)


def cnn_runner(name: str = "mnist", version: str | None = None, module: nn.Module | None = None,
               metadata: dict | None = None) -> TorchRuntime:
    return TorchRuntime(module or CNN(), name,
                  [TensorSpec("input_1", "FP32", [-1, 28, 28, 1])],
                  [TensorSpec("output_1", "FP32", [-1, 10])], version=version,
                  metadata={"labels": DIGITS, "task": "multiclass"} if metadata is None
                  else metadata)


def mnist_images(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST test images (N, 28, 28, 1) float32 in [0, 1], and their labels (the copy
    that ships with Lepton)."""
    from lepton.datasets import mnist

    _, (images, labels) = mnist.load_data()
    return (images[:n, ..., None] / 255.0).astype(np.float32), labels[:n].astype(np.int64)


def digits_artifact(folder, rows: int):
    """The SPEC §1 CNN trained for one epoch on ``rows`` real MNIST images, saved in
    ``folder / "digits"``: the model the CLI and replica tests serve."""
    from lepton.core import Sequential, layers

    torch.manual_seed(0)
    images, labels = mnist_images(rows)
    model = Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=1, batch_size=64, verbose=0)
    path = folder / "digits"
    model.save(path, metadata={"task": "multiclass", "labels": [str(i) for i in range(10)]})
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A server running in this process (a thread), with its URL and app."""

    def __init__(self, app: LeptonApp, url: str) -> None:
        self.app = app
        self.url = url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def run_app(app: LeptonApp, wait_ready: bool = True) -> Iterator[Running]:
    port = free_port()
    settings = ServerConfig(models=[], options=app.options, host="127.0.0.1", port=port)
    config = uvicorn.Config(app, **uvicorn_kwargs(settings))  # as `lepton serve` runs
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            status = httpx.get(url + "/v2/health/ready", timeout=1).status_code
            if status == 200 or not wait_ready:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("server did not become ready")
    try:
        yield Running(app, url)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from lepton.store import Store

    s = Store.open(workspace=tmp_path_factory.mktemp("store"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def server(store) -> Iterator[Running]:
    sources = [ModelSource("mnist", lambda: cnn_runner("mnist")),
               ModelSource("mnist", lambda: cnn_runner("mnist", "2"), version="2")]
    app = LeptonApp(sources, ServeOptions(max_batch_size=32, max_body_bytes=1 << 20),
                    store_factory=lambda: store)
    with run_app(app) as running:
        yield running
