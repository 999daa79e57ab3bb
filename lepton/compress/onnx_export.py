"""Export to ONNX: the network's graph with a symbolic batch axis, checked, as an artifact.

The TorchScript-based exporter (``torch.onnx.export(dynamo=False)``) is used because the
dynamo exporter needs ``onnxscript``, which Lepton does not depend on; the manifest records
which one made the file. The batch axis is exported from a batch of 2 (a batch of 1 can freeze
it) and then *read back* from the graph: a fixed batch dimension is an error, not a surprise
at serving time. Preprocessing stays in the manifest's metadata, applied by Lepton's runtime
exactly as for a torch model.
"""

from __future__ import annotations

import datetime as _dt
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ArtifactError, ConfigError

OPSET = 17
ONNX_FILE = "model.onnx"
EXPORTER = "torch.onnx.export(dynamo=False, TorchScript)"
FORMATS = ("onnx", "torch.export")


def onnx_bytes(model: Any) -> bytes:
    """The model as ONNX bytes with a symbolic batch axis on every input and output."""
    import torch

    if not getattr(model, "built", False) or not getattr(model, "input_spec", None):
        raise ConfigError("Only a built model can be exported",
                          fix="train it, call it on data, or give input_shape")
    example = tuple(_example(torch, shape, dtype, 2) for shape, dtype in model.input_spec)
    inputs, outputs = list(model.input_names), list(model.output_names)
    axes = {n: {0: "batch"} for n in inputs + outputs}
    model = export_form(model.to("cpu").eval())
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(model, example, buffer,  # type: ignore[arg-type]
                              dynamo=False, input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                              do_constant_folding=True)
    except Exception as exc:  # the exporter raises many types; name the layer that fails
        raise _unexportable(model, exc) from None
    data = buffer.getvalue()
    check_batch_axis(data)
    return data


def export_form(model: Any) -> Any:
    """A copy whose BatchNormalization layers compute their inference form on the last axis.

    The layer's own ``call`` moves channels to axis 1 for ``F.batch_norm``, which exports as
    Transpose -> BatchNormalization -> Transpose; written as ``x * scale + shift`` on the last
    axis it exports as Mul/Add, which ONNX Runtime folds into the convolution before it and
    the INT8 quantizer sees no transposes to wrap. The model itself is not changed."""
    import copy
    import types

    twin = copy.deepcopy(model)
    for module in twin.modules():
        if type(module).__name__ == "BatchNormalization":
            module.call = types.MethodType(_batch_norm, module)
    return twin


def _batch_norm(self: Any, x: Any) -> Any:
    scale = self.gamma * (self.moving_variance + self.epsilon).rsqrt()
    return x * scale + (self.beta - self.moving_mean * scale)


def _example(torch: Any, shape: tuple, dtype: str, rows: int) -> Any:
    kind = getattr(torch, dtype, torch.float32)
    if kind.is_floating_point:
        return torch.rand((rows, *shape), dtype=kind)
    return torch.zeros((rows, *shape), dtype=kind)


def check_batch_axis(data: bytes) -> None:
    """Refuse a graph whose inputs or outputs have a fixed first dimension."""
    import onnx

    graph = onnx.load_from_string(data).graph
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if not dims or not dims[0].dim_param:
            got = dims[0].dim_value if dims else "no shape"
            raise ArtifactError(f"The exported graph froze the batch axis of '{value.name}'",
                                expected="a symbolic first dimension ('batch')",
                                received=f"first dimension {got}",
                                fix="report this model to Lepton; serve it on the torch "
                                    "runtime meanwhile")


