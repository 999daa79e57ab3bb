"""The ONNX Runtime runtime: an artifact's ``model.onnx`` in one ``InferenceSession``.

The ONNX file is data: the session is built from its bytes (checked against the manifest's
SHA-256) with no custom-op library ever registered, and operators from unknown domains are
refused before ONNX Runtime sees them. Session options: the given intra-op threads (the
server's ``--threads``), one inter-op thread, sequential execution, every graph optimisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lepton.artifact.manifest import Manifest
from lepton.artifact.runtimes.base import Item, Result, Runtime, all_finite
from lepton.artifact.signature import TensorSpec
from lepton.errors import ArtifactError, require

ONNX_FILE = "model.onnx"
# built into ONNX Runtime itself: the standard sets and Microsoft's contrib (QDQ) operators
DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}


def session(data: bytes, threads: int | None = None) -> Any:
    """An optimised CPU session over ONNX bytes; a damaged file is an ArtifactError."""
    ort = require("onnxruntime", "compress")
    check_domains(data)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own pybind types
        raise ArtifactError("model.onnx cannot be loaded by ONNX Runtime",
                            received=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
                            fix="re-export the model (lepton compress MODEL --export onnx)"
                            ) from None


def check_domains(data: bytes) -> None:
    """Refuse graphs that need operators from outside ONNX Runtime (custom-op libraries)."""
    onnx = require("onnx", "compress")
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ArtifactError("model.onnx is not a valid ONNX file (truncated or corrupt)",
                            received=f"{type(exc).__name__}", fix="re-export the model"
                            ) from None
    used = {n.domain for n in proto.graph.node} | {o.domain for o in proto.opset_import}
    unknown = sorted(used - DOMAINS)
    if unknown:
        raise ArtifactError("model.onnx needs custom operators, which Lepton never loads",
                            expected=sorted(DOMAINS), received=unknown,
                            fix="export the model with standard ONNX operators")


class OnnxModule:
    """The session as a torch-style callable, for the raw-record Predictor."""

    def __init__(self, runtime: OnnxRuntime) -> None:
        self.runtime = runtime

    def eval(self) -> OnnxModule:
        return self

    def __call__(self, *tensors: Any) -> Any:
        import torch

        feeds = {s.name: np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach")
                                              else t, dtype=self.runtime.dtypes[s.name])
                 for s, t in zip(self.runtime.inputs, tensors)}
        outs = [torch.from_numpy(o) for o in self.runtime.session.run(None, feeds)]
        return outs[0] if len(outs) == 1 else outs


class OnnxRuntime(Runtime):
    """One ONNX Runtime session plus its signature."""

    platform = "onnxruntime"
    takes_threads = True

    def __init__(self, session: Any, name: str, inputs: list[TensorSpec],
                 outputs: list[TensorSpec] | None = None, *, version: str | None = None,
                 metadata: dict[str, Any] | None = None, path: Path | None = None) -> None:
        from lepton.artifact.signature import DATATYPES

        super().__init__(name, inputs, outputs, version=version, metadata=metadata, path=path)
        self.session = session
        self.dtypes = {s.name: DATATYPES[s.datatype] for s in inputs}
        self._module = OnnxModule(self)
        self._feeds = [(s.name, self.dtypes[s.name]) for s in inputs]
        self._first = inputs[0].name
        self._output_names = [o.name for o in session.get_outputs()]
        # the C++ session under the Python wrapper, when this ONNX Runtime exposes it
        self._run = getattr(getattr(session, "_sess", None), "run", None) or session.run

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, name: str, version: str | None,
                      threads: int | None = None) -> OnnxRuntime:
        from lepton.core.saving import read_file

        files = manifest.runtime.get("files") or [ONNX_FILE]
        if ONNX_FILE not in (manifest.document.get("checksums") or {}) and \
                not (manifest.path / files[0]).is_file():
            raise ArtifactError(f"The artifact '{manifest.path}' has no {ONNX_FILE}",
                                fix="export it first: lepton compress MODEL --export onnx, "
                                    "or run it with --runtime torch")
        data = read_file(manifest.path, files[0], manifest.document)
        return cls(session(data, threads), name, manifest.inputs, manifest.outputs or None,
                   version=version, metadata=manifest.metadata, path=manifest.path)

    @property
    def module(self) -> Any:
        return self._module

    def run(self, items: Sequence[Item]) -> list[Result]:
        """Run the items as one batch (one concatenate per input).

        The per-call work around ``session.run`` is kept to a few microseconds, since a small
        model's whole batch-1 call takes only tens: the names are read once, the finite check
        is one BLAS pass (``all_finite``) and skipped for integer inputs, and the session's own
        C++ ``run`` is called, skipping the Python wrapper's per-call re-validation of input
        names (the signature already fixed them)."""
        if len(items) == 1:
            feeds = {n: np.asarray(items[0][n], dtype=d) for n, d in self._feeds}
        else:
            feeds = {n: np.concatenate([np.asarray(it[n], dtype=d) for it in items])
                     for n, d in self._feeds}
        for array in feeds.values():
            if array.dtype.kind == "f" and not all_finite(array):
                return self.run_finite(items)
        outs = list(self._run(self._output_names, feeds, None))
        if len(items) == 1 and all(o.ndim and o.shape[0] == len(feeds[self._first])
                                   for o in outs):
            return [dict(zip(self.output_names(len(outs)), outs))]
        return self.split(items, outs)
