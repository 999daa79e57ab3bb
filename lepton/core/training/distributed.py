"""Data-parallel training on ``torch.distributed``: one process per device, launched by
``torchrun`` (or ``lepton train --nproc N``), the model wrapped in ``DistributedDataParallel``.

What a user can rely on (also in README's "Distributed training"):

- ``fit(batch_size=B)`` is the *global* batch: each of the N ranks computes B/N rows of it
  (an indivisible B is refused). Every rank draws the same shuffled order from one shared seed,
  takes its slice of each global batch, and DDP averages the gradients: N processes with
  batch B step exactly like one process with batch B.
- Uneven data never deadlocks, because every rank runs the same number of steps: the last,
  short global batch of b rows is cut into N slices whose sizes differ by one at most, and
  each row is weighted by ``n_rank * N / b`` so the averaged gradient is still the plain mean
  over the b rows. (A last batch with fewer rows than ranks is skipped that epoch; it is a
  different one each epoch.) We chose equal step counts over DDP's ``join()``: ``join``
  shadows collectives only for DDP's own gradient all-reduce, so it cannot cover
  SyncBatchNorm's collectives or the reductions of the metrics.
- Validation and ``evaluate`` are exact: each rank takes a contiguous slice of the rows (no
  padding by duplicates, unlike ``DistributedSampler``), runs the plain forward (no
  collectives per batch, so uneven slices are fine), and the loss sums, counts and metric
  states are summed across ranks once at the end.
- Streams (DataLoaders, generators, ``BatchStream``) must yield the same batches on every
  rank (a seeded order); each batch is a global batch and each rank keeps its rows. A stream
  that differs between ranks is detected on the first batch of each epoch and refused.
- Rank 0 alone writes checkpoints, logs, artifacts and the progress bar; a barrier after
  each epoch's callbacks keeps other ranks from reading a half-written file.
- A rank that fails ends the job: collectives time out after ``timeout`` seconds (default
  60, ``LEPTON_DIST_TIMEOUT``), and a closed peer fails them at once.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lepton.core.device import available_cpus, set_threads
from lepton.core.training.strategy import Strategy
from lepton.errors import ConfigError, TrainingError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("gloo", "nccl")


def launched() -> bool:
    """Whether this process was started by torchrun (its environment variables are set)."""
    return all(os.environ.get(k) for k in ENV) and int(os.environ["WORLD_SIZE"]) > 1


def process_rank() -> int:
    """This process's global rank (0 outside torchrun): rank 0 writes files and records."""
    return int(os.environ.get("RANK", "0") or 0)


def default_strategy(device: Any = "auto", threads: int | None = None) -> Strategy:
    """A ``DistributedStrategy`` under torchrun with several processes, else ``Strategy``: the
    same script trains on one CPU or on many processes unchanged."""
    if launched():
        return DistributedStrategy(device, threads)
    return Strategy(device, threads)


def _timeout() -> float:
    raw = os.environ.get("LEPTON_DIST_TIMEOUT", "60")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError("LEPTON_DIST_TIMEOUT must be a positive number of seconds",
                          received=repr(raw))
    return value


class _Forward(nn.Module):
    """What DDP wraps: the model (so its parameters are DDP's) and the trainer's forward."""

    def __init__(self, model: nn.Module, fn: Any) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.fn(xs)


