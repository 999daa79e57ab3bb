"""Precision: one object per compiled model gives the autocast context, the gradient scaler
and the dtype, and fit, evaluate and predict all compute with it."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from lepton.core import Sequential, layers, optimizers
from lepton.core.training.precision import Precision
from lepton.errors import ConfigError


@pytest.mark.parametrize(("setting", "dtype", "name", "scaled"), [
    ("32", torch.float32, "fp32", False),
    ("auto", torch.float32, "fp32", False),  # float32 off CUDA
    ("bf16", torch.bfloat16, "bf16", False),
    ("fp16", torch.float16, "fp16", True),
])
def test_each_setting_on_cpu(setting, dtype, name, scaled):
    precision = Precision(setting, "cpu")
    assert (precision.dtype, precision.name) == (dtype, name)
    assert precision.scaler.is_enabled() is scaled
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.autocast():
        assert (a @ b).dtype == dtype
        assert torch.is_autocast_enabled("cpu") is (dtype != torch.float32)
    if dtype == torch.float32:
        assert precision.autocast is contextlib.nullcontext  # nothing to enter per step


def test_unknown_setting_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"Unknown precision.*'auto', '32', 'bf16', 'fp16'"
                                          r".*Received: 'fp8'"):
        Precision("fp8")


def _model():
    return Sequential([layers.Dense(16, activation="relu", input_shape=(30,)),
                       layers.Dense(2, activation="softmax")])


def test_predict_computes_in_the_precision_evaluate_measured(breast_cancer):
    """One model, one number: the accuracy of predict's outputs is the one evaluate reports
    (both bf16; the final softmax in float32, so no 0.5 / 0.5 ties), and its outputs differ
    from a float32 forward's."""
    x, y = breast_cancer
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision="bf16")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert model.compiled.precision.name == "bf16"
    _, accuracy = model.evaluate(x, y, verbose=0)
    probabilities = model.predict(x)
    assert float((probabilities.argmax(1) == y).mean()) == pytest.approx(accuracy, abs=1e-12)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-6)  # float32, not bf16
    with torch.inference_mode():
        float32 = model(torch.from_numpy(x)).numpy()
    assert np.abs(probabilities - float32).max() > 1e-4  # bf16 really was used


def test_uncompiled_model_predicts_in_float32(breast_cancer):
    x, _ = breast_cancer
    model = _model()
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(model.predict(x), expected)


def test_lbfgs_in_fp16_is_refused_at_compile():
    model = _model()
    with pytest.raises(ConfigError, match="LBFGS cannot train in fp16.*precision='bf16' or '32'"):
        model.compile(optimizer=optimizers.LBFGS(), loss="sparse_categorical_crossentropy",
                      precision="fp16")


@pytest.mark.gpu
def test_fp16_on_cuda_scales_the_loss_and_learns(breast_cancer):
    x, y = breast_cancer
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision="fp16", device="cuda")
    assert model.compiled.precision.scaler.is_enabled()
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert model.compiled.precision.scaler.get_scale() > 0
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.95
    assert float((model.predict(x).argmax(1) == y).mean()) == pytest.approx(accuracy)


@pytest.mark.gpu
def test_auto_on_cuda_is_half_precision():
    precision = Precision("auto", "cuda")
    assert precision.name == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    with precision.autocast():
        assert (torch.randn(4, 8, device="cuda") @ torch.randn(8, 3, device="cuda")).dtype \
            == precision.dtype
