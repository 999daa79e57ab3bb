"""Traffic splitting inside the server: an experiment on a model routes between its versions
(A/B/n by weight, a stepped canary, a shadow), with no mesh and no restart.

The experiment lives in the store (``lepton traffic set``, or ``lepton serve ... --split``).
A background thread (``Traffic.poll``, every 0.25 s) reads the newest experiment of each
served model and, when its revision moved, builds a new immutable ``Router`` and swaps the
routing table in one assignment: a request sees the old table or the new one, never half of
each, and nothing waits or fails during the swap.

Assignment is sticky and deterministic: XXH3-64 of the experiment's name and a unit id (the
``x-lepton-unit`` header, else ``x-request-id``, else a per-request counter) modulo 10,000
buckets; arm *i* owns the buckets between the cumulative weights before and after it. The same
unit lands on the same arm for as long as the weights stay, and moving 5 % to 25 % only moves
the units in the buckets that changed hands. An arm names a served version (``3``) or an alias
of the model (``candidate``), resolved once per revision, off the request path.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from lepton.errors import ConfigError
from lepton.serve.options import check_name

log = logging.getLogger("lepton.serve")
BUCKETS = 10_000
POLL_S = 0.25
UNIT_HEADER = b"x-lepton-unit"
REQUEST_ID_HEADER = b"x-request-id"
ARM_HEADER = b"lepton-traffic-arm"
_LATENCIES = 4096  # per arm, for the canary's p99


def parse_split(text: str | dict[str, Any]) -> dict[str, float]:
    """``"production=90,candidate=10"`` -> ``{"production": 90.0, "candidate": 10.0}``;
    names checked, weights finite, >= 0, summing to 100."""
    items = text.items() if isinstance(text, dict) else (
        part.partition("=")[::2] for part in str(text).split(",") if part.strip())
    weights: dict[str, float] = {}
    for arm, raw in items:
        arm = str(arm).strip()
        check_name("traffic arm (a version or an alias)", arm)
        try:
            weight = float(raw)
        except (TypeError, ValueError):
            weight = math.nan
        if not math.isfinite(weight) or weight < 0 or arm in weights:
            raise ConfigError("Invalid traffic split", expected="ARM=PERCENT,... once per arm",
                              received=f"{arm}={raw}", fix="e.g. --split production=90,"
                                                           "candidate=10")
        weights[arm] = weight
    total = sum(weights.values())
    if len(weights) < 1 or abs(total - 100.0) > 1e-6:
        raise ConfigError("Traffic weights must sum to 100", expected="100",
                          received=f"{total:g} ({text})", fix="e.g. production=90,candidate=10")
    return weights


def bucket_of(key: bytes, unit: bytes) -> int:
    return xxhash.xxh3_64_intdigest(key + unit) % BUCKETS


@dataclass
class ArmStats:
    """Requests, errors and recent latencies of one arm since its router was built; written
    on the event loop, read by the poll thread."""

    requests: int = 0
    errors: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=_LATENCIES))

    def summary(self) -> dict[str, Any]:
        import numpy as np

        samples = list(self.latencies)
        p99 = float(np.percentile(samples, 99)) * 1000.0 if samples else None
        return {"requests": self.requests, "errors": self.errors,
                "error_rate": self.errors / self.requests if self.requests else None,
                "p99_ms": p99}


@dataclass
class Arm:
    name: str
    served: Any
    weight: float
    headers: list[tuple[bytes, bytes]]
    stats: ArmStats = field(default_factory=ArmStats)


class Router:
    """One experiment's routing for one model at one revision; immutable once built."""

    def __init__(self, exp: dict[str, Any], arms: list[Arm], *, shadow: Any = None,
                 reference: Any = None, reference_for: int | None = None) -> None:
        self.exp = exp
        self.experiment = exp["name"]
        self.key = exp["name"].encode() + b"\x00"
        self.arms = arms
        total, bounds = 0.0, []
        for arm in arms:
            total += arm.weight
            bounds.append(round(total * BUCKETS / 100.0))
        bounds[-1] = BUCKETS
        self.bounds = bounds
        self.shadow = shadow  # a Mirror every request is copied to
        self.reference = reference  # the champion's Mirror, for answers of arm reference_for
        self.reference_for = reference_for
        self._counter = itertools.count()

    def pick(self, unit: bytes | None) -> tuple[int, int]:
        """(arm index, bucket) for a request of ``unit`` (None: a fresh request id)."""
        if unit is None:
            unit = b"#%d" % next(self._counter)
        bucket = xxhash.xxh3_64_intdigest(self.key + unit) % BUCKETS
        return bisect.bisect_right(self.bounds, bucket), bucket

    def mirror(self, index: int, records: bool, item: Any, outputs: Any) -> None:
        """Copy an answered request to the shadow (and to the champion for the canary's
        agreement); a queue put, never a wait."""
        if self.shadow is not None:
            self.shadow.offer(records, item, outputs)
        if self.reference is not None and index == self.reference_for:
            self.reference.offer(records, item, outputs)


def routing_weights(exp: dict[str, Any]) -> dict[str, float]:
    """What the experiment's state means for the weights: ended ones send everything to the
    champion, except a promoted canary, which keeps everything."""
    spec = exp["spec"]
    if exp["state"] in ("aborted", "rolled_back"):
        return {arm: (100.0 if arm == spec["champion"] else 0.0) for arm in spec["arms"]}
    return {arm: float(w) for arm, w in spec["arms"].items()}


