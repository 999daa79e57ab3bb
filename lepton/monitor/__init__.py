"""Drift and quality monitoring over the prediction log, against the artifact's reference.

    from lepton.monitor import monitor, render_page
    result = monitor("fraud@production", window=500)

Modules: ``stats`` (KS, chi-squared, Wasserstein, Jensen-Shannon, PSI on binned counts),
``drift`` (one feature against its reference, both thresholds), ``window`` (a window of the
log -> folded inputs, predictions, quality, latency), ``profile`` (a reference from data),
``run`` (the whole monitor), ``page`` (the HTML report). NumPy and SciPy only.
"""

from lepton import lazy_getattr

_EXPORTS = {"monitor": "lepton.monitor.run", "render_page": "lepton.monitor.page",
            "reference_for": "lepton.monitor.profile"}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
