"""Where a model trains and who writes: device placement, this process's share of the data,
which process writes checkpoints and logs, and torch's thread counts.

``Strategy`` is one process on one device. A distributed strategy subclasses it: it knows its
``rank`` and ``world_size``, wraps the training forward in ``wrap_forward``, returns only
this rank's part of each batch (``train_batches``/``shard_stream``) and of the evaluation rows
(``eval_rows``/``eval_batch``), sums metrics across ranks in ``reduce``, and writes on rank 0
only. Here each of those is the identity; the trainer calls nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from lepton.core.data_adapter import batches
from lepton.core.device import resolve, set_threads
from lepton.errors import ConfigError


class Strategy:
    """One process training on one device (``device``: 'auto', 'cpu', 'cuda', 'cuda:N',
    'mps'); ``threads``: the torch intra-op thread count that fit/evaluate/predict set
    (default ``LEPTON_NUM_THREADS``, else one per usable CPU)."""

    rank = 0
    world_size = 1

    def __init__(self, device: str | torch.device | None = "auto",
                 threads: int | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads <= 0):
            raise ConfigError("Strategy `threads` must be a positive int or None",
                              received=f"threads={threads!r}", fix="e.g. threads=1")
        self.device = resolve(device)
        self.threads = threads

    @property
    def is_writer(self) -> bool:
        """Whether this process writes checkpoints, logs and artifacts."""
        return self.rank == 0

    def setup_threads(self) -> int:
        """Set torch's thread count for this run (the trainer calls it before each
        fit/evaluate/predict); returns it."""
        return set_threads(self.threads)

    def place(self, model: Any) -> None:
        """Move the model's weights to this strategy's device."""
        model.to(self.device)

    def to_device(self, xs: list[torch.Tensor], ys: list[torch.Tensor] | None = None,
                  weights: torch.Tensor | None = None) -> tuple[list, list, Any]:
        """One batch (inputs, targets, sample weights or None) on the device."""
        ys = ys or []
        if self.device.type == "cpu":
            return xs, ys, weights
        return ([t.to(self.device, non_blocking=True) for t in xs],
                [t.to(self.device, non_blocking=True) for t in ys],
                None if weights is None else weights.to(self.device, non_blocking=True))

    def shard_arrays(self, tensors: list[torch.Tensor], batch_size: int, shuffle: bool,
                     generator: torch.Generator | None = None) -> Iterator[list[torch.Tensor]]:
        """This process's training batches of in-memory arrays: here, all of them."""
        return batches(tensors, batch_size, shuffle, generator)

    def train_batches(self, tensors: list[torch.Tensor], n_x: int, n_y: int, weighted: bool,
                      batch_size: int, shuffle: bool,
                      generator: torch.Generator | None = None) -> Iterator[tuple]:
        """This process's training batches as (inputs, targets, weights or None)."""
        for batch in self.shard_arrays(tensors, batch_size, shuffle, generator):
            yield batch[:n_x], batch[n_x: n_x + n_y], batch[-1] if weighted else None

    def shard_stream(self, source: Iterable) -> Iterable:
        """This process's batches of a stream (a DataLoader, a generator): here, all."""
        return source

    def eval_rows(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """This process's evaluation rows: here, all."""
        return tensors

    def eval_batch(self, batch: tuple) -> tuple:
        """This process's rows of one evaluation batch (xs, ys, weights): here, all."""
        return batch

    def local_batch_size(self, batch_size: int) -> int:
        """This process's rows of a global batch."""
        return batch_size

    def common_seed(self, seed: int | None) -> int:
        """The shuffle seed every process agrees on."""
        return seed if seed is not None else int(torch.randint(0, 2**62, (1,)))

    def wrap_forward(self, model: Any, forward: Any) -> Any:
        """The training forward (a distributed strategy routes it through DDP)."""
        return forward

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """Context for one backward pass; ``sync=False`` while accumulating gradients."""
        return contextlib.nullcontext()

    def sync_gradients(self, model: Any) -> None:
        """Average gradients accumulated without syncing: nothing to do in one process."""

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """A value averaged over processes: here, itself."""
        return value

    def reduce(self, total: Any, count: Any, metrics: list[list]) -> tuple[float, int]:
        """A loss total and count (and metric states) over all processes: here, this one's."""
        return float(total), int(count)

    def barrier(self) -> None:
        """Wait for every process (after rank 0 wrote files): nothing to wait for here."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={str(self.device)!r}, threads={self.threads})"
