"""The network's own serialization: architecture config, signature and weights.

A saved model is a directory with ``lepton.json`` and ``weights.safetensors``. This module
writes and reads the network's part of that manifest (``model``, ``signature``, ``compile``,
``checksums``, ``metadata``); ``lepton.artifact`` builds the full manifest on top of it
(variant, runtime, lineage, reference) and documents every field. Loading reads JSON and raw
tensors only, so it never runs code from the file; pickle files are refused without being
opened by an unpickler.
"""

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
FORMAT_VERSION = 2  # 1: before variants/runtimes/lineage/reference; still read
MANIFEST = "lepton.json"
WEIGHTS = "weights.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin", ".ckpt")
_DATATYPES = {torch.float32: "FP32", torch.float16: "FP16", torch.float64: "FP64",
              torch.int64: "INT64", torch.int32: "INT32", torch.int16: "INT16",
              torch.int8: "INT8", torch.uint8: "UINT8", torch.bool: "BOOL"}


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


def refuse_pickle(path: Path) -> None:
    raise UnsafeArtifactError(
        f"'{path}' holds a pickle payload; Lepton never loads pickle because it can run code",
        expected="an artifact directory with lepton.json and weights.safetensors",
        received=f"a pickle file ({path.name})",
        fix="re-export the model's weights with safetensors (model.save(path)) from a trusted "
        "environment")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- writing ---------------------------------------------------------------------------------
