"""The store's tables, as SQLAlchemy Core metadata (the migrations create exactly these).

Times are seconds since the epoch (float): portable between SQLite and PostgreSQL and cheap
to write at prediction-log rates. JSON values are stored as text we serialise ourselves.
Alias history keeps model *names* and version *numbers*, not foreign keys, so the answer to
"which version was in production when?" survives deleting versions and models.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("cost_usd", Float),
    Column("created_by", String(128), nullable=False),
)

metrics = Table(
    "metrics", metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("value", Float),  # NULL is NaN: SQLite cannot store NaN
    Column("logged_at", Float, nullable=False),
)

registered_models = Table(
    "registered_models", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("registered_models.id", ondelete="CASCADE"),
           nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("metadata", Text, nullable=False),
    Column("run_id", String(32)),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
)

model_aliases = Table(
    "model_aliases", metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id", ondelete="CASCADE"),
           primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

alias_history = Table(
    "alias_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_alias_history_model_alias_at", "model_name", "alias", "at"),
)

predictions = Table(
    "predictions", metadata,
    Column("id", String(128), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer),
    Column("created_at", Float, nullable=False),
    Column("latency_ms", Float),
    Column("outputs", Text, nullable=False),
    Column("input_digest", String(128)),
    Column("input_sample", Text),
    Index("ix_predictions_model_created_at", "model", "created_at"),
)

feedback = Table(
    "feedback", metadata,
    Column("id", String(32), primary_key=True),
    Column("key", String(256), nullable=False, unique=True),
    Column("prediction_id", String(128), ForeignKey("predictions.id"), nullable=False),
    Column("label", Text),
    Column("rating", Float),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_prediction_id", "prediction_id"),
)
