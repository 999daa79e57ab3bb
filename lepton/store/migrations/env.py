"""Alembic environment for the Lepton store.

Lepton runs migrations itself (``Store.open`` calls ``upgrade``) and hands Alembic an open
connection in ``config.attributes["connection"]``. From the command line
(``alembic -c lepton/store/alembic.ini upgrade head``) the URL comes from ``LEPTON_DB_URL``
or the workspace default.
"""

from __future__ import annotations

from alembic import context

from lepton.store._schema import metadata


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    from lepton.store._engine import create_store_engine
    from lepton.store._store import default_url

    with create_store_engine(default_url()).begin() as opened:
        run(opened)
