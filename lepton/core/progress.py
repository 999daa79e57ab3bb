"""What ``fit``/``evaluate`` print: a live bar in a terminal, one line per epoch otherwise,
nothing with ``verbose=0``. The loop reports a step count and, once per log interval, the
running loss; nothing here touches tensors."""

from __future__ import annotations

import sys
import time
from typing import Any


def resolve_verbose(verbose: Any) -> int:
    """'auto' -> 1 (bar) in a terminal, 2 (epoch lines) otherwise."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in logs.items())


class Progress:
    def __init__(self, verbose: int, epochs: int) -> None:
        self.verbose, self.epochs = verbose, epochs
        self.bar: Any = None
        self.task: Any = None
        self.started = 0.0

    def epoch_begin(self, epoch: int, steps: int | None, label: str = "Epoch") -> None:
        self.started = time.perf_counter()
        if self.verbose != 1:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn(f"{label} {epoch + 1}/{self.epochs}" if self.epochs else label),
            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[logs]}"), transient=False)
        self.bar.start()
        self.task = self.bar.add_task("", total=steps, logs="")

    def step(self, steps_done: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            if logs:
                self.bar.update(self.task, completed=steps_done, logs=format_logs(logs))
            else:
                self.bar.update(self.task, completed=steps_done)

    def epoch_end(self, epoch: int, logs: dict) -> None:
        elapsed = time.perf_counter() - self.started
        if self.bar is not None:
            total = self.bar.tasks[0].total
            self.bar.update(self.task, completed=total if total is not None else
                            self.bar.tasks[0].completed, logs=f"loss: {logs.get('loss', 0):.4f}")
            self.bar.stop()
            self.bar = None
        if self.verbose in (1, 2):
            head = f"Epoch {epoch + 1}/{self.epochs}" if self.epochs else "Evaluate"
            print(f"{head} - {elapsed:.1f}s - {format_logs(logs)}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
