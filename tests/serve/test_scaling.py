"""The autoscaling policy alone: delays in wall-clock seconds, hysteresis, clamping."""

from __future__ import annotations

import random

import pytest

from lepton.errors import ConfigError
from lepton.serve.scaling import Policy, desired_replicas, parse_autoscale

POLICY = Policy(1, 4, target=2, up_delay_s=30, down_delay_s=600)


def run(policy: Policy, load, seconds: float, start: int = 1, step: float = 0.5):
    """Drive the policy like the supervisor does; returns the replica count over time."""
    samples, current, trace = [], start, []
    t = 0.0
    while t <= seconds:
        samples.append((t, load(t)))
        samples = [s for s in samples if s[0] >= t - max(policy.up_delay_s,
                                                         policy.down_delay_s) - step]
        current = desired_replicas(samples, t, current, policy)
        trace.append((t, current))
        t += step
    return trace


def test_load_step_scales_up_after_the_delay_only():
    trace = run(POLICY, lambda t: 8.0 if t >= 100 else 1.0, 200)
    assert all(n == 1 for t, n in trace if t < 130)
    first_up = min(t for t, n in trace if n > 1)
    assert 130 <= first_up <= 131 and dict(trace)[200] == 4


def test_burst_shorter_than_the_delay_adds_nothing():
    trace = run(POLICY, lambda t: 8.0 if 100 <= t < 125 else 1.0, 300)
    assert {n for _, n in trace} == {1}


def test_scales_down_after_the_down_delay_and_not_before():
    trace = run(POLICY, lambda t: 8.0 if t < 100 else 0.0, 800, start=4)
    assert all(n == 4 for t, n in trace if t < 700)
    assert dict(trace)[700.5] == 1


def test_noisy_load_at_the_edge_never_oscillates():
    rng = random.Random(0)
    # 2 replicas carry 4 in flight; the load wanders between 3.3 and 4 (needs 2 going up,
    # and 2 going down with the 20 % margin): once at 2 it must stay there
    trace = run(Policy(1, 4, 2, up_delay_s=5, down_delay_s=20),
                lambda t: rng.uniform(3.3, 4.0), 2000, start=2)
    assert {n for _, n in trace} == {2}
    changes = sum(1 for a, b in zip(trace, trace[1:], strict=False) if a[1] != b[1])
    assert changes == 0


def test_hysteresis_band_holds_both_ways():
    p = Policy(1, 8, target=2, tolerance=0.2)
    for inflight in [x / 10 for x in range(0, 160)]:
        assert p.needed_down(inflight) >= p.needed_up(inflight)


def test_clamped_and_window_must_be_full():
    p = Policy(2, 3, 2, up_delay_s=10, down_delay_s=10)
    assert desired_replicas([(0, 100)], 5, 2, p) == 2  # samples span only 5 of 10 s
    assert desired_replicas([(0, 100), (10, 100)], 10, 2, p) == 3  # max
    assert desired_replicas([(0, 0), (10, 0)], 10, 3, p) == 2  # min
    assert desired_replicas([], 10, 0, p) == 2


@pytest.mark.parametrize("text", ["3:1", "0:2", "a:b", "2"])
def test_bad_autoscale_is_a_one_line_error(text):
    with pytest.raises(ConfigError) as info:
        parse_autoscale(text)
    assert "\n" not in str(info.value).strip()


def test_parse_autoscale():
    assert parse_autoscale("1:4") == (1, 4) and parse_autoscale("2:2") == (2, 2)
