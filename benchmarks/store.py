"""Store throughput: the prediction log and feedback, Lepton against a plain insert loop.

    python benchmarks/store.py            # SQLite and a throwaway local PostgreSQL
    python benchmarks/store.py --quick    # fewer rows (CI smoke run)

For each backend it measures, side by side in one run and at the same durability (SQLite in
WAL with synchronous=FULL; PostgreSQL with its default synchronous_commit=on):

* prediction log, sustained: ``Store.log_prediction_json`` in batches as ``lepton serve``
  writes them (rows encoded when each request is answered, as the server does, and joined
  per batch; ids "<process prefix>-<fixed-width counter>", 10-class outputs, a digest of the
  input), against
  the baseline a service without a batcher would do: one INSERT + COMMIT per prediction,
  straight on the driver (sqlite3 / psycopg);
* feedback: ``Store.add_feedback`` one record at a time (each durable, checked against the
  prediction log, idempotent), against one plain INSERT + COMMIT per record.

Ours and the baseline alternate in rounds and the median round is reported, so that a
noisy shared machine (fsync latency varies a lot) affects both alike. Target (issue 4):
>= 20,000 logged predictions/s on SQLite on 2 cores. Results also go to
benchmarks/out/store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton.store import Store  # noqa: E402
from lepton.store._json import dumpb  # noqa: E402
from lepton.store._local_pg import local_postgres  # noqa: E402

TARGET_SQLITE_ROWS_S = 20_000


def prediction_rows(n: int, seed: int) -> list[dict]:
    """Rows like the server's: its id scheme, a 10-class softmax, latency, input digest."""
    rng = random.Random(seed)
    prefix = secrets.token_hex(6)
    rows = []
    for i in range(n):
        probs = [rng.random() for _ in range(10)]
        total = sum(probs)
        rows.append({"id": f"{prefix}-{i:010x}", "model": "mnist", "version": 1,
                     "outputs": [p / total for p in probs], "latency_ms": rng.random() * 5,
                     "input_digest": uuid.uuid4().hex})
    return rows


