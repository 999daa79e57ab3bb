"""The Lepton store: one database for runs, metrics, the model registry, the prediction log
and feedback. SQLite (WAL, ``synchronous=FULL``) in the workspace by default; PostgreSQL when
``LEPTON_DB_URL`` names one.

    from lepton.store import Store
    store = Store.open()
    store.log_predictions([{"id": "p1", "model": "fraud", "outputs": [0.93]}])
    store.add_feedback("p1", label=1)
"""

from lepton.store._paths import NAME_PATTERN, safe_join, validate_name, workspace_dir
from lepton.store._store import Store, default_url

__all__ = ["NAME_PATTERN", "Store", "default_url", "safe_join", "validate_name", "workspace_dir"]
