"""Datasets that ship with Lepton, offline."""

from lepton.datasets import mnist

__all__ = ["mnist"]
