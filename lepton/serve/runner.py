"""Model execution for the server: numpy batches in, numpy batches out, no autograd.

A ``Runner`` owns one loaded model and its input/output signature. ``run`` takes the items of a
batch (each a dict of input name -> array whose first axis is that item's rows), concatenates
them, does one forward pass under ``torch.inference_mode()`` and splits the outputs back per
item. It is called from the batcher's single worker thread, never concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ArtifactError, ShapeError
from lepton.serve.protocol import DATATYPES, TensorSpec

Item = dict[str, np.ndarray]


class Runner:
    """One servable model: a torch module plus its signature and metadata."""

    platform = "lepton_pytorch"

    def __init__(self, module: Any, name: str, inputs: list[TensorSpec],
                 outputs: list[TensorSpec] | None = None, *, version: str | None = None,
                 metadata: dict[str, Any] | None = None, path: Path | None = None) -> None:
        import torch

        self._torch = torch
        self.module = module.eval() if hasattr(module, "eval") else module
        self.name = name
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.metadata = metadata or {}
        self.path = path
        self.ready = False
        params = getattr(module, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        # inputs follow the weights to an accelerator; None = stay on the CPU, no copies
        self.device = first.device if first is not None and first.device.type != "cpu" else None

    @classmethod
    def from_artifact(cls, path: str | Path, *, name: str | None = None,
                      version: str | None = None) -> Runner:
        """Load a Lepton artifact directory (lepton.json + safetensors; never pickle)."""
        from lepton.core import load_model
        from lepton.core.artifact import read_manifest

        path = Path(path)
        manifest = read_manifest(path)
        model = load_model(path)
        signature = manifest.get("signature") or {}
        inputs = [_spec(s) for s in signature.get("inputs", [])]
        if not inputs:
            raise ArtifactError("The artifact has no input signature", received=str(path.name),
                                fix="re-save the model with a recent Lepton")
        outputs = [_spec(s) for s in signature.get("outputs", [])] or None
        return cls(model, name or path.name, inputs, outputs, version=version,
                   metadata=manifest.get("metadata") or {}, path=path)

    def output_names(self, count: int) -> list[str]:
        if self.outputs is not None and len(self.outputs) == count:
            return [s.name for s in self.outputs]
        return [f"output_{i}" for i in range(count)]

    def run(self, items: Sequence[Item]) -> list[dict[str, np.ndarray] | Exception]:
        """Forward the items as one batch; return each item's outputs (same order), or a
        ShapeError for an item whose floats are not all finite (its neighbours still run).

        Work on this thread holds the GIL as few times as it can: the event loop wants it
        too, and each time a call releases it (numpy's concatenate does once per item)
        getting it back waits on the loop. So one ``torch.cat`` per input and plain slicing.
        """
        torch = self._torch
        names = [s.name for s in self.inputs]
        tensors = [_tensor(torch, items[0][n]) if len(items) == 1
                   else torch.cat([_tensor(torch, it[n]) for it in items]) for n in names]
        if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
            return self._run_finite(items)
        if self.device is not None:
            tensors = [t.to(self.device, non_blocking=True) for t in tensors]
        with torch.inference_mode():
            raw = self.module(tensors[0] if len(tensors) == 1 else tensors)
        outs = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        rows = int(tensors[0].shape[0])
        results = [o.detach().cpu().numpy() for o in outs]
        for r in results:
            if r.ndim == 0 or r.shape[0] != rows:
                raise ShapeError("The model returned a batch of the wrong size",
                                 expected=rows, received=r.shape)
        out_names = self.output_names(len(results))
        per_item, start = [], 0
        for it in items:
            stop = start + int(it[names[0]].shape[0])
            per_item.append({n: r[start:stop] for n, r in zip(out_names, results, strict=True)})
            start = stop
        return per_item

    def _run_finite(self, items: Sequence[Item]) -> list[dict[str, np.ndarray] | Exception]:
        """The batch minus its items holding NaN or infinity, which get a ShapeError each."""
        bad = {}
        for i, item in enumerate(items):
            for name, array in item.items():
                if array.dtype.kind == "f" and not np.isfinite(array).all():
                    bad[i] = ShapeError(f"Input '{name}' contains NaN or infinity",
                                        expected="finite numbers", received="NaN/Inf")
                    break
        good = iter(self.run([it for i, it in enumerate(items) if i not in bad])
                    if len(bad) < len(items) else [])
        return [bad[i] if i in bad else next(good) for i in range(len(items))]

    def example(self, rows: int = 1) -> Item:
        """Zeros of the right shape and dtype (variable axes get size 8): for warm-up and bench."""
        out = {}
        for spec in self.inputs:
            shape = [rows] + [8 if d < 0 else d for d in spec.shape[1:]]
            out[spec.name] = np.zeros(shape, dtype=DATATYPES[spec.datatype])
        return out

    def warmup(self, max_batch_size: int) -> None:
        """Run batch sizes 1 and max once so the first real request pays no setup cost."""
        for rows in sorted({1, max_batch_size}):
            self.run([self.example(rows)])
        self.ready = True


def _tensor(torch: Any, array: np.ndarray) -> Any:
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _spec(raw: dict[str, Any]) -> TensorSpec:
    datatype = raw.get("datatype", "FP32")
    if datatype not in DATATYPES:
        raise ArtifactError("The artifact's signature has an unsupported datatype",
                            expected=sorted(DATATYPES), received=datatype)
    return TensorSpec(str(raw["name"]), datatype, [int(d) for d in raw["shape"]])
