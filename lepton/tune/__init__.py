"""``lepton tune``: Optuna studies over Lepton's training, in worker processes, with pruning,
heartbeats and the best trial as a registered model (``lepton.tune.tune``).

Imports are lazy: ``import lepton.tune`` loads neither optuna nor torch.
"""

from lepton import lazy_getattr

_NAMES = {"tune": "lepton.tune.api", "TuneResult": "lepton.tune.api",
          "TuneError": "lepton.tune.storage", "PruningCallback": "lepton.tune.objective",
          "DEFAULT_SPACES": "lepton.tune.space", "load_space": "lepton.tune.space"}
__getattr__ = lazy_getattr(__name__, _NAMES)
__all__ = sorted(_NAMES)
