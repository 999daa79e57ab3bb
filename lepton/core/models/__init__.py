"""Models: Sequential, functional ``Model(inputs, outputs)`` and subclassed ``Model``."""

from lepton.core.models.model import Model
from lepton.core.models.sequential import Sequential

__all__ = ["Model", "Sequential"]
