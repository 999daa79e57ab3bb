"""The evaluation report: metrics, PNG plots and one self-contained ``report.html``.

``evaluate_outputs`` turns model outputs into metrics and plots; ``render_html`` makes a page
that embeds the plots as base64 (it opens from a mail attachment, no other files needed);
``write_report`` does both in one call for a saved model and test data. ``lepton train`` and
``lepton demo`` evaluate the model once and hand the same metrics to the artifact's metadata
and to ``save_report``, so the report and the printed number never disagree.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from lepton.artifact.predictor import probabilities
from lepton.atomic import atomic_write_bytes
from lepton.evaluate import plots
from lepton.evaluate.metrics import classification_metrics, headline, regression_metrics

PLOT_TITLES = {"training_curves": "Training curves", "confusion_matrix": "Confusion matrix",
               "roc": "ROC curve", "pr": "Precision-recall curve", "calibration": "Calibration",
               "scatter": "Predicted against true", "residuals": "Residuals"}


def evaluate_outputs(task: str, y_true: np.ndarray, outputs: np.ndarray,
                     labels: list[Any] | None = None, history: dict | None = None,
                     threshold: float = 0.5) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Metrics and PNG plots for one task from true values and raw model outputs."""
    figures: dict[str, bytes] = {}
    if history and any(history.get(k) for k in ("loss", "val_loss")):
        figures["training_curves"] = plots.training_curves(history)
    if task == "regression":
        y_pred = np.asarray(outputs, dtype=np.float64).reshape(len(y_true), -1)[:, 0]
        metrics = regression_metrics(y_true, y_pred)
        figures["scatter"] = plots.regression_scatter(y_true, y_pred)
        figures["residuals"] = plots.residuals(y_true, y_pred)
        return metrics, figures
    labels = list(labels) if labels else list(range(np.shape(outputs)[-1]))
    proba = probabilities(outputs, len(labels))
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    metrics = classification_metrics(y_true, proba, labels, threshold=threshold)
    figures["confusion_matrix"] = plots.confusion_matrix(metrics["confusion_matrix"], labels)
    if len(np.unique(y_true)) >= 2:
        figures["roc"] = plots.roc_curve(y_true, proba, labels)
        figures["pr"] = plots.pr_curve(y_true, proba, labels)
    figures["calibration"] = plots.calibration(y_true, proba)
    return metrics, figures


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def render_html(title: str, metrics: dict[str, Any], figures: dict[str, bytes],
                info: dict[str, Any] | None = None) -> str:
    """A self-contained page: summary, metric tables and the plots inline as base64 PNG."""
    info = info or {}
    scalars = headline(metrics)
    per_class = metrics.get("per_class") or {}
    class_rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}"
        f"</td><td>{v['f1']:.4f}</td><td>{v['support']}</td></tr>"
        for name, v in per_class.items())
    class_table = (f"<h2>Per class</h2><table><tr><th>class</th><th>precision</th>"
                   f"<th>recall</th><th>F1</th><th>support</th></tr>{class_rows}</table>"
                   if class_rows else "")
    images = "".join(
        f'<figure class="{"wide" if name == "training_curves" else "plot"}">'
        f'<img alt="{html.escape(PLOT_TITLES.get(name, name))}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{html.escape(PLOT_TITLES.get(name, name))}</figcaption></figure>"
        for name, png in figures.items())
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d2330; background: #ffffff; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; border-bottom: 3px solid #3867d6; padding-bottom: .4rem; }}
h2 {{ font-size: 1.2rem; margin-top: 2rem; color: #3867d6; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
th, td {{ border: 1px solid #d5dae3; padding: .3rem .7rem; text-align: left; }}
th {{ background: #f1f4f9; font-weight: 600; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.card {{ background: #f1f4f9; border-radius: 8px; padding: .8rem 1.2rem; min-width: 8rem; }}
.card b {{ display: block; font-size: 1.5rem; color: #3867d6; }}
figure {{ margin: 0; flex: 1 1 480px; max-width: 540px; }}
figure.wide {{ max-width: 100%; flex-basis: 100%; }}
figcaption {{ text-align: center; color: #59617a; }}
img {{ max-width: 100%; border: 1px solid #d5dae3; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {generated} by Lepton.</p>
<div class="cards">{"".join(
        f'<div class="card">{html.escape(k)}<b>{_fmt(scalars[k])}</b></div>'
        for k in ("accuracy", "f1", "roc_auc", "r2", "rmse", "loss") if k in scalars)}</div>
<h2>Summary</h2>{_table(list(info.items()))}
<h2>Metrics</h2>{_table(list(scalars.items()))}
{class_table}
<h2>Plots</h2><div class="grid">{images}</div>
</body></html>
"""


def save_report(out: Path, title: str, metrics: dict[str, Any], figures: dict[str, bytes],
                info: dict[str, Any] | None = None) -> Path:
    """Write ``out`` (report.html), the PNGs in ``<out dir>/plots/`` and ``metrics.json``."""
    out = Path(out)
    for name, png in figures.items():
        atomic_write_bytes(out.parent / "plots" / f"{name}.png", png)
    atomic_write_bytes(out.parent / "metrics.json",
                  json.dumps(metrics, indent=2, default=float).encode())
    atomic_write_bytes(out, render_html(title, metrics, figures, info).encode())
    return out


def write_report(model_dir: str | Path, x_test: Any, y_test: Any, history: Any = None,
                 labels: list[Any] | None = None, *, out: str | Path | None = None,
                 title: str | None = None) -> Path:
    """Evaluate the saved model on test data and write ``report.html`` next to it.

    ``x_test`` is either model-ready input (arrays) or raw data (a DataFrame, records, image
    bytes) that the artifact's saved preprocessing turns into input; ``y_test`` holds class
    indices, class names or regression targets. ``history`` is a History, its ``.history``
    dict, or None (then the one saved in the artifact's metadata, if any). Returns the path.
    """
    from lepton.artifact.predictor import Predictor

    predictor = Predictor.from_artifact(model_dir)
    meta = predictor.metadata
    labels = list(labels) if labels is not None else predictor.labels
    x = predictor.prepare(x_test)
    outputs = predictor.forward(x)
    task = predictor.task_for(outputs)
    y_true = predictor.encode_target(y_test, task)
    history = getattr(history, "history", history) or meta.get("history")
    metrics, figures = evaluate_outputs(task, y_true, outputs, labels, history,
                                        threshold=float(meta.get("threshold", 0.5)))
    info = {"model": str(Path(model_dir).resolve().name), "task": task,
            "test rows": len(y_true)}
    info.update(meta.get("report_info", {}))
    if labels:
        info["labels"] = ", ".join(str(v) for v in labels[:20])
    target = Path(out) if out else Path(model_dir) / "report.html"
    return save_report(target, title or f"Lepton evaluation: {info['model']}", metrics,
                       figures, info)
