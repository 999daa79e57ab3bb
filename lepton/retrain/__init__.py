"""Champion/challenger retraining on feedback: ``retrain`` (``lepton retrain``) and the paired
comparison behind its decision (``compare``)."""

from lepton import lazy_getattr

_EXPORTS = {"retrain": "lepton.retrain.run", "paired_bootstrap": "lepton.retrain.compare",
            "mcnemar": "lepton.retrain.compare"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
