"""The PyTorch eager runtime: the artifact's network in ``torch.inference_mode()``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lepton.artifact.manifest import Manifest
from lepton.artifact.runtimes.base import Item, Result, Runtime
from lepton.artifact.signature import TensorSpec


class TorchRuntime(Runtime):
    """One torch module plus its signature; inputs follow the weights to an accelerator."""

    platform = "lepton_pytorch"

    def __init__(self, module: Any, name: str, inputs: list[TensorSpec],
                 outputs: list[TensorSpec] | None = None, *, version: str | None = None,
                 metadata: dict[str, Any] | None = None, path: Path | None = None) -> None:
        import torch

        super().__init__(name, inputs, outputs, version=version, metadata=metadata, path=path)
        self._torch = torch
        self._module = module.eval() if hasattr(module, "eval") else module
        params = getattr(module, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        # None = stay on the CPU, with no copies
        self.device = first.device if first is not None and first.device.type != "cpu" else None

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, name: str, version: str | None) -> TorchRuntime:
        from lepton.core.saving import load_network

        model = load_network(manifest.path, manifest.document)
        return cls(model, name, manifest.inputs, manifest.outputs or None, version=version,
                   metadata=manifest.metadata, path=manifest.path)

    @property
    def module(self) -> Any:
        return self._module

    def run(self, items: Sequence[Item]) -> list[Result]:
        """Forward the items as one batch.

        Work on this thread holds the GIL as few times as it can: the event loop wants it
        too, and each time a call releases it (numpy's concatenate does once per item)
        getting it back waits on the loop. So one ``torch.cat`` per input and plain slicing.
        """
        torch = self._torch
        names = [s.name for s in self.inputs]
        tensors = [_tensor(torch, items[0][n]) if len(items) == 1
                   else torch.cat([_tensor(torch, it[n]) for it in items]) for n in names]
        if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
            return self.run_finite(items)
        if self.device is not None:
            tensors = [t.to(self.device, non_blocking=True) for t in tensors]
        with torch.inference_mode():
            raw = self._module(tensors[0] if len(tensors) == 1 else tensors)
        outs = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        return self.split(items, [o.detach().cpu().numpy() for o in outs])


def _tensor(torch: Any, array: np.ndarray) -> Any:
    return torch.from_numpy(array if array.flags.writeable else array.copy())
