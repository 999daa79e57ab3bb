"""What a server records for monitoring, on a real table model (breast-cancer data trained by
``lepton train``) served on 127.0.0.1: per-window traffic sketches, sampled, redacted and
encrypted inputs, the retention sweep, the monitor gauges on /metrics, unknown feedback
counted, and an alias followed to a newly promoted version."""

from __future__ import annotations

import base64
import os
import time

import httpx
import pytest

from lepton.errors import ConfigError
from tests.monitor.conftest import store, table_model, workspace  # noqa: F401 - fixtures

KEY = base64.b64encode(bytes(range(32))).decode()


def serve(store, options):  # noqa: F811 - the fixture's name
    from lepton.serve.server import BackgroundServer, ServerConfig, build_app, resolve_models

    config = ServerConfig(models=resolve_models(["cancer@production"]), options=options)
    return BackgroundServer(build_app(config, store_factory=lambda: store))


def post_records(url: str, frame, requests: int, rows: int = 5) -> list[dict]:
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            part = frame.iloc[(i * rows) % len(frame):][:rows]
            reply = client.post("/v1/models/cancer/predict",
                                json={"inputs": part.to_dict("records")})
            assert reply.status_code == 200, reply.text
            out.append(reply.json())
    return out


def raw_samples(store, model: str) -> list:  # noqa: F811
    from sqlalchemy import select

    from lepton.store import _schema as s

    p = s.predictions
    rows = store.read(lambda conn: conn.execute(
        select(p.c.input_sample).where(p.c.model == model)).all())
    return [r.input_sample for r in rows]


def test_traffic_is_sketched_and_inputs_are_sampled_and_redacted(table_model, store):  # noqa: F811
    from lepton.serve.options import ServeOptions
    from lepton.store import _monitor as sm

    _, record, frame = table_model
    features = frame.drop(columns=["target"])
    server = serve(store, ServeOptions(sample_inputs=0.5,
                                       redact=("mean_radius", "mean_area:drop")))
    url = server.start()
    try:
        post_records(url, features, 40)
        with httpx.Client(base_url=url) as client:  # a failed request counts as an error
            assert client.post("/v1/models/cancer/predict",
                               json={"inputs": [{"mean_radius": "x"}]}).status_code >= 400
    finally:
        server.stop()
    sketch = sm.read_sketches(store, "cancer")
    assert len(sketch) == 1 and sketch[0]["version"] == record["version"]
    assert sketch[0]["requests"] == 40 and sketch[0]["errors"] == 1
    inputs = sketch[0]["sketch"]["inputs"]
    assert inputs["mean_texture"]["n"] == 200 and sum(inputs["mean_texture"]["counts"]) == 200
    assert "mean_radius" not in inputs and "mean_area" not in inputs  # redacted: not sketched
    import json

    samples = [json.loads(s) for s in raw_samples(store, "cancer") if s is not None]
    assert 5 * 5 <= len(samples) <= 35 * 5  # about half of the 40 requests' rows kept
    assert all(s["mean_radius"].startswith("hmac:") and "mean_area" not in s
               and isinstance(s["mean_texture"], float) for s in samples)


