"""The autoscaling policy: in-flight samples, the time and the current replicas in, the
replicas wanted out. A pure function, so it is tested alone and the later Kubernetes manifests
can express the same rule.

* **Load** is the total of requests in flight over all replicas, sampled a few times a second.
  With ``target`` in flight per replica (2 by default), ``n`` replicas carry ``n × target``.
* **Up** only when every sample of the last ``up_delay_s`` (30 s) needed more replicas than now,
  and then to the *smallest* number any of them needed: a burst shorter than the delay never
  adds a replica.
* **Down** only when every sample of the last ``down_delay_s`` (600 s) fitted in fewer replicas
  at ``target × (1 - tolerance)`` in flight each, and then to the *largest* number any of them
  needed. The lower bar is the hysteresis: a load that needs ``n`` replicas by the up rule
  never asks for fewer than ``n`` by the down rule, so no steady load can make it flap.
* Delays are wall-clock seconds (``time.monotonic``), never loop iterations, and a window is
  judged only once the samples span all of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lepton.errors import ConfigError

Sample = tuple[float, float]  # (monotonic time, total in-flight requests over all replicas)


@dataclass(frozen=True)
class Policy:
    """How many replicas, when to change; checked when made."""

    min_replicas: int = 1
    max_replicas: int = 1
    target: float = 2.0  # in-flight requests per replica
    up_delay_s: float = 30.0
    down_delay_s: float = 600.0
    tolerance: float = 0.2  # the down rule's margin under the target (hysteresis)

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError("Invalid replica range", expected="1 <= MIN <= MAX",
                              received=f"{self.min_replicas}:{self.max_replicas}",
                              fix="e.g. --autoscale 1:4")
        if not self.target > 0 or not 0 <= self.tolerance < 1:
            raise ConfigError("Invalid autoscaling target", expected="target > 0, "
                              "0 <= tolerance < 1",
                              received=f"target={self.target}, tolerance={self.tolerance}")
        if self.up_delay_s < 0 or self.down_delay_s < 0:
            raise ConfigError("Scaling delays are seconds >= 0",
                              received=f"up {self.up_delay_s}, down {self.down_delay_s}",
                              fix="--scale-up-delay 30 --scale-down-delay 600")

    def clamp(self, n: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, n))

    def needed_up(self, inflight: float) -> int:
        return self.clamp(math.ceil(inflight / self.target - 1e-9))

    def needed_down(self, inflight: float) -> int:
        return self.clamp(math.ceil(inflight / (self.target * (1 - self.tolerance)) - 1e-9))


def parse_autoscale(text: str) -> tuple[int, int]:
    """``MIN:MAX`` for ``--autoscale``; MIN <= MAX, both >= 1, else a one-line error."""
    try:
        low, high = (int(part) for part in text.split(":"))
    except ValueError:
        raise ConfigError("Invalid --autoscale", expected="MIN:MAX, e.g. 1:4",
                          received=repr(text)[:40]) from None
    Policy(low, high)  # checks the range
    return low, high


def _window(samples: Sequence[Sample], now: float, span: float) -> list[float] | None:
    """The in-flight values of the last ``span`` seconds, or None if the samples do not yet
    reach back that far."""
    if not samples or samples[0][0] > now - span:
        return None
    return [value for t, value in samples if t >= now - span] or [samples[-1][1]]


def desired_replicas(samples: Sequence[Sample], now: float, current: int,
                     policy: Policy) -> int:
    """The replicas wanted now, from time-ordered samples (older ones may be dropped once they
    are more than ``max(up, down)`` delays old)."""
    current = policy.clamp(current) if current >= 1 else policy.min_replicas
    up = _window(samples, now, policy.up_delay_s)
    if up is not None:
        wanted = min(policy.needed_up(v) for v in up)
        if wanted > current:
            return wanted
    down = _window(samples, now, policy.down_delay_s)
    if down is not None:
        wanted = max(policy.needed_down(v) for v in down)
        if wanted < current:
            return wanted
    return current
