"""The prediction log: every answered record is written to the store, off the hot path.

``add`` encodes a request's rows at once (id, model, version, time, latency, outputs, a 128-bit
XXH3 digest of the input and, when asked, the input itself) into a JSON fragment, so the buffer
holds bytes rather than the request's arrays. A background thread joins the fragments and hands
them to ``store.log_prediction_json`` as one array, at most every ``interval_s`` seconds. The
buffer is bounded: when the store cannot keep up, the oldest entries are dropped and counted
rather than growing memory or slowing requests.

Why this shape: that thread shares the GIL with the event loop, and at saturation each
microsecond it holds the GIL is one the server does not answer requests. Turning thousands of
buffered requests into rows there (and keeping their arrays alive until then) cost ~10 % of
the server's throughput; one orjson call per request on the event loop costs ~2 µs, and the
flush is then one ``bytes.join`` and one SQL statement that runs without the GIL.

What is kept, for monitoring and privacy: by default the outputs and a digest of each input,
never the input itself. ``sample_inputs`` (``--log-inputs RATE``) keeps the inputs of that
share of requests (retraining on feedback needs them); ``redact`` (``--redact COL[:drop],...``)
hashes (HMAC-SHA256, keyed by ``$LEPTON_LOG_KEY`` when set) or drops those input columns or
tensors before anything is written; with ``$LEPTON_LOG_KEY`` set, kept inputs are encrypted
(AES-GCM, ``lepton.store._crypt``). With ``sketches`` (``lepton.serve.sketches``), the writer
thread also folds every request's inputs into per-window sketches, whatever was sampled.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xxhash

from lepton.store._json import dumpb

log = logging.getLogger("lepton.serve")

Rows = dict[str, np.ndarray] | list[Any]


def parse_redact(spec: Any) -> dict[str, str]:
    """``"email,ssn:drop"`` (or a list of such items) -> ``{"email": "hash", "ssn": "drop"}``."""
    from lepton.errors import ConfigError

    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    out = {}
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name, _, mode = item.partition(":")
        if not name or (mode or "hash") not in ("hash", "drop"):
            raise ConfigError("Invalid --redact item", expected="COL or COL:hash or COL:drop",
                              received=repr(item)[:80], fix="e.g. --redact email,ssn:drop")
        out[name] = mode or "hash"
    return out


class Redactor:
    """Hashes or drops named keys of a row (a record dict, or a dict of tensors by name)."""

    def __init__(self, rules: dict[str, str], key: bytes | None) -> None:
        self.rules = rules
        self.key = key or b"lepton-redact"

    def hash(self, value: Any) -> str:
        return "hmac:" + hmac.new(self.key, dumpb(value), hashlib.sha256).hexdigest()[:32]

    def __call__(self, row: Any) -> Any:
        if not isinstance(row, dict):
            return row
        out = {}
        for name, value in row.items():
            mode = self.rules.get(name)
            if mode is None:
                out[name] = value
            elif mode == "hash":
                out[name] = self.hash(value)
        return out


class PredictionLog:
    """Buffers encoded prediction rows and flushes them to ``store`` from one thread."""

    def __init__(self, store: Any, *, interval_s: float = 0.5, max_pending: int = 100_000,
                 sample_inputs: float = 0.0, redact: Any = None, sketches: Any = None,
                 encrypt: Callable[[Any, str], str] | None = None,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.interval_s = interval_s
        self.sample_inputs = float(sample_inputs)  # True (every request) reads as 1.0
        rules = parse_redact(redact)
        self.redact = Redactor(rules, _redact_key()) if rules else None
        self.encrypt = encrypt
        self.sketches = sketches
        self.on_drop = on_drop
        self._pending: collections.deque[bytes] = collections.deque()
        self._raw: collections.deque[tuple[str, int | None, Any]] = collections.deque()
        self._errors: dict[tuple[str, int | None], int] = {}
        # (ids, (experiment, arm, bucket)) of requests a traffic experiment routed
        self._assigned: collections.deque[tuple[list[str], tuple[str, str, int]]] = \
            collections.deque()
        self._max_pending = max_pending
        self._lock = threading.Lock()  # one flush at a time (background or on demand)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lepton-predlog", daemon=True)
        self._thread.start()

    def add(self, ids: list[str], model: str, version: int | None, inputs: Rows, outputs: Rows,
            latency_ms: float, assignment: tuple[str, str, int] | None = None) -> None:
        """Record one request's predictions (one id per row); cheap, never blocks or raises.

        ``inputs`` and ``outputs`` are either dicts of arrays (row i is ``array[i]``) or lists
        of JSON-able records (row i is ``list[i]``).
        """
        if not ids:
            return
        try:
            now, rate = time.time(), self.sample_inputs
            sample = rate >= 1.0 or (rate > 0.0 and random.random() < rate)
            fragment = dumpb([(pid, model, version, now, latency_ms, _row(outputs, i),
                               _digest(inputs, i),
                               self._sample(model, pid, _row(inputs, i)) if sample else None)
                              for i, pid in enumerate(ids)])[1:-1]  # rows without brackets
        except Exception:  # noqa: BLE001 - the log must never fail a request
            log.exception("could not log the predictions %s", ids[:3])
            return
        self._pending.append(fragment)
        if assignment is not None:
            self._assigned.append((ids, assignment))
        if self.sketches is not None:
            self._raw.append((model, version, inputs))  # folded by the writer thread
        if len(self._pending) > self._max_pending:
            self._pending.popleft()
            if self._raw:
                self._raw.popleft()
            if self.on_drop is not None:
                self.on_drop(1)

    def _sample(self, model: str, pid: str, row: Any) -> Any:
        """A kept input as written: redacted, then encrypted (bound to its model and id)."""
        if self.redact is not None:
            row = self.redact(row)
        if self.encrypt is not None:
            return self.encrypt(row, f"{model}/{pid}")
        return row

    def error(self, model: str, version: int | None) -> None:
        """Count a failed request (for the sketches' error rate); cheap."""
        if self.sketches is not None:
            key = (model, version)
            self._errors[key] = self._errors.get(key, 0) + 1

    def flush(self, final: bool = False) -> int:
        """Write everything buffered so far; returns the number of rows written."""
        with self._lock:
            if self.sketches is not None:
                self._fold_sketches(final)
            popleft = self._pending.popleft
            fragments = [popleft() for _ in range(len(self._pending))]
            take = self._assigned.popleft
            assigned = [take() for _ in range(len(self._assigned))]
            if not fragments:
                return 0
            try:
                written = self.store.log_prediction_json(b"[" + b",".join(fragments) + b"]")
                if assigned:  # after their predictions: an assignment names a logged row
                    from lepton.store._traffic import log_assignments

                    log_assignments(self.store, [(pid, *a) for ids, a in assigned
                                                 for pid in ids])
            except Exception:  # noqa: BLE001 - the log must not take the server down
                log.exception("could not write the predictions of %d requests to the store",
                              len(fragments))
                return 0
            return written

    def _fold_sketches(self, final: bool) -> None:
        popleft = self._raw.popleft
        entries = [popleft() for _ in range(len(self._raw))]
        errors, self._errors = self._errors, {}
        try:
            if entries or errors:
                self.sketches.fold(entries, errors)
            self.sketches.flush(force=final)
        except Exception:  # noqa: BLE001 - sketches must not stop the log
            log.exception("could not sketch the traffic")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (the open sketch windows too)."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush(final=True)


def _redact_key() -> bytes | None:
    """The HMAC key of hashed columns: ``$LEPTON_LOG_KEY`` when set (checked there)."""
    import os

    if not os.environ.get("LEPTON_LOG_KEY"):
        return None
    from lepton.store._crypt import _key

    return _key(required=True)


def _row(rows: Rows, i: int) -> Any:
    """Row i of a request: ``{name: array[i]}`` for arrays, else ``list[i]``."""
    if isinstance(rows, dict):
        return {name: array[i] for name, array in rows.items()}
    return rows[i]


def _digest(rows: Rows, i: int) -> str:
    """XXH3-128 of row i's input bytes (of its JSON for records): it recognises the same input
    without storing it, in ~0.1 µs without releasing the GIL (SHA-256 took 2 µs and released
    it). Not a security hash."""
    if not isinstance(rows, dict):
        return xxhash.xxh3_128_hexdigest(dumpb(rows[i]))
    if len(rows) == 1:
        return xxhash.xxh3_128_hexdigest(  # an ndarray is a buffer; numpy's stubs don't say so
            np.ascontiguousarray(next(iter(rows.values()))[i]))  # type: ignore[arg-type]
    digest = xxhash.xxh3_128()
    for name in sorted(rows):
        digest.update(np.ascontiguousarray(rows[name][i]))  # type: ignore[arg-type]
    return digest.hexdigest()
