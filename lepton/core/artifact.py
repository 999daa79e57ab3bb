"""The model artifact: a directory with ``lepton.json`` (architecture, signature, compile
settings, metadata, checksums) and ``weights.safetensors``. Written atomically; loading reads
JSON and raw tensors only, so it never runs code from the file. Pickle files are refused
without being opened by an unpickler."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from lepton.atomic import atomic_directory, recover_directory, write_bytes
from lepton.core.layers.base import registered_class
from lepton.errors import ArtifactError, UnsafeArtifactError

FORMAT = "lepton.model"
FORMAT_VERSION = 1
MANIFEST = "lepton.json"
WEIGHTS = "weights.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin", ".ckpt")
_DATATYPES = {"float32": "FP32", "float16": "FP16", "bfloat16": "BF16", "int64": "INT64",
              "int32": "INT32", "uint8": "UINT8", "bool": "BOOL"}


def looks_like_pickle(path: Path) -> bool:
    """True for raw pickles (protocol 2+) and zip archives holding one (torch.save)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    if len(head) == 9 and head[8:9] == b"{" and \
            int.from_bytes(head[:8], "little") < path.stat().st_size:
        return False  # a safetensors header: 8-byte length, then JSON
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith((".pkl", "data.pkl")) for n in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def _refuse_pickle(path: Path) -> None:
    raise UnsafeArtifactError(
        f"'{path}' holds a pickle payload; Lepton never loads pickle because it can run code",
        expected="an artifact directory with lepton.json and weights.safetensors",
        received=f"a pickle file ({path.name})",
        fix="re-export the model's weights with safetensors (model.save(path)) from a trusted "
        "environment")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signature(model: Any, output_shapes: list[tuple]) -> dict:
    spec = model.input_spec or []
    return {
        "inputs": [{"name": name, "shape": [-1, *shape], "datatype": _DATATYPES.get(dtype, "FP32")}
                   for name, (shape, dtype) in zip(model.input_names, spec)],
        "outputs": [{"name": name, "shape": [-1, *shape[1:]], "datatype": "FP32"}
                    for name, shape in zip(model.output_names, output_shapes)],
    }


def model_kind(model: Any) -> str:
    from lepton.core.models import Model, Sequential

    if isinstance(model, Sequential):
        return "sequential"
    if type(model) is Model and model.graph is not None:
        return "functional"
    return "subclass"


def save_model(model: Any, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model`` to the directory ``path`` (replacing it atomically)."""
    from lepton.core.training.trainer import ensure_built

    if not model.built or not model.input_spec:
        raise ArtifactError(f"Model '{model.name}' has not been built, so there is nothing to "
                            "save yet", fix="train it, call it on data, or give input_shape")
    path = Path(path)
    example = [torch.zeros((2, *shape), dtype=torch.int64 if dtype.startswith("int") else
                           torch.float32, device=_param_device(model))
               for shape, dtype in model.input_spec]
    output_shapes = ensure_built(model, example)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = save_tensors(tensors)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lepton_version": _version(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "kind": model_kind(model),
            "class_name": type(model)._registered_name,
            "config": model.get_config(),
            "input_shapes": [list(shape) for shape, _ in model.input_spec],
            "input_dtypes": [dtype for _, dtype in model.input_spec],
        },
        "signature": signature(model, output_shapes),
        "compile": model.compiled.to_json() if model.compiled is not None else None,
        "checksums": {WEIGHTS: _sha256(weights)},
        "metadata": metadata if metadata is not None else model.metadata,
    }
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError("The metadata cannot be written as JSON",
                            received=str(exc), fix="pass only JSON values in metadata") from None
    with atomic_directory(path) as tmp:
        write_bytes(tmp / WEIGHTS, weights)
        write_bytes(tmp / MANIFEST, text.encode())
    return path


def read_manifest(path: str | Path) -> dict:
    """The artifact's ``lepton.json``, checked, without loading weights."""
    path = Path(path)
    if not path.exists():
        recover_directory(path)
    if not path.exists():
        raise ArtifactError(f"No model artifact at '{path}'",
                            fix="check the path; artifacts are directories written by "
                            "model.save(path) or `lepton train`")
    if path.is_file():
        if looks_like_pickle(path) or path.suffix in PICKLE_SUFFIXES:
            _refuse_pickle(path)
        raise ArtifactError(f"'{path}' is a file, not a Lepton artifact directory",
                            fix="pass the directory that holds lepton.json")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        for candidate in sorted(path.iterdir()):
            if candidate.suffix in PICKLE_SUFFIXES or looks_like_pickle(candidate):
                _refuse_pickle(candidate)
        raise ArtifactError(f"'{path}' has no {MANIFEST}", fix="pass a directory written by "
                            "model.save(path)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"The artifact manifest '{manifest_path}' is corrupt",
                            received=str(exc), fix="re-save or re-train the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"'{manifest_path}' is not a Lepton model manifest",
                            expected=f"format '{FORMAT}'",
                            received=repr(manifest.get("format") if isinstance(manifest, dict)
                                          else type(manifest).__name__))
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError("The artifact was written by a newer Lepton",
                            expected=f"format_version <= {FORMAT_VERSION}",
                            received=str(manifest.get("format_version")),
                            fix="upgrade Lepton")
    return manifest


def read_weights(path: Path, manifest: dict | None = None) -> dict[str, torch.Tensor]:
    weights_path = path / WEIGHTS
    if not weights_path.is_file():
        raise ArtifactError(f"The artifact '{path}' has no {WEIGHTS}",
                            fix="re-save the model; the weights file is missing")
    if looks_like_pickle(weights_path):
        _refuse_pickle(weights_path)
    data = weights_path.read_bytes()
    expected = ((manifest or {}).get("checksums") or {}).get(WEIGHTS)
    if expected and _sha256(data) != expected:
        raise ArtifactError(f"The weights in '{path}' are corrupt (checksum mismatch)",
                            expected=f"sha256 {expected[:12]}…",
                            received=f"sha256 {_sha256(data)[:12]}…",
                            fix="restore the artifact from its source or re-train")
    try:
        return load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"The weights in '{path}' are not valid safetensors",
                            received=str(exc)[:200], fix="re-save the model") from None


