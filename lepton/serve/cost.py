"""Cost per 1,000 predictions, per model and version, on two bases.

* **allocation**: what the replica costs while it is up, whether busy or idle: its wall time
  since the models loaded × its hourly price, shared between the models it serves by their busy
  time (equally while none has run), over each model's predictions.
* **usage**: what the predictions themselves cost: the model's busy time (its batches' wall
  time) × the same hourly price, over its predictions.

A replica's hourly price is ``--threads`` cores plus its resident memory (and one GPU when a
model allocated CUDA memory) at the price sheet's rates (``lepton.store.prices``; a machine's
hourly price, where given, is split over its cores). Allocation ≥ usage; the gap is idle time.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from typing import Any

ModelUsage = Any  # lepton.serve.resources.ModelUsage (which imports this module)


@functools.cache
def _prices() -> Any:
    from lepton.store.prices import load_prices

    return load_prices()


def replica_hourly(threads: int, rss: int, gpus: int, prices: Any | None = None) -> float:
    """The hourly price of one replica: its cores, its memory now and its GPUs."""
    return (prices or _prices()).hourly(cores=threads, memory_gb=rss / 2**30, gpus=gpus)


def per_1k(seconds: float, hourly: float, predictions: int) -> float:
    """Cost of 1,000 predictions when ``predictions`` took ``seconds`` at ``hourly``."""
    return seconds * hourly / 3600 / predictions * 1000 if predictions else 0.0


def costs(usages: list[tuple[str, str, ModelUsage]], hourly: float, now: float
          ) -> list[tuple[str, str, str, float]]:
    """(model, version, basis, cost per 1,000 predictions) for every model that predicted."""
    if not usages:
        return []
    uptime = now - min(u.loaded_at for _, _, u in usages)
    busy = sum(u.busy_s for _, _, u in usages)
    out = []
    for name, version, usage in usages:
        share = usage.busy_s / busy if busy > 0 else 1 / len(usages)
        if usage.rows:
            out.append((name, version, "allocation", per_1k(uptime * share, hourly, usage.rows)))
            out.append((name, version, "usage", per_1k(usage.busy_s, hourly, usage.rows)))
    return out


def cost_rows(threads: int, rss: int, usages: Iterable[tuple[str, str, ModelUsage]]
              ) -> list[tuple[str, str, str, float]]:
    """The cost rows at this moment of a replica with ``threads`` cores and ``rss`` bytes
    resident (read by the metrics collector)."""
    usages = list(usages)
    gpus = int(any(u.cuda_at_load for _, _, u in usages))
    hourly = replica_hourly(threads, rss, gpus)
    return costs(usages, hourly, time.monotonic())
