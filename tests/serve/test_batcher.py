"""The batcher: greedy when idle, bounded, timeouts free slots, errors stay with their item."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton.errors import ConfigError
from lepton.serve.batcher import Batcher, OverloadedError, RequestTimeoutError


def double(items):
    return [x * 2 for x in items]


def test_idle_request_runs_alone_without_waiting_for_the_window():
    async def main():
        batcher = Batcher(double, max_batch_size=8, max_latency_ms=10_000)
        results = [await batcher.submit(i) for i in range(5)]
        batcher.close()
        return results, batcher.stats

    results, stats = asyncio.run(main())
    assert results == [0, 2, 4, 6, 8]
    assert stats.batch_sizes == {1: 5}


def test_requests_arriving_while_busy_form_one_batch_within_max_batch_size():
    gate = threading.Event()
    seen: list[int] = []

    def fn(items):
        gate.wait(5)
        seen.append(len(items))
        return list(items)

    async def main():
        batcher = Batcher(fn, max_batch_size=16, max_latency_ms=0)
        tasks = [asyncio.ensure_future(batcher.submit(0))]
        await asyncio.sleep(0.02)  # 0 runs alone; the rest queue behind it
        tasks += [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 40)]
        await asyncio.sleep(0.02)
        gate.set()
        out = await asyncio.gather(*tasks)
        batcher.close()
        return out

    assert asyncio.run(main()) == list(range(40))
    assert seen[0] == 1 and max(seen) <= 16 and sum(seen) == 40
    assert seen[1:3] == [16, 16]


def test_items_with_several_rows_never_exceed_max_batch_size_unless_alone():
    seen: list[int] = []

    def fn(items):
        seen.append(sum(items))
        time.sleep(0.002)
        return items

    async def main():
        batcher = Batcher(fn, max_batch_size=10, max_latency_ms=1, size_of=lambda x: x)
        sizes = [3, 4, 5, 12, 1, 2, 9, 10, 6]
        out = await asyncio.gather(*(batcher.submit(s) for s in sizes))
        batcher.close()
        return sizes, out

    sizes, out = asyncio.run(main())
    assert out == sizes
    assert all(s <= 10 or s == 12 for s in seen) and sum(seen) == sum(sizes)


def test_full_queue_is_rejected_at_once_with_retry_after():
    gate = threading.Event()

    def fn(items):
        gate.wait(5)
        return items

    async def main():
        batcher = Batcher(fn, max_batch_size=2, max_queue=4, max_latency_ms=0)
        running = asyncio.ensure_future(batcher.submit(-1))
        await asyncio.sleep(0.02)  # -1 is now running, the queue is empty
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError) as info:
            await batcher.submit(99)
        assert info.value.http_status == 503 and info.value.retry_after_s >= 1
        assert batcher.queue_depth == 4
        gate.set()
        out = await asyncio.gather(running, *queued)
        batcher.close()
        return out, batcher.stats.rejected

    out, rejected = asyncio.run(main())
    assert out == [-1, 0, 1, 2, 3] and rejected == 1


def test_timed_out_request_gets_504_and_never_runs():
    gate = threading.Event()
    ran: list[int] = []

    def fn(items):
        gate.wait(5)
        ran.extend(items)
        return items

    async def main():
        batcher = Batcher(fn, max_batch_size=4, max_queue=2, max_latency_ms=0)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.02)
        with pytest.raises(RequestTimeoutError) as info:
            await batcher.submit(2, timeout_s=0.05)
        assert info.value.http_status == 504
        assert batcher.queue_depth == 0  # its slot is free again
        gate.set()
        assert await first == 1
        assert await batcher.submit(3) == 3
        batcher.close()

    asyncio.run(main())
    assert ran == [1, 3]


def test_one_bad_item_fails_only_its_own_request():
    def fn(items):
        if any(x < 0 for x in items):
            raise ValueError("negative input")
        time.sleep(0.001)
        return [x + 1 for x in items]

    async def main():
        batcher = Batcher(fn, max_batch_size=32, max_latency_ms=2)
        values = list(range(50)) + [-5] + list(range(50, 100))
        out = await asyncio.gather(*(batcher.submit(v) for v in values), return_exceptions=True)
        batcher.close()
        return values, out

    values, out = asyncio.run(main())
    for v, r in zip(values, out, strict=True):
        if v < 0:
            assert isinstance(r, ValueError)
        else:
            assert r == v + 1


def test_per_item_exception_results_are_raised_for_that_item_only():
    def fn(items):
        return [KeyError(x) if x == 3 else x for x in items]

    async def main():
        batcher = Batcher(fn)
        out = await asyncio.gather(*(batcher.submit(v) for v in range(6)), return_exceptions=True)
        batcher.close()
        return out

    out = asyncio.run(main())
    assert out[:3] == [0, 1, 2] and out[4:] == [4, 5] and isinstance(out[3], KeyError)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=-10**9, max_value=10**9), min_size=1000, max_size=3000,
                unique=True),
       st.integers(min_value=1, max_value=64), st.sampled_from([0.0, 0.5, 3.0]))
def test_thousands_of_concurrent_requests_never_get_crossed_responses(values, mbs, latency):
    def fn(items):
        return [("answer", x) for x in items]

    async def main():
        batcher = Batcher(fn, max_batch_size=mbs, max_latency_ms=latency, max_queue=10_000)
        out = await asyncio.gather(*(batcher.submit(v) for v in values))
        batcher.close()
        return out, batcher.stats

    out, stats = asyncio.run(main())
    assert out == [("answer", v) for v in values]
    assert max(stats.batch_sizes) <= mbs and sum(stats.batch_sizes.elements()) == len(values)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        Batcher(double, max_batch_size=0)
    with pytest.raises(ConfigError):
        Batcher(double, max_queue=0)
    with pytest.raises(ConfigError):
        Batcher(double, max_latency_ms=-1)