def network_document(model: Any) -> tuple[dict[str, Any], bytes]:
    """The network's manifest sections (``model``, ``signature``, ``compile``) and its
    weights as safetensors bytes."""
    if not model.built or not model.input_spec:
        raise ArtifactError(f"Model '{model.name}' has not been built, so there is nothing to "
                            "save yet", fix="train it, call it on data, or give input_shape")
    outputs = _example_outputs(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    sections = {
        "model": {
            "class_name": type(model)._registered_name,
            "config": model.get_config(),
            "input_shapes": [list(shape) for shape, _ in model.input_spec],
            "input_dtypes": [dtype for _, dtype in model.input_spec],
        },
        "signature": {
            "inputs": [{"name": name, "shape": [-1, *shape],
                        "datatype": _DATATYPES.get(getattr(torch, dtype, torch.float32), "FP32")}
                       for name, (shape, dtype) in zip(model.input_names, model.input_spec)],
            "outputs": [{"name": name, "shape": [-1, *out.shape[1:]],
                         "datatype": _datatype(out.dtype)}
                        for name, out in zip(model.output_names, outputs)],
        },
        "compile": model.compiled.to_json() if model.compiled is not None else None,
    }
    return sections, save_tensors(tensors)


def _example_outputs(model: Any) -> list[torch.Tensor]:
    """The outputs for a batch of two zeros (inference mode: no statistics move)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    example = [torch.zeros((2, *shape), dtype=getattr(torch, dtype, torch.float32),
                           device=device) for shape, dtype in model.input_spec]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model.run_outputs(example)
    finally:
        model.train(was_training)


def _datatype(dtype: torch.dtype) -> str:
    try:
        return _DATATYPES[dtype]
    except KeyError:
        raise ArtifactError("The model returns a tensor type no runtime can serve",
                            expected=sorted(set(_DATATYPES.values())), received=str(dtype),
                            fix="return float32 or an integer type from the model") from None


def write_artifact(path: str | Path, manifest: dict[str, Any], files: dict[str, bytes]) -> Path:
    """Write ``files`` and ``lepton.json`` (with their SHA-256 under ``checksums``) to the
    directory ``path``, replacing it atomically."""
    path = Path(path)
    manifest = {**manifest, "checksums": {name: sha256(data) for name, data in files.items()}}
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArtifactError("The manifest cannot be written as JSON", received=str(exc),
                            fix="pass only JSON values in metadata") from None
    with atomic_directory(path) as tmp:
        for name, data in files.items():
            write_bytes(tmp / name, data)
        write_bytes(tmp / MANIFEST, text.encode())
    return path


def save_model(model: Any, path: str | Path, metadata: dict | None = None,
               sections: dict[str, Any] | None = None, profile: bool = True) -> Path:
    """Write ``model`` to the directory ``path`` atomically. ``sections`` are the manifest
    fields later stages add (``lepton.artifact`` passes variant, runtime, lineage…). Without
    a ``reference`` among them, a model trained by ``fit`` gets one from the rows ``fit``
    kept (``lepton.core.training.sample``) unless ``profile`` is off; a failure to profile only
    warns."""
    network, weights = network_document(model)
    sections = dict(sections or {})
    if profile and sections.get("reference") is None:
        from lepton.core.training.sample import safe_reference_of

        reference = safe_reference_of(model, metadata)
        if reference is not None:
            sections["reference"] = reference
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lepton_version": _version(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **network,
        **sections,
        "metadata": metadata if metadata is not None else model.metadata,
    }
    return write_artifact(path, manifest, {WEIGHTS: weights})


# -- reading ---------------------------------------------------------------------------------
def read_document(path: str | Path) -> dict[str, Any]:
    """The artifact's ``lepton.json`` as JSON, checked to be a manifest this Lepton reads."""
    path = Path(path)
    if not path.exists():
        recover_directory(path)
    if not path.exists():
        raise ArtifactError(f"No model artifact at '{path}'",
                            fix="check the path; artifacts are directories written by "
                            "model.save(path) or `lepton train`")
    if path.is_file():
        if looks_like_pickle(path) or path.suffix in PICKLE_SUFFIXES:
            refuse_pickle(path)
        raise ArtifactError(f"'{path}' is a file, not a Lepton artifact directory",
                            fix="pass the directory that holds lepton.json")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        for candidate in sorted(path.iterdir()):
            if candidate.suffix in PICKLE_SUFFIXES or looks_like_pickle(candidate):
                refuse_pickle(candidate)
        raise ArtifactError(f"'{path}' has no {MANIFEST}", fix="pass a directory written by "
                            "model.save(path)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"The artifact manifest '{manifest_path}' is corrupt",
                            received=str(exc), fix="re-save or re-train the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"'{manifest_path}' is not a Lepton model manifest",
                            expected=f"format '{FORMAT}'",
                            received=repr(manifest.get("format") if isinstance(manifest, dict)
                                          else type(manifest).__name__))
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArtifactError(f"'{manifest_path}' has no valid format_version",
                            expected="an integer >= 1", received=repr(version))
    if version > FORMAT_VERSION:
        raise ArtifactError("The artifact was written by a newer Lepton",
                            expected=f"format_version <= {FORMAT_VERSION}",
                            received=str(version), fix="upgrade Lepton")
    return manifest


def read_file(path: Path, name: str, manifest: dict[str, Any]) -> bytes:
    """One file of the artifact, checked against the manifest's checksum."""
    file = path / name
    if not file.is_file():
        raise ArtifactError(f"The artifact '{path}' has no {name}",
                            fix="re-save the model; the file is missing")
    if looks_like_pickle(file):
        refuse_pickle(file)
    data = file.read_bytes()
    expected = (manifest.get("checksums") or {}).get(name)
    if expected and sha256(data) != expected:
        raise ArtifactError(f"'{name}' in '{path}' is corrupt (checksum mismatch)",
                            expected=f"sha256 {expected[:12]}…",
                            received=f"sha256 {sha256(data)[:12]}…",
                            fix="restore the artifact from its source or re-train")
    return data


def read_weights(path: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    try:
        return load_tensors(read_file(path, WEIGHTS, manifest))
    except (SafetensorError, ValueError, RuntimeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"The weights in '{path}' are not valid safetensors",
                            received=str(exc)[:200], fix="re-save the model") from None


def build_network(manifest: dict[str, Any]) -> Any:
    """Rebuild the architecture (no weights) through the class registry."""
    spec = manifest.get("model") or {}
    try:
        cls: Any = registered_class(spec["class_name"])
        model = cls.from_config(spec.get("config") or {})
        model.build_for([tuple(s) for s in spec.get("input_shapes", [])],
                        spec.get("input_dtypes"))
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ArtifactError("The artifact's architecture cannot be rebuilt",
                            received=f"{type(exc).__name__}: {exc}",
                            fix="check that the Lepton version and custom layers match") from None
    return model


def load_network(path: Path, manifest: dict[str, Any], compile: bool = True) -> Any:
    """The model a manifest describes, with its weights (and compile settings)."""
    tensors = read_weights(path, manifest)
    model = build_network(manifest)
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
    return model.eval()


def load_model(path: str | Path, compile: bool = True) -> Any:
    """Load an artifact written by ``model.save``: same architecture, weights and metadata."""
    path = Path(path)
    return load_network(path, read_document(path), compile=compile)


def _version() -> str:
    from lepton import __version__

    return __version__
