"""Per-model resource metrics measured inside the server: CPU and busy seconds, resident
memory at load and now, queue depth and wait, replicas, CUDA memory (only with a GPU)."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time

from lepton.serve.app import LeptonApp, ModelSource, ServeOptions
from lepton.serve.resources import LoadMeter, ModelUsage, process_cpu_seconds, rss_bytes
from tests.conftest import REPO
from tests.serve.conftest import cnn_runner, mnist_images, run_app
from tests.serve.test_cost import _gauges


def test_load_meter_sees_memory_a_load_adds():
    """In a fresh process: in the test run's own (GBs, other threads freeing memory) RSS can
    shrink while the block is touched, and the delta reads 0."""
    code = ("import numpy as np\n"
            "from lepton.serve.resources import LoadMeter, ModelUsage\n"
            "with LoadMeter() as meter:\n"
            "    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched\n"
            "usage = meter.fill(ModelUsage())\n"
            "print(usage.rss_load_delta, usage.rss_at_load, int(block.sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    delta, at_load, total = map(int, out)
    assert delta >= 48 * 2**20 and at_load >= delta and total == 64 * 2**20 // 8


def test_usage_charges_a_model_its_own_cpu_and_busy_time():
    usage = ModelUsage()
    spin = usage.timed(lambda items: [sum(i * i for i in range(200_000)) for _ in items])
    cpu0 = process_cpu_seconds()
    spin([1, 2])
    usage.observer(lambda rows, s: None)(2, 0.25)
    assert 0 < usage.cpu_s <= process_cpu_seconds() - cpu0 + 0.01
    assert usage.busy_s == 0.25 and usage.rows == 2 and usage.batches == 1


def test_metrics_show_resources_per_model_version():
    images, _ = mnist_images(1)
    sources = [ModelSource("mnist", lambda: cnn_runner("mnist", "1"), version="1"),
               ModelSource("mnist", lambda: cnn_runner("mnist", "2"), version="2")]
    app = LeptonApp(sources, ServeOptions(log_predictions=False, max_latency_ms=5))
    body = {"inputs": [{"name": "input_1", "shape": [1, 28, 28, 1], "datatype": "FP32",
                        "data": images.ravel().tolist()}]}
    with run_app(app) as server, server.client() as http:
        def one(_: int) -> int:
            return http.post("/v2/models/mnist/versions/2/infer", json=body).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(64))) == {200}
        time.sleep(0.05)
        text = http.get("/metrics").text
    m = _gauges(text)
    v1, v2 = ((("model", "mnist"), ("version", v)) for v in ("1", "2"))
    assert m[("lepton_model_predictions", *v2)] == 64
    assert m[("lepton_model_predictions", *v1)] == 0
    assert m[("lepton_model_busy_seconds", *v2)] > 0 == m[("lepton_model_busy_seconds", *v1)]
    assert m[("lepton_model_cpu_seconds", *v2)] > 0
    assert m[("lepton_model_memory_at_load_bytes", *v2)] >= \
        m[("lepton_model_memory_at_load_bytes", *v1)] > 0
    assert m[("lepton_model_queue_wait_seconds", *v2)] > 0  # 8 clients on one model thread
    assert m[("lepton_queue_depth", *v2)] == 0
    # the process's memory now is of the order it had at load (the allocator may give some back)
    assert m[("lepton_resident_memory_bytes",)] >= \
        0.8 * m[("lepton_model_memory_at_load_bytes", *v2)]
    assert 0 < m[("lepton_resident_memory_bytes",)] <= rss_bytes() * 1.5
    assert m[("lepton_process_cpu_seconds",)] > 0
    assert m[("lepton_replicas",)] == 1
    assert ("lepton_cuda_memory_allocated_bytes",) not in m  # CPU-only here
    from lepton.cli.bench import _resources

    lines = _resources(text, "mnist")  # what `lepton bench` prints after its run
    assert "replicas 1" in lines[0] and len(lines) == 2 and lines[1].startswith("  mnist:2")
    assert "cost/1k predictions: allocation" in lines[1] and "queue wait" in lines[1]


def test_cuda_memory_is_read_only_where_torch_has_a_gpu(monkeypatch):
    """No GPU here: the guarded path is checked with a stand-in for torch.cuda (its three
    calls), the real one on CPU-only torch gives None."""
    import sys
    import types

    from lepton.serve.resources import cuda_allocated

    assert cuda_allocated() is None  # CPU-only torch (or no GPU): no series
    allocated = [1000]
    cuda = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                                 memory_allocated=lambda: allocated[0])
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    with LoadMeter() as meter:
        allocated[0] = 5000
    assert meter.fill(ModelUsage()).cuda_at_load == 4000 and cuda_allocated() == 5000
