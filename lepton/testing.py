"""Test helpers that ship with Lepton, so users test their own layers the way we test ours."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

Shape = tuple[int, ...]


def run_layer_test(make_layer: Callable[[], Any], input_shape: Shape | list[Shape],
                   expected_output_shape: Shape | None, input_dtype: str = "float32",
                   batch: int = 3) -> Any:
    """Check one layer: lazy build and output shape, config round trip, save/load with
    identical outputs, gradients reaching every weight, and a bfloat16 autocast forward.

    ``input_shape``/``expected_output_shape`` exclude the batch axis; a list of input shapes
    calls the layer on a list of inputs (merge layers). ``expected_output_shape=None`` checks
    only that the shape stays the same across the checks. Returns the model.
    """
    from lepton.core import Input, Model, load_model
    from lepton.core.layers.base import deserialize_layer, serialize_layer

    layer = make_layer()
    shapes = input_shape if isinstance(input_shape, list) else [input_shape]
    inputs = [Input(shape, dtype=input_dtype) for shape in shapes]
    model = Model(inputs, layer(inputs if isinstance(input_shape, list) else inputs[0]))
    if input_dtype.startswith("int"):
        xs = [torch.randint(0, 5, (batch, *shape)) for shape in shapes]
    else:
        xs = [torch.randn(batch, *shape) for shape in shapes]
    model.eval()
    with torch.no_grad():
        out = model(*xs)
    expected = (batch, *expected_output_shape) if expected_output_shape is not None \
        else tuple(out.shape)
    assert tuple(out.shape) == expected, (
        f"{type(layer).__name__}: expected output {expected}, got {tuple(out.shape)}")

    clone = deserialize_layer(serialize_layer(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()

    with tempfile.TemporaryDirectory() as tmp:
        model.save(f"{tmp}/model")
        loaded = load_model(f"{tmp}/model")
        with torch.no_grad():
            np.testing.assert_allclose(loaded(*xs).numpy(), out.numpy(), rtol=1e-5, atol=1e-6)

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if params and out.is_floating_point():
        model(*xs).float().square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, f"no gradient reached {missing}"
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert tuple(model(*xs).shape) == expected
    return model