class Traffic:
    """The app's routing table by model name, and the thread-side work that keeps it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.routes: dict[str, Router] = {}  # replaced whole, never mutated
        self.errors: dict[str, str] = {}
        self._keys: dict[str, Any] = {}
        self._mirrors: dict[tuple[str, str, str], Any] = {}

    # -- building routers (poll thread) ------------------------------------------------------
    def poll(self) -> None:
        """Read the newest experiment of every served model; rebuild what moved; let the
        canary decide."""
        app = self.app
        if app.store is None or not app.table.models or app.table.load_error:
            return
        from lepton.store import _traffic

        names = list(app.table.models)
        found = _traffic.latest(app.store, names)
        for name in names:
            exp = found.get(name)
            if self._key(name, exp) != self._keys.get(name):
                self.install(name, exp)
        from lepton.serve import canary

        for name, router in list(self.routes.items()):
            if router.exp["kind"] == "canary" and router.exp["state"] == "running":
                canary.tick(self, name, router)

    def _key(self, name: str, exp: dict[str, Any] | None) -> Any:
        return None if exp is None else (exp["id"], exp["revision"],
                                         id(self.app.table.models.get(name)))

    def install(self, name: str, exp: dict[str, Any] | None) -> None:
        """Route ``name`` by ``exp`` (None: no experiment) from the next request on."""
        self._keys[name] = self._key(name, exp)
        router = None if exp is None else self._build(name, exp)
        routes = dict(self.routes)
        if router is None:
            routes.pop(name, None)
        else:
            routes[name] = router
        self.routes = routes  # one assignment: the hot path sees the old table or the new
        self._close_unused()

    def _build(self, name: str, exp: dict[str, Any]) -> Router | None:
        spec = exp["spec"]
        try:
            weights = routing_weights(exp)
            arms = [Arm(arm, self.resolve(name, arm), weight,
                        [(ARM_HEADER, f"{exp['name']}/{arm}".encode())])
                    for arm, weight in weights.items()]
            shadow = reference = reference_for = None
            if spec.get("shadow") and exp["state"] in ("running", "paused"):
                shadow = self._mirror(exp, name, spec["shadow"])
            if exp["kind"] == "canary" and exp["state"] in ("running", "paused"):
                reference = self._mirror(exp, name, spec["champion"])
                reference_for = list(weights).index(spec["canary"]["arm"])
        except ConfigError as exc:
            self.errors[name] = str(exc)
            log.error("lepton serve: traffic experiment '%s' on %s not applied: %s",
                      exp["name"], name, exc)
            return None
        self.errors.pop(name, None)
        log.info("lepton serve: %s routes %s (%s, revision %d, %s)", name,
                 ", ".join(f"{a.name}={a.weight:g}" for a in arms), exp["name"],
                 exp["revision"], exp["state"])
        return Router(exp, arms, shadow=shadow, reference=reference,
                      reference_for=reference_for)

    def resolve(self, name: str, arm: str) -> Any:
        """The served version an arm names: a served version label, a served alias, or an
        alias the registry resolves to a served version."""
        versions = self.app.table.models.get(name, {})
        if arm in versions:
            return versions[arm]
        for source in self.app.sources:
            if source.name == name and source.extra.get("alias") == f"{name}@{arm}" \
                    and source.version in versions:
                return versions[source.version]
        try:
            from lepton.registry import Registry

            version = str(Registry(self.app.store).resolve(f"{name}@{arm}")["version"])
        except Exception:  # noqa: BLE001 - said below, in one line
            version = None
        if version is not None and version in versions:
            return versions[version]
        raise ConfigError(f"Traffic arm '{arm}' of model '{name}' is not served here",
                          expected=sorted(str(v) for v in versions if v is not None),
                          received=arm, fix=f"serve {name}@{arm} too, or name a served version")

    def _mirror(self, exp: dict[str, Any], name: str, arm: str) -> Any:
        """The experiment's mirror to ``arm``: kept across its revisions (the canary's
        agreement is counted since it started), new for a new experiment."""
        from lepton.serve.shadow import Mirror

        served = self.resolve(name, arm)
        key = (exp["id"], name, served.labels[1])
        mirror = self._mirrors.get(key)
        if mirror is None or mirror.served is not served:
            mirror = self._mirrors[key] = Mirror(name, arm, served,
                                                 self.app.metrics.shadow_observer(
                                                     name, served.labels[1]))
        return mirror

    def _close_unused(self) -> None:
        used = {id(m) for r in self.routes.values() for m in (r.shadow, r.reference) if m}
        for key, mirror in list(self._mirrors.items()):
            if id(mirror) not in used:
                mirror.close()
                del self._mirrors[key]

    def close(self) -> None:
        for mirror in self._mirrors.values():
            mirror.close()
        self._mirrors.clear()

    # -- reporting ---------------------------------------------------------------------------
    def describe(self) -> bytes:
        """``GET /v1/traffic``: each routed model's experiment, arms and live figures."""
        doc: dict[str, Any] = {}
        for name, router in self.routes.items():
            exp = router.exp
            doc[name] = {
                "experiment": exp["name"], "kind": exp["kind"], "state": exp["state"],
                "revision": exp["revision"],
                "arms": [{"arm": a.name, "version": a.served.labels[1], "weight": a.weight,
                          **a.stats.summary()} for a in router.arms],
                "shadow": router.shadow.summary() if router.shadow else None,
                "agreement": router.reference.summary() if router.reference else None}
        for name, error in self.errors.items():
            doc.setdefault(name, {})["error"] = error
        return orjson.dumps(doc)
