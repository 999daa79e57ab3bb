"""INT8 quantization through ONNX Runtime: static (QDQ, calibrated) or dynamic.

PyTorch 2.13 no longer ships the PT2E flow, so the INT8 path is ONNX Runtime's own
``quantize_static`` / ``quantize_dynamic`` on Lepton's checked ONNX export. When no method is
given it is chosen from the layer types: convolutions get static QDQ, per channel (dynamic
quantization of a convolution becomes ``ConvInteger``, which ONNX Runtime's CPU provider does
not implement, and it collapses depthwise CNNs); Dense, LSTM/GRU and attention get dynamic
(weights INT8, activations scaled per batch: no calibration needed, and LSTM stays quantized).
Asked for dynamic on a model with convolutions, only its MatMul/Gemm/LSTM/attention nodes are
quantized, and the variant says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lepton.errors import ConfigError, ShapeError, require

METHODS = ("static", "dynamic")
CONV = {"Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D"}
# ONNX Runtime's own dynamic list less Conv; Gather quantizes embedding tables (the bulk of
# a text model's file; quantize_dynamic's default does it too)
DYNAMIC_OPS = ["MatMul", "Gemm", "LSTM", "GRU", "Attention", "Gather", "EmbedLayerNormalization"]
CALIBRATION_ROWS = 1024


def layer_types(model: Any) -> set[str]:
    from lepton.core.layers.base import Layer

    return {type(m).__name__ for m in model.modules() if isinstance(m, Layer)}


def choose_method(model: Any) -> str:
    """static for models with convolutions, dynamic for Dense / recurrent / attention ones."""
    return "static" if layer_types(model) & CONV else "dynamic"


def check_calibration(model: Any, data: Any) -> list[np.ndarray]:
    """Calibration inputs as arrays, one per model input, refused with the reason when their
    shape or dtype cannot feed the model."""
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(arrays) != len(model.input_spec):
        raise ShapeError("Calibration data has the wrong number of inputs",
                         expected=f"{len(model.input_spec)} array(s)", received=len(arrays))
    out = []
    for name, arr, (shape, dtype) in zip(model.input_names, arrays, model.input_spec):
        arr = np.asarray(arr)
        if arr.dtype.kind not in "fiub":
            raise ShapeError(f"Calibration input '{name}' is not numeric",
                             expected=dtype, received=str(arr.dtype),
                             fix="pass preprocessed arrays (the model's input), not raw records")
        if tuple(arr.shape[1:]) != tuple(shape) or len(arr) == 0:
            raise ShapeError(f"Calibration input '{name}' has the wrong shape",
                             expected=f"(N, {', '.join(map(str, shape))})",
                             received=str(tuple(arr.shape)),
                             fix="pass a sample of the training data, preprocessed")
        kind = np.float32 if dtype.startswith("float") else np.int64
        if kind is np.int64 and arr.dtype.kind == "f":
            raise ShapeError(f"Calibration input '{name}' must hold token ids",
                             expected="integers", received=str(arr.dtype))
        out.append(np.ascontiguousarray(arr[:CALIBRATION_ROWS], dtype=kind))
    return out


def _reader(names: list[str], arrays: list[np.ndarray], batch: int = 64) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{n: a[i:i + batch] for n, a in zip(names, arrays)}
                                 for i in range(0, len(arrays[0]), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    return Reader()


def _pre_process(src: Path, dst: Path) -> bool:
    """ONNX Runtime's recommended step before static quantization (shape inference and graph
    optimisation: the Transpose pairs a channels-last export leaves around each activation
    fold away, so fewer Quantize/Dequantize pairs are placed). On the SPEC CNN: 1.6x faster at
    batch 1 and 2.1x at batch 64 than quantizing the raw export, same accuracy. A graph it
    cannot process is quantized as it is."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return _standard_domains(dst)
    except Exception:  # an optimisation only: a graph it cannot handle is quantized raw
        return False


def _standard_domains(path: Path) -> bool:
    """Drop the operator sets the optimiser declares but no node uses (the runtime refuses
    unknown domains); False, to quantize the raw export instead, if a node needs one."""
    import onnx

    from lepton.artifact.runtimes.onnxruntime import DOMAINS

    proto = onnx.load(str(path))
    used = {n.domain for n in proto.graph.node}
    if used - DOMAINS:
        return False
    keep = [o for o in proto.opset_import if o.domain in used | {""}]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    onnx.save(proto, str(path))
    return True


def quantize_bytes(model: Any, data: bytes, method: str, calibration: list[np.ndarray] | None,
                   per_channel: bool) -> tuple[bytes, dict[str, Any]]:
    """INT8 ONNX bytes from fp32 ONNX bytes, and the settings that made them."""
    q = require("onnxruntime.quantization", "compress")
    settings: dict[str, Any] = {"method": method, "per_channel": per_channel,
                                "library": "onnxruntime.quantization"}
    with tempfile.TemporaryDirectory(prefix="lepton-quantize-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        if method == "static":
            assert calibration is not None
            if _pre_process(src, Path(tmp) / "pre.onnx"):
                src = Path(tmp) / "pre.onnx"
                settings["pre_process"] = "onnxruntime.quantization.quant_pre_process"
            q.quantize_static(str(src), str(dst), _reader(list(model.input_names), calibration),
                              quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                              activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
            settings.update(format="QDQ", calibration_rows=len(calibration[0]),
                            calibrate_method="MinMax")
        else:
            ops = list(DYNAMIC_OPS)
            if layer_types(model) & CONV:
                settings["skipped"] = "Conv (ConvInteger is not implemented on CPU)"
            q.quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops,
                               per_channel=per_channel, weight_type=q.QuantType.QInt8)
            settings["op_types"] = ops
        return dst.read_bytes(), settings


def quantize(model: Any, path: str | Path, method: str | None = None, calibration: Any = None,
             per_channel: bool | None = None, *,
             lineage: dict[str, Any] | None = None) -> Path:
    """Write an INT8 ONNX variant of ``model`` (a Model, artifact path or Source) at ``path``.

    ``method`` None chooses by layer type (see the module docstring); static needs
    ``calibration``: a sample of the (preprocessed) training inputs, at most 1,024 rows used.
    ``per_channel`` None: per channel for static (convolution weights need it), per tensor
    for dynamic, which quantizes no convolution: per-channel MatMul scales cost 6-8 % at
    batch 1 on the 784-1024-1024 MLP and changed its accuracy by 0.04 points
    (benchmarks/compress.py).
    """
    from lepton.compress.onnx_export import onnx_artifact, onnx_bytes
    from lepton.compress.source import as_source

    source = as_source(model)
    net = source.model
    chosen = method or choose_method(net)
    if chosen not in METHODS:
        raise ConfigError("Unknown quantization method", expected=list(METHODS) + [None],
                          received=repr(method))
    if per_channel is None:
        per_channel = chosen == "static"
    arrays = None
    if chosen == "static":
        if calibration is None:
            raise ConfigError("Static quantization needs calibration data",
                              fix="pass calibration=<sample of training inputs> "
                                  "(--calibration), or method='dynamic'")
        arrays = check_calibration(net, calibration)
    int8, settings = quantize_bytes(net, onnx_bytes(net), chosen, arrays, per_channel)
    settings["chosen"] = "given" if method else "by layer type"
    return onnx_artifact(source, int8, path, variant_name=f"int8-{chosen}",
                         transform=("quantize", settings), lineage=lineage, keep_weights=False)
