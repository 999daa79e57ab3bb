"""Lepton evaluation: metrics (SPEC §3), PNG plots and the self-contained HTML report."""

from lepton.evaluate.metrics import classification_metrics, headline, regression_metrics
from lepton.evaluate.report import evaluate_outputs, render_html, save_report, write_report

__all__ = ["classification_metrics", "evaluate_outputs", "headline", "regression_metrics",
           "render_html", "save_report", "write_report"]
