"""Many writer processes at once, on both backends (RELIABILITY items 14 and 17)."""

from __future__ import annotations

import itertools
import json
from collections import Counter

from sqlalchemy import func, select

from lepton.store import _schema as s

WRITERS = 8
WRITES = 300  # transactions per writer: 2,400 in all, about 6,000 rows


def _finish(procs, timeout=180):
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        assert "locked" not in err.lower()
        outs.append(out)
    return outs


def test_eight_writers_no_locked_errors_nothing_lost(store, start_worker, tmp_path):
    go = tmp_path / "go"
    procs = [start_worker("mixed", f"w{i}", WRITES, go) for i in range(WRITERS)]
    go.touch()
    totals = Counter()
    for out in _finish(procs):
        totals.update(json.loads(out))
    assert totals["predictions"] > WRITERS * WRITES  # batches of 1-8 rows
    assert store.count_predictions() == totals["predictions"]
    assert store.count_feedback() == totals["feedback"]
    runs = store.list_runs()
    assert len(runs) == WRITERS and {r["status"] for r in runs} == {"finished"}
    metric_rows = store.read(lambda c: c.execute(select(func.count()).select_from(s.metrics))
                             .scalar_one())
    assert metric_rows == totals["metrics"]
    assert store.integrity_check() == "ok"


def test_concurrent_registration_of_one_version_one_wins(registry, artifact, start_worker,
                                                         tmp_path):
    for version in range(1, 4):
        go = tmp_path / f"go{version}"
        procs = [start_worker("register", "m", version, artifact, go) for _ in range(2)]
        go.touch()
        outs = sorted(o.strip() for o in _finish(procs))
        assert outs[0].startswith("conflict") and f"version {version}" in outs[0], outs
        assert outs[1].startswith(f"won {version} "), outs
    versions = registry.list_versions("m")
    assert [v["version"] for v in versions] == [1, 2, 3]
    on_disk = sorted(p.name.split("-")[0] for p in (registry.root / "m").iterdir())
    assert on_disk == ["1", "2", "3"]  # the losers' copies are gone


def test_promotion_is_atomic_exactly_one_production(registry, make_artifact, start_worker,
                                                    tmp_path):
    versions = 4
    for i in range(versions):
        registry.register(make_artifact(str(i), seed=i), "m")
    registry.promote("m", 1, "production")
    go, stop = tmp_path / "go", tmp_path / "stop"
    watcher = start_worker("watch", "m", stop)
    procs = [start_worker("promote", "m", f"p{i}", 40, versions, go) for i in range(4)]
    go.touch()
    _finish(procs)
    stop.touch()
    (seen,) = _finish([watcher])
    assert int(seen.split()[1]) > 0  # the watcher always found exactly one production version
    production_rows = registry.store.read(lambda c: c.execute(
        select(func.count()).select_from(s.model_aliases)
        .where(s.model_aliases.c.alias == "production")).scalar_one())
    assert production_rows == 1
    # The history is one unbroken chain: every move starts where the previous one ended,
    # so no promotion was lost or interleaved with another.
    history = [e for e in registry.history("m", "production") if e["changed"]]
    assert history[0]["from_version"] is None
    for before, after in itertools.pairwise(history):
        assert after["from_version"] == before["to_version"]
        assert after["from_version"] != after["to_version"]
    assert registry.aliases("m")["production"] == history[-1]["to_version"]
