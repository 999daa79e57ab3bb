"""The first schema: runs, metrics, registry with alias history, prediction log, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("logged_at", sa.Float, nullable=False),
    )
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer,
                  sa.ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(32)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.Integer,
                  sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_alias_history_model_alias_at", "alias_history",
                    ["model_name", "alias", "at"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("input_digest", sa.String(128)),
        sa.Column("input_sample", sa.Text),
    )
    op.create_index("ix_predictions_model_created_at", "predictions", ["model", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(256), nullable=False, unique=True),
        sa.Column("prediction_id", sa.String(128), sa.ForeignKey("predictions.id"),
                  nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("rating", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])


def downgrade() -> None:
    for table in ("feedback", "predictions", "alias_history", "model_aliases",
                  "model_versions", "registered_models", "metrics", "runs"):
        op.drop_table(table)