def _unexportable(model: Any, exc: Exception) -> ArtifactError:
    """The error for a failed export, naming the first layer that fails on its own."""
    import torch

    for layer in _layers(model):
        shape = getattr(layer, "input_shape", None)
        if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
            continue
        dtype = torch.int64 if type(layer).__name__ == "Embedding" else torch.float32
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(layer.eval(), (torch.zeros((2, *shape[1:]), dtype=dtype),),
                                  io.BytesIO(),  # type: ignore[arg-type]
                                  dynamo=False, opset_version=OPSET)
        except Exception as inner:
            return ArtifactError(
                f"Layer '{layer.name}' ({type(layer).__name__}) cannot be exported to ONNX",
                received=f"{type(inner).__name__}: {str(inner).splitlines()[0][:160]}",
                fix="keep this model on the torch runtime (lepton compress without --export "
                    "onnx and --quantize; lepton serve --runtime torch), or replace the layer")
    return ArtifactError(f"Model '{getattr(model, 'name', '?')}' cannot be exported to ONNX",
                         received=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                         fix="keep it on the torch runtime (lepton serve --runtime torch)")


def _layers(model: Any) -> list[Any]:
    from lepton.core.layers.base import Layer

    return [m for m in model.modules() if isinstance(m, Layer) and m is not model
            and not hasattr(m, "compiled")]


def parity(model: Any, data: bytes, rows: int = 3) -> float:
    """Largest |ORT - torch| on a random batch: the export is checked before it is kept."""
    import onnxruntime as ort
    import torch

    feeds = {n: _example(torch, s, d, rows) for n, (s, d) in zip(model.input_names,
                                                                   model.input_spec)}
    with torch.no_grad():
        want = model.run_outputs(list(feeds.values()))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    return float(max(np.abs(g - w.numpy()).max() for g, w in zip(got, want)))


def export(model: Any, format: str = "onnx", path: str | Path | None = None, *,
           lineage: dict[str, Any] | None = None, keep_weights: bool = True) -> Path:
    """Write ``model`` (a Model or an artifact path) as a new ONNX artifact at ``path``.

    ``keep_weights`` also keeps ``weights.safetensors``, so ``--runtime torch`` can still run
    it. ``"torch.export"`` is refused: its ``.pt2`` files hold pickled tensors, which Lepton
    never writes or loads.
    """
    from lepton.compress.source import as_source

    if format not in FORMATS:
        raise ConfigError("Unknown export format", expected=list(FORMATS), received=repr(format))
    if format == "torch.export":
        raise ConfigError("torch.export programs (.pt2) store their tensors with pickle, which "
                          "Lepton never writes", received="format='torch.export'",
                          fix="export to 'onnx' (same graph capture, no pickle)")
    if path is None:
        raise ConfigError("export needs a path for the new artifact", fix="pass path=...")
    source = as_source(model)
    data = onnx_bytes(source.model)
    error = parity(source.model, data)
    settings = {"exporter": EXPORTER, "opset": OPSET, "batch_axis": "symbolic",
                "max_abs_error": error}
    parent = source.variant["name"]
    name = "onnx-fp32" if parent == "fp32" else f"{parent}-onnx"
    return onnx_artifact(source, data, path, variant_name=name, transform=("export", settings),
                         lineage=lineage, keep_weights=keep_weights)


def onnx_artifact(model: Any, data: bytes, path: str | Path, *, variant_name: str,
                  transform: tuple[str, dict[str, Any]], lineage: dict[str, Any] | None,
                  keep_weights: bool, metadata: dict[str, Any] | None = None) -> Path:
    """Write an artifact run by ONNX Runtime: ``model.onnx`` (+ the torch weights when they
    still describe the same network) and the full manifest."""
    from lepton import __version__
    from lepton.artifact.manifest import check_lineage
    from lepton.artifact.save import check_variant
    from lepton.compress.source import as_source, chain, lineage_for
    from lepton.core.saving import (
        FORMAT,
        FORMAT_VERSION,
        WEIGHTS,
        network_document,
        write_artifact,
    )

    source = as_source(model)
    network, weights = network_document(source.model)
    files = {ONNX_FILE: data, **({WEIGHTS: weights} if keep_weights else {})}
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "lepton_version": __version__,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **network,
        "variant": check_variant(chain(source, variant_name, transform)),
        "runtime": {"name": "onnxruntime", "files": [ONNX_FILE],
                    "exporter": EXPORTER},
        "lineage": check_lineage(lineage_for(source, transform[0], lineage)),
        "reference": source.document.get("reference"),
        "metadata": metadata if metadata is not None else source.metadata,
    }
    return write_artifact(Path(path), manifest, files)
