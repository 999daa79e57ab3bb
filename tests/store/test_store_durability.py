"""kill -9 at random points while writing: nothing acknowledged is lost, nothing is written
twice, and the database stays sound (RELIABILITY item 14), on both backends."""

from __future__ import annotations

import random
import signal
import time

from lepton.store import Store

KILLS = 6
BATCHES = 40  # per writer life: 40 x (16 predictions + 1 feedback)


def _read_acks(proc, rng) -> list[str]:
    """Let ``proc`` acknowledge some writes, kill -9 it at a random moment, return its acks."""
    text = ""
    for _ in range(rng.randint(1, 2 * BATCHES)):
        line = proc.stdout.readline()
        if not line:
            break
        text += line
    time.sleep(rng.random() * 0.02)  # land the kill anywhere, often inside a transaction
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    # Every complete line was printed after a commit returned; a cut-off last one was not.
    return (text + rest).split("\n")[:-1]


def test_kill_9_loses_nothing_acknowledged_and_duplicates_nothing(workspace, start_worker):
    rng = random.Random(14)
    acked_predictions: set[str] = set()
    acked_feedback: set[str] = set()
    for k in range(KILLS):
        # Two writers at once, one killed: the survivor and the restarted writer must not
        # be blocked by a lock the dead one held.
        survivor = start_worker("kill_target", f"s{k}", 5)
        victim = start_worker("kill_target", "victim", BATCHES)  # replays the same ids
        for line in _read_acks(victim, rng):
            kind, _, rest = line.partition(" ")
            if kind == "P":
                acked_predictions.update(rest.split())
            elif kind == "F":
                acked_feedback.add(rest)
        out, err = survivor.communicate(timeout=120)
        assert survivor.returncode == 0 and out.endswith("done\n"), err[-2000:]
    # A clean run replays everything once more: idempotency must absorb it.
    final = start_worker("kill_target", "victim", BATCHES)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-2000:]

    with Store.open() as store:
        assert store.integrity_check() == "ok"
        logged = {p["id"] for p in store.list_predictions("m", limit=None)}
        assert acked_predictions, "the writer acknowledged nothing before its kills"
        assert acked_predictions <= logged
        victim_ids = {f"victim-{b}-{j}" for b in range(BATCHES) for j in range(16)}
        survivor_ids = {f"s{k}-{b}-{j}" for k in range(KILLS) for b in range(5)
                        for j in range(16)}
        assert logged == victim_ids | survivor_ids
        assert store.count_predictions() == len(victim_ids) + len(survivor_ids)
        feedback = store.list_feedback("m")
        keys = [f["key"] for f in feedback]
        assert len(keys) == len(set(keys)) == BATCHES + 5 * KILLS  # none twice
        assert acked_feedback <= set(keys)
        assert all(f["label"] == "fraud" for f in feedback)
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