def build_model(manifest: dict) -> Any:
    """Rebuild the architecture (no weights) from a manifest."""
    from lepton.core.models import Model, Sequential

    spec = manifest.get("model") or {}
    kind, config = spec.get("kind"), spec.get("config") or {}
    try:
        if kind == "sequential":
            model = Sequential.from_config(config)
        elif kind == "functional":
            model = Model.from_config(config)
        elif kind == "subclass":
            model = registered_class(spec["class_name"]).from_config(config)
        else:
            raise ArtifactError("Unknown model kind in the artifact",
                                expected="sequential, functional or subclass", received=repr(kind))
        shapes = [tuple(s) for s in spec.get("input_shapes", [])]
        model.build_for(shapes, spec.get("input_dtypes"))
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError("The artifact's architecture cannot be rebuilt",
                            received=f"{type(exc).__name__}: {exc}",
                            fix="check that the Lepton version and custom layers match") from None
    return model


def load_model(path: str | Path, compile: bool = True) -> Any:
    """Load an artifact written by ``model.save``: same architecture, weights and metadata."""
    path = Path(path)
    manifest = read_manifest(path)
    tensors = read_weights(path, manifest)
    model = build_model(manifest)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(f"The weights in '{path}' do not fit the architecture",
                            received=str(exc).splitlines()[0][:200],
                            fix="re-save the model; the files do not belong together") from None
    model.metadata = manifest.get("metadata") or {}
    if compile and manifest.get("compile"):
        from lepton.core.training.compiled import from_json

        model.compile(**from_json(manifest["compile"]))
    model.eval()
    return model


# -- training state for resume ---------------------------------------------------------
def write_training_state(path: Path, model: Any, optimizer: torch.optim.Optimizer,
                         state: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optimizer.{index}.{name}"] = tensor.detach().cpu().contiguous()
    tensors["rng.torch"] = state.pop("torch_rng")
    tensors["rng.shuffle"] = state.pop("shuffle_rng")
    meta = {**state, "param_groups": opt["param_groups"]}
    with atomic_directory(path) as tmp:
        write_bytes(tmp / "state.safetensors", save_tensors(tensors))
        write_bytes(tmp / "state.json", json.dumps(meta).encode())


def read_training_state(path: Path, model: Any, optimizer: torch.optim.Optimizer) -> dict:
    try:
        meta = json.loads((path / "state.json").read_text())
        tensors = load_tensors((path / "state.safetensors").read_bytes())
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise ArtifactError(f"The resume state in '{path}' is unreadable", received=str(exc),
                            fix="delete it to start over") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta.pop("param_groups")})
    return {**meta, "torch_rng": tensors["rng.torch"], "shuffle_rng": tensors["rng.shuffle"]}


def _param_device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _version() -> str:
    from lepton import __version__

    return __version__
