"""Lepton Core: a Keras-style model API on PyTorch (also importable as ``lepton_core``)."""

from lepton.core import (
    activations,
    callbacks,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    utils,
)
from lepton.core.artifact import load_model, read_manifest
from lepton.core.device import default_device
from lepton.core.layers import Input, Layer, register
from lepton.core.models import Model, Sequential

__all__ = [
    "Input", "Layer", "Model", "Sequential", "activations", "callbacks", "default_device",
    "layers", "load_model", "losses", "metrics", "models", "optimizers", "read_manifest",
    "register", "utils",
]
