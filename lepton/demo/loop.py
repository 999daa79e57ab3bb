"""The demo's loop: monitoring a clean and a shifted window of traffic against the served
model's reference, and (``lepton demo --loop``) retraining on the shifted digits' labels."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Watched:
    """The monitoring step: the monitor's result over the two windows, and its page."""

    result: dict[str, Any]
    traffic: list[str]  # what each window carried
    page: Path
    report: Path
    seconds: float
    shifted_ids: list[str] = field(default_factory=list)  # the inverted window's predictions
    shifted_since: float = 0.0
    retrain: dict[str, Any] | None = None  # the decision record of ``--loop``


def watch_drift(server: Any, client: Any, entry: dict[str, Any], out: Path,
                digits: np.ndarray, window: int) -> Watched:
    """The loop's first step: ``window`` clean test digits, then ``window`` inverted ones
    (white on black becomes black on white), sent as V2 tensors; the monitor's Python API
    compares each window with the artifact's reference and writes its page."""
    from lepton.atomic import atomic_write_bytes
    from lepton.monitor import monitor
    from lepton.monitor.page import save_page

    started = time.perf_counter()
    since = time.time()
    send(client, digits[:window])
    shifted_since = time.time()
    shifted_ids = send(client, 1.0 - digits[window:2 * window])
    server.app.predlog.flush()  # what the log's writer thread does every half second
    result = monitor(f"mnist:{entry['version']}", since=since, window=window)
    page = save_page(result, out / "monitor.html")
    report = out / "monitor.json"
    atomic_write_bytes(report, json.dumps(result, indent=1, default=str).encode())
    return Watched(result, ["clean test digits", "inverted digits"], page.resolve(),
                   report.resolve(), time.perf_counter() - started, shifted_ids,
                   shifted_since)


def send(client: Any, images: np.ndarray, batch: int = 25) -> list[str]:
    """``images`` as V2 infer requests of ``batch`` rows; their prediction ids."""
    name = client.metadata("mnist")["inputs"][0]["name"]
    ids: list[str] = []
    for start in range(0, len(images), batch):
        client.infer("mnist", {name: images[start:start + batch].astype(np.float32)})
        ids += client.last_ids
    return ids


def close_the_loop(server: Any, client: Any, watched: Watched, out: Path, data: tuple,
                   more: np.ndarray, more_labels: np.ndarray, shifted_labels: np.ndarray
                   ) -> dict[str, Any]:
    """``lepton demo --loop``: true labels come back for the inverted digits (and for
    ``more`` of them), then ``lepton retrain`` trains a challenger from the champion on the
    original digits ∪ the labelled inverted ones and promotes it only if a paired bootstrap
    says it wins on a holdout of those without losing on the original test digits."""
    from lepton.atomic import atomic_write_bytes
    from lepton.retrain import retrain

    started = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = data
    ids = watched.shifted_ids + send(client, 1.0 - more)
    for pid, label in zip(ids, [*shifted_labels, *more_labels], strict=True):
        client.feedback(pid, label=str(int(label)))
    server.app.predlog.flush()
    original = out / "mnist.npz"  # the original data retrain reads (and digests)
    np.savez(original, x_train=x_train, y_train=y_train, x_test=x_test[-1000:],
             y_test=y_test[-1000:])
    shifted = watched.result["windows"][-1]
    decision = retrain("mnist", data=original, feedback_since=watched.shifted_since,
                       epochs=1, trigger="drift",
                       evidence={"drifted": shifted["drift"]["drifted"],
                                 "monitor_report": shifted.get("id")})
    decision["seconds"] = time.perf_counter() - started
    atomic_write_bytes(out / "retrain.json", json.dumps(decision, indent=1, default=str).encode())
    return decision