class Baseline:
    """One INSERT and one COMMIT per record, on the bare driver, same durability settings."""

    DDL = ["CREATE TABLE predictions (id VARCHAR(128) PRIMARY KEY, model VARCHAR(128), "
           "version INTEGER, created_at DOUBLE PRECISION, latency_ms DOUBLE PRECISION, "
           "outputs TEXT, input_digest VARCHAR(128))",
           "CREATE TABLE feedback (id VARCHAR(32) PRIMARY KEY, key VARCHAR(256) UNIQUE, "
           "prediction_id VARCHAR(128), label TEXT, created_at DOUBLE PRECISION)"]

    def __init__(self, url: str, workdir: Path) -> None:
        if url.startswith("sqlite"):
            self.conn = sqlite3.connect(workdir / "baseline.db", isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
            self.conn.execute("CREATE SCHEMA baseline")
            self.conn.execute("SET search_path TO baseline")
            mark = "%s"
        for ddl in self.DDL:
            self.conn.execute(ddl)
        self.pred_sql = ("INSERT INTO predictions (id, model, version, created_at, latency_ms, "
                         f"outputs, input_digest) VALUES ({', '.join([mark] * 7)})")
        self.fb_sql = ("INSERT INTO feedback (id, key, prediction_id, label, created_at) "
                       f"VALUES ({', '.join([mark] * 5)})")

    def predictions(self, rows: list[dict], _batch: int) -> None:
        for r in rows:  # autocommit: one transaction, one fsync, per row
            self.conn.execute(self.pred_sql, (r["id"], r["model"], r["version"], time.time(),
                                              r["latency_ms"], json.dumps(r["outputs"]),
                                              r["input_digest"]))

    def feedback(self, ids: list[str]) -> None:
        for n, pid in enumerate(ids):
            self.conn.execute(self.fb_sql, (uuid.uuid4().hex, pid, pid, json.dumps(n % 10),
                                            time.time()))


class Ours:
    def __init__(self, url: str, workdir: Path) -> None:
        self.store = Store.open(url, workspace=workdir)

    @staticmethod
    def encode(rows: list[dict]) -> list[bytes]:
        """What the server's PredictionLog.add makes of each answered request (untimed)."""
        now = time.time()
        return [dumpb([(r["id"], r["model"], r["version"], now, r["latency_ms"], r["outputs"],
                        r["input_digest"], None)])[1:-1] for r in rows]

    def predictions(self, fragments: list[bytes], batch: int) -> None:
        for i in range(0, len(fragments), batch):
            self.store.log_prediction_json(b"[" + b",".join(fragments[i:i + batch]) + b"]")

    def feedback(self, ids: list[str]) -> None:
        for n, pid in enumerate(ids):
            self.store.add_feedback(pid, label=n % 10)


def _rate(fn, count: int) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def measure(backend: str, url: str, workdir: Path, args) -> list[dict]:
    ours, base = Ours(url, workdir), Baseline(url, workdir)
    results = []
    for batch in args.batches:
        rates: dict[str, list[float]] = {"ours": [], "base": []}
        for r in range(args.rounds):
            rows = Ours.encode(prediction_rows(args.rows // args.rounds, seed=batch * 100 + r))
            rates["ours"].append(_rate(lambda rows=rows, batch=batch:
                                       ours.predictions(rows, batch), len(rows)))
            few = prediction_rows(args.baseline_rows // args.rounds, seed=-batch * 100 - r)
            rates["base"].append(_rate(lambda few=few: base.predictions(few, 1), len(few)))
        results.append({"backend": backend, "what": f"prediction log, batch {batch}",
                        "ours": statistics.median(rates["ours"]),
                        "baseline": statistics.median(rates["base"])})
    # Feedback on predictions both sides have logged.
    logged = prediction_rows(args.feedback, seed=7)
    ours.predictions(Ours.encode(logged), 1000)
    base.predictions(logged, 1)
    ids = [r["id"] for r in logged]
    step = len(ids) // args.rounds
    rates = {"ours": [], "base": []}
    for r in range(args.rounds):
        chunk = ids[r * step:(r + 1) * step]
        rates["ours"].append(_rate(lambda chunk=chunk: ours.feedback(chunk), len(chunk)))
        rates["base"].append(_rate(lambda chunk=chunk: base.feedback(chunk), len(chunk)))
    results.append({"backend": backend, "what": "feedback, one at a time",
                    "ours": statistics.median(rates["ours"]),
                    "baseline": statistics.median(rates["base"])})
    ours.store.close()
    base.conn.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=150_000,
                        help="predictions logged by Lepton per batch size")
    parser.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")],
                        default=[64, 256, 1024], help="rows per log_prediction_json call")
    parser.add_argument("--feedback", type=int, default=1_500, help="feedback records")
    parser.add_argument("--baseline-rows", type=int, default=1_500,
                        help="rows for the one-commit-per-row baseline (it is slow)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.feedback, args.baseline_rows, args.batches = 15_000, 300, 300, [256]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sqlite").mkdir()
        results += measure("sqlite", f"sqlite:///{tmp}/sqlite/lepton.db", Path(tmp) / "sqlite",
                           args)
        if not args.no_postgres:
            with local_postgres() as url:
                (Path(tmp) / "pg").mkdir()
                results += measure("postgresql", url, Path(tmp) / "pg", args)

    print(f"store benchmark: {args.rows:,} predictions per batch size, {args.feedback:,} "
          f"feedback records, median of {args.rounds} alternating rounds; "
          f"{os.cpu_count()} CPUs")
    header = f"{'backend':<11} {'what':<26} {'lepton/s':>10} {'baseline/s':>11} {'ratio':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        r["ratio"] = r["ours"] / r["baseline"]
        print(f"{r['backend']:<11} {r['what']:<26} {r['ours']:>10,.0f} {r['baseline']:>11,.0f} "
              f"{r['ratio']:>7.1f}x")
    target_batch = 256 if 256 in args.batches else args.batches[0]
    sqlite_rate = next(r["ours"] for r in results if r["backend"] == "sqlite"
                       and r["what"] == f"prediction log, batch {target_batch}")
    verdict = "meets" if sqlite_rate >= TARGET_SQLITE_ROWS_S else "MISSES"
    print(f"SQLite prediction log at batch {target_batch}: {sqlite_rate:,.0f}/s {verdict} "
          f"the target of {TARGET_SQLITE_ROWS_S:,}/s")
    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    (out / "store.json").write_text(json.dumps(results, indent=2))
    return 0 if sqlite_rate >= TARGET_SQLITE_ROWS_S else 1


if __name__ == "__main__":
    sys.exit(main())
