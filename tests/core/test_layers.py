"""Every layer through one contract harness, plus the bad arguments each must refuse."""

from __future__ import annotations

import pytest
import torch

from lepton.core import Input, Sequential
from lepton.core import layers as L
from lepton.errors import ConfigError, ShapeError
from lepton.testing import run_layer_test

CASES = [
    (lambda: L.Dense(4, activation="relu"), (6,), (4,)),
    (lambda: L.Dense(4), (5, 6), (5, 4)),
    (lambda: L.Dense(4), (3, 3, 2), (4,)),
    (lambda: L.Conv2D(4, 3, activation="relu"), (8, 8, 2), (6, 6, 4)),
    (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (9, 9, 2), (5, 5, 4)),
    (lambda: L.Conv2D(4, (3, 1), padding="same"), (8, 8, 2), (8, 8, 4)),
    (lambda: L.Conv1D(4, 3), (10, 2), (8, 4)),
    (lambda: L.Conv1D(4, 3, strides=2, padding="same"), (10, 2), (5, 4)),
    (lambda: L.MaxPooling2D(2), (8, 8, 3), (4, 4, 3)),
    (lambda: L.AveragePooling2D((2, 2), padding="same"), (7, 7, 3), (4, 4, 3)),
    (lambda: L.MaxPooling1D(2), (8, 3), (4, 3)),
    (lambda: L.AveragePooling1D(2), (8, 3), (4, 3)),
    (lambda: L.GlobalAveragePooling2D(), (5, 5, 3), (3,)),
    (lambda: L.GlobalMaxPooling2D(), (5, 5, 3), (3,)),
    (lambda: L.GlobalAveragePooling1D(), (5, 3), (3,)),
    (lambda: L.Flatten(), (4, 4, 2), (32,)),
    (lambda: L.Reshape((4, -1)), (4, 4, 2), (4, 8)),
    (lambda: L.Dropout(0.5), (6,), (6,)),
    (lambda: L.BatchNormalization(), (6,), (6,)),
    (lambda: L.BatchNormalization(), (4, 4, 3), (4, 4, 3)),
    (lambda: L.LayerNormalization(), (5, 6), (5, 6)),
    (lambda: L.Activation("softmax"), (6,), (6,)),
    (lambda: L.Rescaling(1 / 255), (4, 4, 1), (4, 4, 1)),
    (lambda: L.LSTM(5), (7, 3), (5,)),
    (lambda: L.LSTM(5, return_sequences=True), (7, 3), (7, 5)),
    (lambda: L.GRU(5), (7, 3), (5,)),
    (lambda: L.Bidirectional(L.LSTM(5)), (7, 3), (10,)),
    (lambda: L.Bidirectional(L.GRU(5, return_sequences=True)), (7, 3), (7, 10)),
    (lambda: L.MultiHeadAttention(num_heads=2, key_dim=4), (7, 6), (7, 6)),
    (lambda: L.TransformerEncoder(num_heads=2, intermediate_dim=16), (7, 6), (7, 6)),
]


@pytest.mark.parametrize(("make", "shape", "expected"), CASES,
                         ids=[f"{i}-{c[0]().__class__.__name__}" for i, c in enumerate(CASES)])
def test_layer_contract(make, shape, expected):
    run_layer_test(make, shape, expected)


def test_embedding_contract():
    run_layer_test(lambda: L.Embedding(10, 4), (6,), (6, 4), input_dtype="int64")


def test_merge_layers_in_functional_model():
    from lepton.core import Input, Model

    a, b = Input((4,)), Input((4,))
    joined = L.Concatenate()([a, b])
    summed = L.Add()([a, b])
    model = Model([a, b], [joined, summed])
    xa, xb = torch.ones(2, 4), torch.full((2, 4), 2.0)
    out_joined, out_sum = model(xa, xb)
    assert tuple(out_joined.shape) == (2, 8)
    assert torch.equal(out_sum, torch.full((2, 4), 3.0))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: L.Dense(0), "Dense expected `units` to be a positive int. Received: units=0"),
    (lambda: L.Dense(-3), "units=-3"),
    (lambda: L.Dense(2.5), "units=2.5"),
    (lambda: L.Dropout(1.5), "Invalid value for argument `rate`"),
    (lambda: L.Conv2D(8, 0), "kernel_size"),
    (lambda: L.Conv2D(8, 3, padding="full"), "padding"),
    (lambda: L.Dense(4, activation="relu7"), "Unknown activation"),
    (lambda: L.Dense(4, input_shape=(0,)), "input_shape"),
    (lambda: L.Dense(4, unknown_arg=1), "unknown arguments ['unknown_arg']"),
    (lambda: L.Bidirectional(L.Dense(3)), "Bidirectional wraps a recurrent layer"),
])
def test_bad_arguments_are_refused_with_the_received_value(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_conv2d_on_rank_3_input_explains_the_channel_axis():
    with pytest.raises(ShapeError, match=r"x\[\.\.\., None\]"):
        L.Conv2D(4, 3)(torch.zeros(2, 28, 28))


def test_custom_layer_with_build_call_get_config(tmp_path):
    import numpy as np

    from lepton.core import Sequential, load_model, register

    @register
    class Scale(L.Layer):
        def __init__(self, init=2.0, **kwargs):
            super().__init__(**kwargs)
            self.init = init

        def build(self, input_shape):
            self.alpha = torch.nn.Parameter(torch.full((input_shape[-1],), self.init))

        def call(self, x):
            return x * self.alpha

        def get_config(self):
            return {**super().get_config(), "init": self.init}

    model = Sequential([L.Dense(3, input_shape=(4,)), Scale(3.0)])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    expected = model.predict(x)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded.layers[1]) is Scale
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-6)


def test_batch_norm_moving_averages_warm_up_from_the_first_batch():
    """Keras starts the averages at mean 0 / variance 1 and forgets them over hundreds of
    steps; ours are a plain mean of the batches until momentum takes over, so inference
    mode scores like training mode on a small data set."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    bn = L.BatchNormalization()
    conv = L.Conv2D(8, 3, padding="same", use_bias=False)
    model = Sequential([Input((8, 8, 1)), conv, bn])
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(x[:256]))
        features = conv(torch.from_numpy(x[:256])).reshape(-1, 8)
    torch.testing.assert_close(bn.moving_mean, features.mean(0))
    torch.testing.assert_close(bn.moving_variance, features.var(0))
    assert int(bn.batches_seen) == 1

    cnn = Sequential([L.Conv2D(32, 3, padding="same", input_shape=(8, 8, 1)),
                      L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(2),
                      L.Conv2D(64, 3, padding="same"), L.BatchNormalization(),
                      L.Activation("relu"), L.GlobalAveragePooling2D(),
                      L.Dense(10, activation="softmax")])
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cnn.fit(x[:1400], data.target[:1400], epochs=6, batch_size=32, verbose=0)  # 264 steps
    _, accuracy = cnn.evaluate(x[1400:], data.target[1400:], verbose=0)
    assert accuracy > 0.85  # with Keras' averages (0.99 from 0 / 1): 0.10, chance
