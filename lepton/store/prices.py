"""The price sheet: what a core, a GB of memory and a GPU cost per hour, and a run's cost.

Defaults ship in ``prices.yaml`` with their source and date; a user YAML (``LEPTON_PRICES`` or a
path) overrides any of them, or gives a whole machine's hourly price. It lives in ``store``
because both ``train`` (a run's cost on its record) and ``serve`` (cost per 1,000 predictions)
price resources, and ``store`` sits below both. Costs are plain arithmetic on measured seconds,
so a figure can be checked by hand: seconds × hourly price / 3600.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError

DEFAULTS = Path(__file__).with_name("prices.yaml")
PRICE_KEYS = ("cpu_core_hour", "memory_gb_hour", "gpu_hour")
ENV = "LEPTON_PRICES"


@dataclass(frozen=True)
class Prices:
    """Hourly prices in ``currency``; ``machine_hour`` (when set) prices a whole machine."""

    cpu_core_hour: float
    memory_gb_hour: float
    gpu_hour: float
    machine_hour: float | None = None
    source: str = ""
    as_of: str = ""
    currency: str = "USD"

    def core_hour(self, cores_on_machine: int | None = None) -> float:
        """One core's hourly price: the machine's price over its cores when that is given."""
        if self.machine_hour is not None:
            return self.machine_hour / max(1, cores_on_machine or os.cpu_count() or 1)
        return self.cpu_core_hour

    def hourly(self, cores: float, memory_gb: float, gpus: float = 0.0) -> float:
        """The hourly price of ``cores`` cores, ``memory_gb`` GB and ``gpus`` GPUs (memory is
        in the machine price when that is set)."""
        memory = 0.0 if self.machine_hour is not None else memory_gb * self.memory_gb_hour
        return cores * self.core_hour() + memory + gpus * self.gpu_hour


def _read(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("Cannot read the price sheet", received=f"{path}: {exc}",
                          fix="pass a readable YAML file of prices") from None
    if not isinstance(data, dict):
        raise ConfigError("A price sheet is a YAML mapping", received=f"{path}",
                          expected="keys " + ", ".join(PRICE_KEYS))
    return data


def _price(raw: dict[str, Any], key: str, where: str, optional: bool = False) -> float | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ConfigError(f"Price '{key}' is {'missing' if value is None else 'invalid'} in "
                          f"{where}", expected="a number >= 0 (per hour)",
                          received=repr(value)[:60], fix=f"set {key}: 0.05 in the price sheet")
    return float(value)


def load_prices(path: str | Path | None = None) -> Prices:
    """The shipped defaults, overridden by ``path`` (or ``$LEPTON_PRICES``) where it sets a
    key. A negative, non-numeric or missing price is a ``ConfigError``."""
    raw = _read(DEFAULTS)
    where = str(DEFAULTS)
    user = path if path is not None else os.environ.get(ENV)
    if user:
        override = _read(Path(user).expanduser())
        for key in override:
            if key not in (*PRICE_KEYS, "machine_hour", "source", "as_of", "currency"):
                raise ConfigError(f"Unknown key '{key}' in the price sheet {user}",
                                  expected=", ".join((*PRICE_KEYS, "machine_hour")))
        for key in (*PRICE_KEYS, "machine_hour"):
            if key in override and (override[key] is None and key != "machine_hour"):
                raise ConfigError(f"Price '{key}' is missing in {user}",
                                  expected="a number >= 0 (per hour)", received="null",
                                  fix=f"set {key}: 0.05 or leave the key out")
        raw = {**raw, "source": f"user price sheet {user}", "as_of": "", **override}
        where = str(user)
    prices = {k: _price(raw, k, where) for k in PRICE_KEYS}
    return Prices(**prices, machine_hour=_price(raw, "machine_hour", where, optional=True),
                  source=" ".join(str(raw.get("source") or "").split()),
                  as_of=str(raw.get("as_of") or ""), currency=str(raw.get("currency") or "USD"))


def rss_peak_gb() -> float:
    """This process's peak resident memory in GiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if os.uname().sysname == "Darwin" else 1024
    return peak * scale / 2**30


class RunMeter:
    """Measures a run from ``start()`` to ``cost()``: process CPU seconds (this process and
    waited-for children), wall seconds, peak resident memory, GPU seconds (wall time while a
    GPU was in use)."""

    def __init__(self) -> None:
        self._cpu0 = self._cpu()
        self._wall0 = time.perf_counter()

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def cost(self, prices: Prices, gpus: int = 0) -> dict[str, float]:
        """The measured resources and their price: CPU seconds × core-hour + peak GB × wall
        hours × GB-hour + GPUs × wall hours × GPU-hour."""
        cpu_s = self._cpu() - self._cpu0
        wall_s = time.perf_counter() - self._wall0
        memory_gb = rss_peak_gb()
        return training_cost(cpu_s, wall_s, memory_gb, gpus, prices)


def training_cost(cpu_s: float, wall_s: float, memory_gb: float, gpus: int,
                  prices: Prices) -> dict[str, float]:
    """A run's cost from its measured resources (the formula ``RunMeter.cost`` uses)."""
    cpu = cpu_s / 3600 * prices.core_hour()
    memory = 0.0 if prices.machine_hour is not None else \
        memory_gb * wall_s / 3600 * prices.memory_gb_hour
    gpu = gpus * wall_s / 3600 * prices.gpu_hour
    return {"cost_usd": cpu + memory + gpu, "cost_cpu_usd": cpu, "cost_memory_usd": memory,
            "cost_gpu_usd": gpu, "cpu_seconds": cpu_s, "wall_seconds": wall_s,
            "peak_memory_gb": memory_gb, "gpus": float(gpus)}
