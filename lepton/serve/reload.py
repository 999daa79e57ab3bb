"""Following an alias: ``lepton serve mnist@production --reload 30`` checks the registry every
30 s and, when the alias has moved (``lepton retrain`` promoted a challenger, or someone ran
``lepton models promote``), loads and warms the new version beside the old one, then points
the model's name at it in one assignment. Requests already queued on the old version finish
there; it is drained and closed in the background. Nothing restarts, no request fails.

The smallest mechanism that closes the loop: a periodic read of one alias row per model
(microseconds), no admin route to secure, and ``--reload 0`` (the default) leaves a server
pinned to the version it started with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from lepton.serve.models import ModelSource

log = logging.getLogger("lepton.serve")


def followed(app: Any) -> list[ModelSource]:
    """The sources served by alias (``name@alias``)."""
    return [s for s in app.sources if s.extra.get("alias")]


def check(app: Any) -> list[tuple[str, int]]:
    """Reload every model whose alias now names another version; returns (name, version)
    for each one swapped in."""
    from lepton.registry import Registry
    from lepton.store import Store

    if not app.table.ready:
        return []
    store = app.store if app.store is not None else Store.open()
    registry, swapped = Registry(store), []
    for source in followed(app):
        entry = registry.resolve(source.extra["alias"])
        served = app.table.defaults.get(source.name)
        if served is None or served.registry_version == int(entry["version"]):
            continue
        swap(app, source, entry)
        swapped.append((source.name, int(entry["version"])))
    return swapped


def swap(app: Any, source: ModelSource, entry: dict[str, Any]) -> None:
    """Load ``entry`` (a registry version), warm it, and make it the model's default."""
    table, name = app.table, source.name
    version = str(entry["version"])
    fresh = ModelSource.from_artifact(entry["path"], name, version, int(entry["version"]))
    fresh.extra["alias"] = source.extra["alias"]
    runner = fresh.open(app.options)
    runner.warmup(app.options.max_batch_size)
    old = table.defaults[name]
    versions = dict(table.models.get(name, {}))
    table._add(fresh, runner, app.executor, app.metrics.batch_observer(name, version))
    served = table.models[name][version]
    versions = {v: s for v, s in versions.items() if s is not old}
    versions[version] = served
    table.models[name] = versions  # one assignment each: lookups never see a half swap
    table.defaults[name] = served
    for item in versions.values():
        item.meta = orjson.dumps(table._metadata(name, item.runner))
    if app.predlog is not None and app.predlog.sketches is not None:
        app.predlog.sketches.register(name, int(entry["version"]), runner.path)
    app.sources = [fresh if s is source else s for s in app.sources]
    _retire(old, app.options.drain_s)
    log.info("lepton serve: %s now serves version %s (%s)", name, version,
             source.extra["alias"])


def _retire(served: Any, drain_s: float) -> None:
    """Drain then close the old version's batchers on the loop they run on."""
    for batcher in (served.batcher, served.records):
        loop = getattr(batcher, "_loop", None) if batcher is not None else None
        if loop is None or loop.is_closed():
            continue

        async def retire(b: Any = batcher) -> None:
            await b.drain(drain_s)
            b.close()

        asyncio.run_coroutine_threadsafe(retire(), loop)
