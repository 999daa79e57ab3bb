"""The retention sweep, as the monitor offers it: folded into sketches first, then deleted;
rows with feedback stay. It lives in ``lepton.serve.retention`` because the server runs it
(``lepton serve --log-retention 30d``), and serve sits above monitor.

    from lepton.monitor.retention import sweep
    sweep(store, "30d")
"""

from __future__ import annotations

from lepton.serve.retention import sweep

__all__ = ["sweep"]