def test_kept_inputs_are_encrypted_and_a_missing_or_wrong_key_is_a_clear_error(
        table_model, store, monkeypatch):  # noqa: F811
    from lepton.serve.options import ServeOptions
    from lepton.store._crypt import decryptor
    from lepton.store._monitor import window_rows

    _, _, frame = table_model
    monkeypatch.setenv("LEPTON_LOG_KEY", KEY)
    server = serve(store, ServeOptions(sample_inputs=1.0))
    url = server.start()
    try:
        post_records(url, frame.drop(columns=["target"]), 3)
    finally:
        server.stop()
    stored = raw_samples(store, "cancer")
    assert len(stored) == 15 and all(s.startswith('"enc:v1:') for s in stored)
    rows = list(window_rows(store, "cancer", decrypt=decryptor()))
    assert rows[0]["input_sample"]["mean_radius"] == pytest.approx(frame["mean_radius"][0])
    monkeypatch.setenv("LEPTON_LOG_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(ConfigError, match="wrong key"):
        list(window_rows(store, "cancer", decrypt=decryptor()))
    monkeypatch.delenv("LEPTON_LOG_KEY")
    with pytest.raises(ConfigError, match="no key is set"):
        list(window_rows(store, "cancer", decrypt=decryptor()))
    monkeypatch.setenv("LEPTON_LOG_KEY", "not-a-key")  # a server refuses to start with it
    with pytest.raises(ConfigError, match="not ready|256-bit"):
        serve(store, ServeOptions(sample_inputs=1.0)).start(timeout_s=60)


def test_the_server_sweeps_expired_rows_and_keeps_those_with_feedback(table_model, store):  # noqa: F811
    from lepton.serve.options import ServeOptions
    from lepton.store import _monitor as sm

    _, _, frame = table_model
    server = serve(store, ServeOptions(sample_inputs=1.0, log_retention_s=2.0))
    url = server.start()
    try:
        replies = post_records(url, frame.drop(columns=["target"]), 4)
        kept = replies[0]["predictions"][0]["id"]
        with httpx.Client(base_url=url) as client:
            assert client.post("/v1/feedback", json={"id": kept, "label": 1}).status_code == 200
        deadline = time.time() + 30
        while store.count_predictions("cancer") > 1 and time.time() < deadline:
            time.sleep(0.25)
    finally:
        server.stop()
    assert store.count_predictions("cancer") == 1  # only the one with feedback stays
    assert store.get_prediction(kept)["id"] == kept
    expired = [s for s in sm.read_sketches(store, "cancer") if s["sketch"].get("expired")]
    assert sum(s["requests"] for s in expired) == 19
    assert sum(s["sketch"]["inputs"]["mean_radius"]["n"] for s in expired) == 19


def test_gauges_unknown_feedback_and_an_alias_followed_to_a_new_version(
        table_model, store):  # noqa: F811
    from lepton.monitor import monitor
    from lepton.registry import Registry
    from lepton.serve.options import ServeOptions
    from lepton.store._monitor import count_unknown_feedback

    _, record, frame = table_model
    features = frame.drop(columns=["target"])
    server = serve(store, ServeOptions(sample_inputs=1.0))
    url = server.start()
    try:
        replies = post_records(url, features, 10)
        with httpx.Client(base_url=url) as client:
            for reply, start in zip(replies, range(0, 50, 5), strict=True):
                for p, label in zip(reply["predictions"], frame["target"][start:start + 5],
                                    strict=True):
                    client.post("/v1/feedback", json={"id": p["id"], "label": int(label)})
            unknown = client.post("/v1/feedback", json={"id": "no-such-id", "label": 1})
            assert unknown.status_code == 404 and "counted" in unknown.json()["error"]
    finally:
        server.stop()
    assert count_unknown_feedback(store) == 1
    result = monitor("cancer@production", store=store)
    assert result["windows"][0]["quality"]["labelled"] == 50
    # a second server reads the stored scores for /metrics, and follows the alias
    server = serve(store, ServeOptions(reload_s=0.3))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.time() + 20
            text = ""
            while "lepton_feedback_accuracy{" not in text and time.time() < deadline:
                text = client.get("/metrics").text
                time.sleep(0.2)
            assert (f'lepton_drift_score{{feature="mean_radius",method="ks",model="cancer",'
                    f'version="{record["version"]}"}}') in text
            accuracy = result["windows"][0]["quality"]["accuracy"]
            assert f'lepton_feedback_accuracy{{model="cancer",version="{record["version"]}"}} ' \
                   f'{accuracy}' in text
            assert post_records(url, features, 1)[0]["model_version"] == str(record["version"])
            registry = Registry(store)
            new = registry.register(record["path"], "cancer", description="next")
            registry.promote("cancer", new["version"], "production")
            deadline = time.time() + 30
            version = None
            while version != str(new["version"]) and time.time() < deadline:
                version = post_records(url, features, 1)[0].get("model_version")
                time.sleep(0.1)
            assert version == str(new["version"])
    finally:
        server.stop()
