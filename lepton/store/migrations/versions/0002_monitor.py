"""Monitoring and retraining: drift reports and scores, served-traffic sketches, retraining
decisions, and the count of feedback for unknown predictions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_reports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("window_start", sa.Float),
        sa.Column("window_end", sa.Float),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("drifted", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_reports_model_created_at", "monitor_reports",
                    ["model", "created_at"])
    op.create_table(
        "drift_scores",
        sa.Column("report_id", sa.String(32),
                  sa.ForeignKey("monitor_reports.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("feature", sa.String(256), primary_key=True),
        sa.Column("method", sa.String(32), primary_key=True),
        sa.Column("score", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("drifted", sa.Integer, nullable=False),
    )
    op.create_table(
        "prediction_sketches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("window_end", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("sketch", sa.Text, nullable=False),
    )
    op.create_index("ix_prediction_sketches_model_end", "prediction_sketches",
                    ["model", "window_end"])
    op.create_table(
        "retrain_decisions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("champion_version", sa.Integer),
        sa.Column("challenger_version", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("promoted", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_index("ix_retrain_decisions_model_created_at", "retrain_decisions",
                    ["model", "created_at"])
    op.create_table(
        "feedback_unknown",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("feedback_unknown", "retrain_decisions", "prediction_sketches",
                  "drift_scores", "monitor_reports"):
        op.drop_table(table)
