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
from lepton.core.device import default_device
from lepton.core.layers import Input, Layer, register
from lepton.core.models import Model, Sequential
from lepton.core.saving import load_model

__all__ = [
    "Input", "Layer", "Model", "Sequential", "activations", "callbacks", "default_device",
    "layers", "load_model", "losses", "metrics", "models", "optimizers",
    "register", "utils",
]
