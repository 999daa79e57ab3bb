"""Mixed precision as one object, so ``fit``, ``evaluate`` and ``predict`` compute in the same
dtype: the autocast context, the gradient scaler and the dtype, resolved once from the compile
setting and the device.

Everything is decided here at construction; the training step only enters
``precision.autocast()`` and calls the scaler, whether mixed precision is on or off (off, they
are a ``nullcontext`` and a disabled ``GradScaler``, which pass straight through).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch

from lepton.errors import ConfigError

SETTINGS = ("auto", "32", "bf16", "fp16")
_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class Precision:
    """The compute precision of one compiled model on one device.

    ``setting``: 'auto' (bf16 on CUDA where supported, else fp16; float32 elsewhere), '32',
    'bf16' or 'fp16'. ``dtype`` is what the forward pass computes in, ``name`` how reports
    print it ('fp32', 'bf16', 'fp16'), ``scaler`` the ``torch.amp.GradScaler`` (enabled for
    fp16 only: bf16 has float32's range and needs no loss scaling).
    """

    def __init__(self, setting: str = "auto", device: torch.device | str = "cpu") -> None:
        setting = str(setting)
        if setting not in SETTINGS:
            raise ConfigError("Unknown precision", expected=f"one of {SETTINGS}",
                              received=repr(setting), fix="e.g. precision='bf16'")
        self.setting = setting
        self.device = torch.device(device)
        self.dtype = _resolve(setting, self.device)
        self.name = _NAMES[self.dtype]
        self.enabled = self.dtype != torch.float32
        self.autocast: Callable[[], contextlib.AbstractContextManager] = (
            functools.partial(torch.autocast, self.device.type, dtype=self.dtype)
            if self.enabled else contextlib.nullcontext)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.dtype == torch.float16)

    def __repr__(self) -> str:
        return f"Precision({self.setting!r} -> {self.name} on {self.device})"


def _resolve(setting: str, device: torch.device) -> torch.dtype:
    if setting == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[setting]
