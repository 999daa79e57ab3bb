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

# -- monitoring and retraining (migration 0002) ------------------------------------------------
monitor_reports = Table(
    "monitor_reports", metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer),
    Column("created_at", Float, nullable=False),
    Column("window_start", Float),
    Column("window_end", Float),
    Column("rows", Integer, nullable=False),
    Column("drifted", Integer, nullable=False),  # how many features drifted
    Column("report", Text, nullable=False),
    Index("ix_monitor_reports_model_created_at", "model", "created_at"),
)

drift_scores = Table(
    "drift_scores", metadata,
    Column("report_id", String(32), ForeignKey("monitor_reports.id", ondelete="CASCADE"),
           primary_key=True),
    Column("feature", String(256), primary_key=True),
    Column("method", String(32), primary_key=True),
    Column("score", Float),
    Column("threshold", Float),
    Column("drifted", Integer, nullable=False),
)

prediction_sketches = Table(  # per-window folds of served inputs/outputs, written by the server
    "prediction_sketches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer),
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("sketch", Text, nullable=False),
    Index("ix_prediction_sketches_model_end", "model", "window_end"),
)

retrain_decisions = Table(  # beside alias_history: why a challenger was or was not promoted
    "retrain_decisions", metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("champion_version", Integer),
    Column("challenger_version", Integer),
    Column("created_at", Float, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("promoted", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=False),
    Index("ix_retrain_decisions_model_created_at", "model", "created_at"),
)

feedback_unknown = Table(  # feedback naming no logged prediction: counted, not kept
    "feedback_unknown", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# -- traffic experiments (migration 0003) ----------------------------------------------------
traffic_experiments = Table(  # one row per experiment; `revision` grows with every change
    "traffic_experiments", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # split, canary, shadow
    Column("state", String(16), nullable=False),  # running, paused, aborted, rolled_back, promoted
    Column("revision", Integer, nullable=False),
    Column("spec", Text, nullable=False),  # arms, weights, shadow, canary settings and step
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=False),
    Index("ix_traffic_experiments_model_created_at", "model", "created_at"),
)

traffic_decisions = Table(  # what the canary decided, and on which evidence
    "traffic_decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", String(32),
           ForeignKey("traffic_experiments.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("action", String(16), nullable=False),  # hold, advance, rollback, promote
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Index("ix_traffic_decisions_experiment_at", "experiment_id", "at"),
)

traffic_assignments = Table(  # which experiment arm answered a logged prediction
    "traffic_assignments", metadata,
    Column("prediction_id", String(128), primary_key=True),
    Column("experiment", String(128), nullable=False),
    Column("arm", String(128), nullable=False),
    Column("bucket", Integer, nullable=False),
)
