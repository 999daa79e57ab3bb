"""The tune report: one self-contained HTML page, like the training report.

Optimisation history, parameter importances and a parallel-coordinates view are drawn with
``optuna.visualization.matplotlib`` (matplotlib is a base dependency; plotly is not) and
embedded as PNG through the evaluation report's ``render_html``. A plot that cannot be drawn
(importances need two completed trials with varied parameters) is left out, not an error.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from lepton.atomic import atomic_write_bytes


def _png(draw: Any, study: Any) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks these plots experimental
            axes = draw(study)
        figure = (axes.flatten()[0] if hasattr(axes, "flatten") else axes).figure
        figure.set_size_inches(11, 4.8)
        figure.tight_layout()
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=90)
        return buf.getvalue()
    except (ValueError, RuntimeError, ImportError, IndexError, ZeroDivisionError):
        return None
    finally:
        plt.close("all")


def figures(study: Any) -> dict[str, bytes]:
    """PNG plots of the study, keyed by their caption."""
    from optuna.visualization import matplotlib as vis

    plots = {"Optimisation history": vis.plot_optimization_history,
             "Parameter importances": vis.plot_param_importances,
             "Parallel coordinates": vis.plot_parallel_coordinate}
    drawn = {name: _png(draw, study) for name, draw in plots.items()}
    return {name: png for name, png in drawn.items() if png}


def write_tune_report(out: Path, study: Any, info: dict[str, Any]) -> Path:
    """Write ``out`` (an HTML file) for ``study``; ``info`` goes in the summary table."""
    from lepton.evaluate.report import render_html
    from lepton.tune.worker import counts

    n = counts(study)
    scalars: dict[str, Any] = {"best value": float(study.best_value),
                               "trials complete": n["complete"], "trials pruned": n["pruned"],
                               "trials failed": n["fail"]}
    rows = [(f"trial {t.number}", f"{t.state.name.lower()} {t.value if t.value is not None else ''}"
             f" {t.params}") for t in study.get_trials(deepcopy=False)][-50:]
    page = render_html(f"Lepton tune: {study.study_name}", scalars, figures(study),
                       {**info, **dict(rows)})
    atomic_write_bytes(Path(out), page.encode())
    return Path(out)
