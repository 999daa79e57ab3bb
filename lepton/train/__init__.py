"""Lepton training from data files: auto model selection, presets, the train run."""

from lepton.train.auto import Plan, auto_plan, make_plans
from lepton.train.presets import PRESETS, get_preset
from lepton.train.run import TrainResult, train

__all__ = ["PRESETS", "Plan", "TrainResult", "auto_plan", "get_preset", "make_plans", "train"]
