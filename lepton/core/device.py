"""Picks where to run (CUDA, then Apple MPS, then CPU) and sets how many CPU threads torch
uses (``set_threads``: the one place Lepton sets them)."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from functools import cache
from pathlib import Path

import torch

from lepton.errors import ConfigError


def default_device() -> torch.device:
    """``LEPTON_DEVICE`` if set, else the best accelerator present, else the CPU."""
    wanted = os.environ.get("LEPTON_DEVICE")
    if wanted:
        return resolve(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError("Unknown device", expected="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
                          received=repr(device)) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no CUDA device is available",
                          received=f"device={device!r}", fix="use device='auto' or 'cpu'")
    return resolved


@cache
def available_cpus() -> int:
    """CPUs this process may really use: affinity, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus or 1)


def set_threads(threads: int | None = None, interop: int | None = None) -> int:
    """The one place Lepton sets torch's thread counts; returns the intra-op count.

    ``threads`` defaults to ``LEPTON_NUM_THREADS``, else one per usable CPU (torch's own
    default can oversubscribe a container whose quota is below the host's core count).
    ``interop`` (inter-op threads) can be set only once per process, before any parallel
    work; a later request keeps the first setting.
    """
    threads = threads or int(os.environ.get("LEPTON_NUM_THREADS", 0)) or available_cpus()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if interop is not None:
        with contextlib.suppress(RuntimeError):  # already fixed in this process
            torch.set_num_interop_threads(interop)
    return threads


def module_device(module: torch.nn.Module) -> torch.device | None:
    """Where a module's weights live (None before it has any)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return None
