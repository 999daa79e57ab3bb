"""Cost: the price sheet (defaults, user overrides, bad sheets), a training run's cost on its
record and in `lepton models show`, and the server's cost per 1,000 predictions."""

from __future__ import annotations

import json
import math

import pytest
from sklearn.datasets import load_breast_cancer

from lepton.errors import ConfigError
from lepton.store.prices import DEFAULTS, Prices, load_prices, training_cost


def test_defaults_have_a_source_and_a_date():
    prices = load_prices()
    assert prices.cpu_core_hour > 0 and prices.memory_gb_hour > 0 and prices.gpu_hour > 0
    assert "cloud.google.com" in prices.source and prices.as_of
    assert prices.machine_hour is None


def test_user_sheet_overrides_and_machine_price(tmp_path, monkeypatch):
    sheet = tmp_path / "p.yaml"
    sheet.write_text("cpu_core_hour: 0.5\n")
    prices = load_prices(sheet)
    assert prices.cpu_core_hour == 0.5 and prices.memory_gb_hour == load_prices().memory_gb_hour
    sheet.write_text("machine_hour: 0.8\n")
    monkeypatch.setenv("LEPTON_PRICES", str(sheet))
    prices = load_prices()
    assert prices.machine_hour == 0.8
    assert prices.hourly(1, 100.0) == pytest.approx(0.8 / __import__("os").cpu_count())


@pytest.mark.parametrize("text, word", [("cpu_core_hour: -1\n", "invalid"),
                                        ("gpu_hour: null\n", "missing"),
                                        ("memory_gb_hour: cheap\n", "invalid"),
                                        ("cpu_hours: 1\n", "Unknown key")])
def test_bad_sheet_is_a_one_line_error(tmp_path, text, word):
    sheet = tmp_path / "p.yaml"
    sheet.write_text(text)
    with pytest.raises(ConfigError, match=word) as info:
        load_prices(sheet)
    assert "\n" not in str(info.value).strip()


def test_missing_default_price_is_refused(tmp_path, monkeypatch):
    broken = tmp_path / "prices.yaml"
    broken.write_text(DEFAULTS.read_text().replace("gpu_hour: 0.35", "# gone"))
    monkeypatch.setattr("lepton.store.prices.DEFAULTS", broken)
    with pytest.raises(ConfigError, match="'gpu_hour' is missing"):
        load_prices()


def test_training_cost_is_price_times_time():
    prices = Prices(cpu_core_hour=0.036, memory_gb_hour=0.0036, gpu_hour=3.6)
    cost = training_cost(cpu_s=100.0, wall_s=50.0, memory_gb=2.0, gpus=1, prices=prices)
    assert cost["cost_cpu_usd"] == pytest.approx(0.001)
    assert cost["cost_memory_usd"] == pytest.approx(2.0 * 50 / 3600 * 0.0036)
    assert cost["cost_gpu_usd"] == pytest.approx(0.05)
    assert cost["cost_usd"] == pytest.approx(0.001 + 0.0001 + 0.05)


def test_training_run_stores_its_cost(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEPTON_DB_URL", raising=False)
    sheet = tmp_path / "p.yaml"
    sheet.write_text("cpu_core_hour: 3.6\nmemory_gb_hour: 0.36\n")
    monkeypatch.setenv("LEPTON_PRICES", str(sheet))
    data = load_breast_cancer(as_frame=True).frame.iloc[:200]
    csv = tmp_path / "cancer.csv"
    data.to_csv(csv, index=False)
    from lepton.train import train

    result = train(csv, "target", model="linear", out=tmp_path / "m", name="cancer", epochs=2)
    run_id = result.registered["run_id"]
    from lepton.store import Store

    with Store.open() as store:
        run = store.get_run(run_id)
    measured = {k: v[0][1] for k, v in run["metrics"].items()}
    expected = (measured["cpu_seconds"] / 3600 * 3.6
                + measured["peak_memory_gb"] * measured["wall_seconds"] / 3600 * 0.36)
    assert measured["cpu_seconds"] > 0
    assert run["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert math.isclose(measured["cost_usd"], run["cost_usd"])
    assert "cost" in (tmp_path / "m" / "report.html").read_text()
    from lepton.cli import main

    capsys.readouterr()
    assert main(["models", "show", "cancer", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["versions"][0]["training_cost_usd"] == pytest.approx(run["cost_usd"])
    assert main(["models", "show", "cancer"]) == 0
    assert f"${run['cost_usd']:.6f}" in capsys.readouterr().out


def _gauges(text: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, *sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_server_cost_per_1k_predictions_is_price_times_time(tmp_path, monkeypatch):
    import os
    import time

    from lepton.serve import cost
    from lepton.serve.app import LeptonApp, ModelSource, ServeOptions
    from tests.serve.conftest import cnn_runner, mnist_images, run_app

    sheet = tmp_path / "p.yaml"
    sheet.write_text("machine_hour: 7.2\n")
    monkeypatch.setenv("LEPTON_PRICES", str(sheet))
    cost._prices.cache_clear()
    hourly = 7.2 / os.cpu_count()  # one thread: one core's share of the machine
    images, _ = mnist_images(8)
    app = LeptonApp([ModelSource("mnist", lambda: cnn_runner("mnist", "1"), version="1")],
                    ServeOptions(log_predictions=False))
    try:
        with run_app(app) as server, server.client() as http:
            body = {"inputs": [{"name": "input_1", "shape": [8, 28, 28, 1], "datatype": "FP32",
                                "data": images.ravel().tolist()}]}
            for _ in range(20):
                assert http.post("/v2/models/mnist/infer", json=body).status_code == 200
            usage = app.table.models["mnist"]["1"].usage
            before = time.monotonic() - usage.loaded_at
            text = http.get("/metrics").text
            after = time.monotonic() - usage.loaded_at
    finally:
        cost._prices.cache_clear()
    m = _gauges(text)
    key = (("model", "mnist"), ("version", "1"))
    busy = m[("lepton_model_busy_seconds", *key)]
    rows = m[("lepton_model_predictions", *key)]
    assert rows == 160 and busy > 0
    assert m[("lepton_model_cpu_seconds", *key)] > 0
    usage_cost = m[("lepton_cost_per_1k_predictions", ("basis", "usage"), *key)]
    assert usage_cost == pytest.approx(busy * hourly / 3600 / rows * 1000, rel=1e-6)
    allocation = m[("lepton_cost_per_1k_predictions", ("basis", "allocation"), *key)]
    low, high = (t * hourly / 3600 / rows * 1000 for t in (before, after))
    assert low * (1 - 1e-9) <= allocation <= high * (1 + 1e-9)
    assert allocation > usage_cost


def test_serve_refuses_a_bad_price_sheet_at_start(tmp_path, monkeypatch, capsys):
    from lepton.cli import main

    sheet = tmp_path / "p.yaml"
    sheet.write_text("memory_gb_hour: -0.1\n")
    monkeypatch.setenv("LEPTON_PRICES", str(sheet))
    assert main(["serve", str(tmp_path / "not-loaded-yet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Price 'memory_gb_hour' is invalid" in err and len(err.splitlines()) == 1
