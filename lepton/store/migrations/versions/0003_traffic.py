"""Traffic experiments (A/B, canary, shadow), their decisions, and each routed prediction's
assignment.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_experiments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_traffic_experiments_model_created_at", "traffic_experiments",
                    ["model", "created_at"])
    op.create_table(
        "traffic_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.String(32),
                  sa.ForeignKey("traffic_experiments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
    )
    op.create_index("ix_traffic_decisions_experiment_at", "traffic_decisions",
                    ["experiment_id", "at"])
    op.create_table(
        "traffic_assignments",
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("arm", sa.String(128), nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("traffic_assignments", "traffic_decisions", "traffic_experiments"):
        op.drop_table(table)
