"""Training on CUDA in bf16 autocast: it learns, and the saved model predicts the same on CPU.

Marked ``gpu``: tests/conftest.py skips it, with the reason, where CUDA is not available.
"""

from __future__ import annotations

import numpy as np
import pytest

from lepton.core import Sequential, layers, load_model

pytestmark = pytest.mark.gpu


def test_bf16_fit_on_cuda_learns_and_matches_cpu(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split((x / 16).astype(np.float32), y,
                                                        test_size=400, random_state=0)
    model = Sequential([layers.Dense(64, activation="relu", input_shape=(64,)),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], precision="bf16", device="cuda")
    history = model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0, seed=0)
    assert next(model.parameters()).device.type == "cuda"
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]

    on_gpu = np.asarray(model.predict(x_test))  # bf16 autocast, as compiled
    model.save(tmp_path / "digits")
    on_cpu = np.asarray(load_model(tmp_path / "digits").to("cpu").predict(x_test))  # fp32
    assert (on_gpu.argmax(1) == y_test).mean() > 0.9
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).mean() > 0.97
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.05)