class DistributedStrategy(Strategy):
    """One rank of a data-parallel job started by torchrun.

    ``device``: 'auto' (``cuda:LOCAL_RANK`` where CUDA is present, else the CPU), 'cpu' or
    'cuda'. ``backend``: 'gloo' or 'nccl' (default: NCCL on CUDA, gloo on the CPU).
    ``threads``: torch threads per process (default ``LEPTON_NUM_THREADS``, else the usable
    CPUs divided by the processes on this machine). ``sync_batchnorm``: batch statistics over
    the global batch instead of each rank's slice. ``find_unused_parameters``: for models
    where some parameters get no gradient in a step (DDP's option; slower).
    ``timeout``: seconds before a stuck collective fails the job.
    """

    def __init__(self, device: Any = "auto", threads: int | None = None, *,
                 backend: str | None = None, sync_batchnorm: bool = False,
                 find_unused_parameters: bool = False, timeout: float | None = None) -> None:
        missing = [k for k in ENV if not os.environ.get(k)]
        if missing:
            raise ConfigError("DistributedStrategy needs the environment torchrun sets",
                              received=f"{', '.join(missing)} not set",
                              fix="launch with `lepton train --nproc N` or `torchrun "
                              "--nproc-per-node N script.py`")
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size))
        if backend not in (None, *BACKENDS):
            raise ConfigError("Unknown distributed backend", expected=f"one of {BACKENDS}",
                              received=repr(backend))
        if backend == "nccl" and not torch.cuda.is_available():
            raise ConfigError("The NCCL backend needs CUDA GPUs, and none is available",
                              received="backend='nccl' on a CPU-only machine",
                              fix="use backend='gloo' (the default on the CPU)")
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() and backend != "gloo" else "cpu"
        if str(device) == "cuda":
            device = f"cuda:{self.local_rank % max(torch.cuda.device_count(), 1)}"
        super().__init__(device, threads)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        self.sync_batchnorm = bool(sync_batchnorm)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.timeout = float(timeout) if timeout is not None else _timeout()
        self._ddp: dict[int, Any] = {}
        self._init_group()

    # -- the process group -------------------------------------------------------------
    def _init_group(self) -> None:
        if dist.is_initialized():
            return
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        try:
            dist.init_process_group(self.backend, timeout=datetime.timedelta(
                seconds=self.timeout), rank=self.rank, world_size=self.world_size)
        except (RuntimeError, ValueError, dist.DistStoreError) as exc:
            raise TrainingError(
                f"Rank {self.rank} of {self.world_size} could not join the training job at "
                f"{where} within {self.timeout:g} s", received=str(exc).splitlines()[0],
                fix="check --master-addr/--master-port, that rank 0 is running and the "
                "port is open; LEPTON_DIST_TIMEOUT sets the wait") from None
        atexit.register(self.close)

    def close(self) -> None:
        """Leave the process group (idempotent; also run at exit).

        The ranks meet first (a barrier bounded to a few seconds, so a dead peer cannot hold
        the exit): a rank tearing gloo down while its peer still sends aborts the peer in
        C++ ("terminate called without an active exception"), about one exit in ten."""
        self._ddp.clear()
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                if self.backend == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=5))
                else:
                    dist.barrier()
            with contextlib.suppress(Exception):
                dist.destroy_process_group()

    # -- threads, seed, placement ------------------------------------------------------
    def setup_threads(self) -> int:
        """Usable CPUs / processes on this machine (torchrun alone would set 1 per process,
        and N processes each taking every core oversubscribe it)."""
        explicit = self.threads or int(os.environ.get("LEPTON_NUM_THREADS", 0))
        return set_threads(explicit or max(1, available_cpus() // max(self.local_world, 1)))

    def common_seed(self, seed: int | None) -> int:
        """Rank 0's seed on every rank, so all draw the same global order."""
        value = self._here(torch.tensor([seed if seed is not None else
                                         int(torch.randint(0, 2**62, (1,)))]))
        dist.broadcast(value, src=0)
        return int(value.item())

    def local_batch_size(self, batch_size: int) -> int:
        if batch_size % self.world_size:
            raise ConfigError(
                f"The batch size is the global batch across {self.world_size} processes and "
                f"must be divisible by it", received=f"batch_size={batch_size}",
                fix=f"use a multiple of {self.world_size}, e.g. "
                f"{max(1, batch_size // self.world_size) * self.world_size}")
        return batch_size // self.world_size

    def wrap_forward(self, model: nn.Module, forward: Any) -> Any:
        """The training forward through DDP (built once per model, after it is built)."""
        from torch.nn.parallel import DistributedDataParallel

        from lepton.core.training.syncbn import sync_batchnorm

        ddp = self._ddp.get(id(model))
        if ddp is None:
            # Conv weights' gradients come channels-last: DDP copies them into its buckets
            # (correct; the warning says it may be slower) - said once here, not per rank.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket")
            if self.sync_batchnorm:
                sync_batchnorm(model)
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(_Forward(model, forward), device_ids=ids,
                                          find_unused_parameters=self.find_unused_parameters)
            self._ddp[id(model)] = ddp
        ddp.module.fn = forward
        self.ddp = ddp

        def run(xs: list[torch.Tensor]) -> list[torch.Tensor]:
            try:
                return ddp(xs)
            except RuntimeError as exc:
                if "finished reduction in the prior iteration" in str(exc):
                    raise TrainingError(
                        f"Rank {self.rank}: some parameters got no gradient in the last step, "
                        "so the ranks cannot average them",
                        received="a model whose forward skips layers on some ranks or steps",
                        fix="compile(strategy=DistributedStrategy(find_unused_parameters="
                        "True)), or make every layer take part in the loss") from None
                raise
        return run

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if sync else self.ddp.no_sync()

    def sync_gradients(self, model: nn.Module) -> None:
        """Average gradients accumulated under ``no_sync`` (an epoch's last, short cycle)."""
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.world_size)

    def average(self, value: torch.Tensor) -> torch.Tensor:
        out = self._here(value.detach().clone().float())
        dist.all_reduce(out)
        return (out / self.world_size).to(value.device)

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def _here(self, tensor: torch.Tensor) -> torch.Tensor:
        """Where collectives run: the GPU for NCCL, the CPU for gloo."""
        return tensor.to(self.device) if self.backend == "nccl" else tensor.cpu()

    # -- data --------------------------------------------------------------------------
    def _slice(self, index: torch.Tensor) -> tuple[torch.Tensor, float | None]:
        """This rank's part of one global batch of row indices, and the row weight that
        keeps the gradient exact when the parts are unequal (None when they are equal)."""
        parts = torch.tensor_split(index, self.world_size)
        mine = parts[self.rank]
        if len(index) % self.world_size == 0:
            return mine, None
        return mine, len(mine) * self.world_size / len(index)

    def train_batches(self, tensors: list[torch.Tensor], n_x: int, n_y: int, weighted: bool,
                      batch_size: int, shuffle: bool,
                      generator: torch.Generator | None = None) -> Iterator[tuple]:
        n = len(tensors[0])
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            index = order[start: start + batch_size]
            if len(index) < self.world_size:
                continue  # fewer rows than ranks: skipped this epoch (a new one next epoch)
            mine, scale = self._slice(index)
            batch = [t[mine] for t in tensors]
            weights = batch[-1] if weighted else None
            if scale is not None:
                weights = torch.full((len(mine),), scale) if weights is None else weights * scale
            yield batch[:n_x], batch[n_x: n_x + n_y], weights

    def shard_stream(self, source: Iterable) -> Iterator[tuple]:
        """This rank's rows of each global batch of a stream of split ``(xs, ys, w)``."""
        for i, (xs, ys, weights) in enumerate(source):
            n = len(xs[0])
            if n < self.world_size:
                continue
            if i == 0:
                self._check_same_stream(ys[0])
            mine, scale = self._slice(torch.arange(n))
            xs, ys = [t[mine] for t in xs], [t[mine] for t in ys]
            weights = None if weights is None else weights[mine]
            if scale is not None:
                weights = torch.full((len(mine),), scale) if weights is None else weights * scale
            yield xs, ys, weights

    def _check_same_stream(self, y: torch.Tensor) -> None:
        digest = torch.tensor([float(y.double().sum()), float(len(y))], dtype=torch.float64)
        low, high = self._here(digest.clone()), self._here(digest.clone())
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise ConfigError(
                f"Rank {self.rank}: the training stream yields different batches on different "
                "ranks", expected="the same batches in the same order on every rank (each "
                "rank keeps its rows of each batch)", received="a different first batch",
                fix="seed the stream's shuffling identically on every rank")

    def eval_rows(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """This rank's contiguous slice of the evaluation rows (no padding)."""
        n = len(tensors[0])
        bounds = [n * r // self.world_size for r in range(self.world_size + 1)]
        lo, hi = bounds[self.rank], bounds[self.rank + 1]
        return [t[lo:hi] for t in tensors]

    def eval_batch(self, batch: tuple) -> tuple:
        xs, ys, weights = batch
        lo = len(xs[0]) * self.rank // self.world_size
        hi = len(xs[0]) * (self.rank + 1) // self.world_size
        return ([t[lo:hi] for t in xs], [t[lo:hi] for t in ys],
                None if weights is None else weights[lo:hi])

    def reduce(self, total: Any, count: Any, metrics: list[list]) -> tuple[float, int]:
        """Sum a loss total and count, and every metric's state, across the ranks."""
        from lepton.core.training.reduce import reduce_metrics

        pair = self._here(torch.tensor([float(total), float(count)], dtype=torch.float64))
        dist.all_reduce(pair)
        reduce_metrics(metrics, self._here)
        return float(pair[0]), int(round(float(pair[1])))

    def __repr__(self) -> str:
        return (f"DistributedStrategy(rank={self.rank}/{self.world_size}, "
                f"device={str(self.device)!r}, backend={self.backend!r})")
