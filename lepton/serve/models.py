"""The model table: what the server serves, how each model loads and warms up, and lookup.

A ``ModelSource`` says how to get one model version (a loader returning a runtime). Loading
warms each runtime at the largest batch, builds its batchers (the tensor batcher, and a record
batcher when the artifact saved its preprocessing) and encodes its metadata once. Afterwards
the table is only read: ``lookup`` is two dict lookups on the hot path, and answers 503 while
loading and 404 for a name or version not served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lepton.artifact.runtimes import Runtime, open_runtime  # the manifest picks the runtime
from lepton.serve.batcher import Batcher
from lepton.serve.errors import HTTPError, loading
from lepton.serve.options import ServeOptions, check_name
from lepton.serve.resources import LoadMeter, ModelUsage

BatchObserver = Callable[[int, float], None]
VERSION_HEADER = b"lepton-model-version"  # on every answer: which version gave it


@dataclass
class Served:
    """One loaded model version and its batchers."""

    runner: Runtime
    batcher: Batcher
    records: Batcher | None = None
    meta: bytes = b""
    registry_version: int | None = None
    labels: tuple[str, str] = ("", "")  # (model, version) for the metrics, made once
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # the version header
    usage: ModelUsage = field(default_factory=ModelUsage)  # resources, for metrics and cost


@dataclass
class ModelSource:
    """How to load one model: a name, an optional version and a loader returning a runtime."""

    name: str
    load: Callable[[], Runtime]
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("model name", self.name)
        if self.version is not None:
            check_name("model version", self.version)

    @classmethod
    def from_artifact(cls, path: str | Path, name: str, version: str | None = None,
                      registry_version: int | None = None) -> ModelSource:
        """A source that loads a Lepton artifact directory when the server starts."""
        def load() -> Runtime:
            return open_runtime(path, name=name, version=version)

        return cls(name, load, version=version, extra={"registry_version": registry_version,
                                                       "artifact": path})

    def open(self, options: ServeOptions) -> Runtime:
        """The runtime; an artifact's gets the server's runtime override and threads."""
        path = self.extra.get("artifact")
        if path is None:
            return self.load()
        return open_runtime(path, name=self.name, version=self.version,
                            runtime=options.runtime, threads=options.threads)


class ModelTable:
    """The served models by name and version; filled by ``load``, then only read."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.models: dict[str, dict[str | None, Served]] = {}
        self.defaults: dict[str, Served] = {}
        self.ready = False  # set by the app once everything it needs is loaded
        self.load_error: str | None = None

    def load(self, sources: list[ModelSource], executor: Executor,
             observer: Callable[[str, str], BatchObserver]) -> None:
        """Load and warm every source (the first version of a name is its default)."""
        executor.submit(set_threads, self.options.threads).result()
        for source in sources:
            with LoadMeter() as meter:  # the memory this model's load and warm-up added
                runner = source.open(self.options)
                runner.warmup(self.options.max_batch_size)
            self._add(source, runner, executor, observer(source.name, runner.version or ""),
                      meter.fill(ModelUsage()))
        for name, versions in self.models.items():
            for served in versions.values():
                served.meta = orjson.dumps(self._metadata(name, served.runner))

    def _add(self, source: ModelSource, runner: Runtime, executor: Executor,
             observe: BatchObserver, usage: ModelUsage | None = None) -> None:
        opts = self.options
        usage = usage or ModelUsage()
        on_batch = usage.observer(observe)

        def batcher(fn: Callable[[Any], Any], size_of: Callable[[Any], int]) -> Batcher:
            return Batcher(usage.timed(fn), max_batch_size=opts.max_batch_size,
                           max_latency_ms=opts.max_latency_ms, max_queue=opts.max_queue,
                           timeout_s=opts.timeout_s, size_of=size_of, on_batch=on_batch,
                           executor=executor)

        served = Served(runner, batcher(runner.run, _rows),
                        registry_version=source.extra.get("registry_version"),
                        labels=(source.name, runner.version or ""),
                        headers=[(VERSION_HEADER, runner.version.encode())]
                        if runner.version else [], usage=usage)
        predictor = _predictor(runner)
        if predictor is not None:
            served.records = batcher(_records_fn(predictor), len)
        self.models.setdefault(source.name, {})[source.version] = served
        self.defaults.setdefault(source.name, served)

    def _metadata(self, name: str, runner: Runtime) -> dict[str, Any]:
        versions = [v for v in self.models.get(name, {}) if v is not None]
        return {"name": name, "versions": versions, "platform": runner.platform,
                "inputs": [s.as_json() for s in runner.inputs],
                "outputs": [s.as_json() for s in runner.outputs or []]}

    def lookup(self, name: str, version: str | None) -> Served:
        """The served model version, or the HTTP error that says why there is none."""
        versions = self.models.get(name)
        served = None
        if versions is not None:
            served = self.defaults[name] if version is None else versions.get(version)
        if served is None:
            if not self.ready and self.load_error is None:
                raise loading()
            what = f"model '{name[:128]}'" + (f" version '{version[:64]}'" if version else "")
            raise HTTPError(404, f"Unknown {what}", expected=sorted(self.models),
                            fix="GET /v1/models lists the served models")
        if not self.ready:
            raise loading()
        return served

    def batchers(self) -> Iterator[tuple[str, str, Batcher]]:
        """(model, version label, batcher) for metrics and shutdown."""
        for name, versions in list(self.models.items()):
            for served in versions.values():
                yield name, served.labels[1], served.batcher
                if served.records is not None:
                    yield name, served.labels[1], served.records


def _rows(item: dict) -> int:
    return int(next(iter(item.values())).shape[0])


def set_threads(threads: int) -> None:
    """Torch threads for the model thread: one per worker by default, since two threads
    collapse when another process holds a core. Imported here, so torch loads off the
    event loop and liveness answers meanwhile."""
    from lepton.core.device import set_threads as set_torch_threads

    set_torch_threads(threads, interop=1)


def _predictor(runner: Runtime) -> Any:
    """The artifact's Predictor, for artifacts that saved their preprocessing."""
    if runner.path is None or not runner.metadata.get("preprocessing"):
        return None
    from lepton.artifact.predictor import Predictor  # pandas: a base dependency, always there

    return Predictor(runner.module, runner.metadata, runner.path)


def _records_fn(predictor: Any) -> Callable[[list[list[Any]]], list[Any]]:
    """Batch function over lists of raw records, through the artifact's own Predictor."""

    def run(items: list[list[Any]]) -> list[Any]:
        flat = [r for item in items for r in item]
        results = list(predictor.predict_records(flat))
        out, start = [], 0
        for item in items:
            out.append(results[start:start + len(item)])
            start += len(item)
        return out

    return run
