"""/v1 predict with raw records through the artifact's saved preprocessing (a real table)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from lepton.client import Client, RequestError
from lepton.serve.app import ServeOptions
from lepton.serve.server import BackgroundServer, ModelRef, ServerConfig, build_app


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """A model trained by `lepton.train` on the breast-cancer table (CSV with class names)."""
    from sklearn.datasets import load_breast_cancer

    from lepton.train.run import train

    root = tmp_path_factory.mktemp("cancer")
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    frame.to_csv(root / "bc.csv", index=False)
    train(root / "bc.csv", "target", out=root / "cancer", epochs=5, register=False)
    return root / "cancer", frame


def test_raw_records_are_preprocessed_and_labelled_like_offline_predictions(cancer):
    from lepton.artifact.predictor import Predictor

    path, frame = cancer
    records = frame.drop(columns=["target"]).head(40).to_dict(orient="records")
    offline = Predictor.from_artifact(path).predict_records(records)
    app = build_app(ServerConfig(models=[ModelRef("cancer", str(path))],
                                 options=ServeOptions(log_predictions=False)))
    with BackgroundServer(app) as url:
        served = Client(url).predict("cancer", records)
        assert [p["label"] for p in served] == [p["label"] for p in offline]
        accuracy = sum(p["label"] == y for p, y in zip(served, frame["target"], strict=False))
        assert accuracy / len(records) > 0.85
        assert all(p["id"] and set(p["probabilities"]) == {"benign", "malignant"}
                   for p in served)
        with pytest.raises(RequestError) as info:
            Client(url).predict("cancer", ["not a row"])
        assert info.value.http_status == 422 and "cannot be read as a row" in str(info.value)

        async def mixed():  # a bad request batched with good ones fails alone
            async with aiohttp.ClientSession(url) as session:
                async def post(body):
                    async with session.post("/v1/models/cancer/predict", data=body) as r:
                        return r.status

                good = orjson.dumps({"inputs": records[:2]})
                bad = orjson.dumps({"inputs": [42]})
                return await asyncio.gather(*(post(bad if i == 5 else good) for i in range(20)))

        statuses = asyncio.run(mixed())
        assert statuses[5] == 422 and statuses.count(200) == 19
