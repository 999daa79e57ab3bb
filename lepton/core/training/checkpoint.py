"""The resume state of a training run: weights, optimizer slots, epoch, random state and
callback counters, written atomically as safetensors + JSON (never pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from lepton.atomic import atomic_directory, write_bytes
from lepton.core.callbacks import ModelCheckpoint
from lepton.errors import ArtifactError, ConfigError


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


def save_resume_state(path: Path, epoch: int, *, model: Any, optimizer: torch.optim.Optimizer,
                      generator: torch.Generator, callbacks: list) -> None:
    """Weights, optimizer, epoch, random state and callback counters, written atomically."""
    write_training_state(path, model, optimizer, {
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
        "shuffle_rng": generator.get_state(),
        "callbacks": [cb.get_state() for cb in callbacks],
    })


def resume_from_checkpoint(model: Any, optimizer: torch.optim.Optimizer,
                           generator: torch.Generator, callbacks: list) -> int:
    """Restore the state the run's ModelCheckpoint saved last; returns the epoch to continue
    from (0 when nothing was saved yet: a fresh run)."""
    paths = [cb.resume_path for cb in callbacks if isinstance(cb, ModelCheckpoint)]
    if not paths:
        raise ConfigError("fit(resume=True) needs a ModelCheckpoint callback to resume from",
                          fix="pass callbacks=[ModelCheckpoint('ckpt/model')]")
    if not paths[0].exists():
        return 0
    state = read_training_state(paths[0], model, optimizer)
    torch.set_rng_state(state["torch_rng"])
    generator.set_state(state["shuffle_rng"])
    for cb, cb_state in zip(callbacks, state.get("callbacks", [])):
        cb.set_state(cb_state)
    return int(state["epoch"]) + 1
