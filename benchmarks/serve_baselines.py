"""Baseline servers for serve_throughput.py, each doing one forward pass per request.

(No `from __future__ import annotations` here: FastAPI must see the real pydantic classes.)

    python benchmarks/serve_baselines.py fastapi|starlette ARTIFACT PORT

Both take the same Open Inference Protocol JSON body as Lepton, run the same artifact with one
torch thread on uvicorn (uvloop + httptools), and answer with the output tensor as JSON:
- ``fastapi``: the usual way, a pydantic request model (list of floats validated by pydantic);
- ``starlette``: a bare Starlette route, orjson in and out, numpy conversion, no validation.
"""


import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


def load(artifact: str):
    import torch

    from lepton.core import load_model

    torch.set_num_threads(1)
    model = load_model(artifact)
    model.eval()
    return model, torch


def fastapi_app(artifact: str):
    import numpy as np
    from fastapi import FastAPI
    from pydantic import BaseModel

    model, torch = load(artifact)

    class Tensor(BaseModel):
        name: str
        shape: list[int]
        datatype: str
        data: list[float]

    class InferRequest(BaseModel):
        inputs: list[Tensor]

    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: InferRequest) -> dict:
        t = request.inputs[0]
        x = torch.from_numpy(np.asarray(t.data, dtype=np.float32).reshape(t.shape))
        with torch.inference_mode():
            y = model(x).numpy()
        return {"model_name": name, "outputs": [{"name": "output", "datatype": "FP32",
                                                 "shape": list(y.shape),
                                                 "data": y.reshape(-1).tolist()}]}

    return app


def starlette_app(artifact: str):
    import numpy as np
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    model, torch = load(artifact)

    async def infer(request: Request) -> Response:
        doc = orjson.loads(await request.body())
        t = doc["inputs"][0]
        x = torch.from_numpy(np.asarray(t["data"], dtype=np.float32).reshape(t["shape"]))
        with torch.inference_mode():
            y = model(x).numpy()
        body = orjson.dumps({"model_name": request.path_params["name"],
                             "outputs": [{"name": "output", "datatype": "FP32",
                                          "shape": list(y.shape), "data": y.reshape(-1)}]},
                            option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])


def main() -> None:
    import uvicorn

    kind, artifact, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = {"fastapi": fastapi_app, "starlette": starlette_app}[kind](artifact)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")


if __name__ == "__main__":
    main()
