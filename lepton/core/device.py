"""Picks where to run (CUDA, then Apple MPS, then CPU) and how many CPU threads to use."""

from __future__ import annotations

import contextlib
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


def available_cpus() -> int:
    """CPUs this process may really use: affinity, capped by a cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus or 1)


@cache
def configure_threads() -> int:
    """Use one intra-op thread per usable CPU (``LEPTON_NUM_THREADS`` overrides); torch's
    default can oversubscribe a container whose quota is below the host's core count."""
    threads = int(os.environ.get("LEPTON_NUM_THREADS", 0)) or available_cpus()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
