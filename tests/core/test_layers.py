"""Every exported, registered layer through one contract harness (walked from the registry),
plus the bad arguments each must refuse."""

from __future__ import annotations

import pytest
import torch

from lepton.core import Input, Sequential
from lepton.core import layers as L
from lepton.core.layers.base import registered_class
from lepton.errors import ConfigError, ShapeError
from lepton.testing import run_layer_test

# Example cases per exported layer: (make the layer, input shape, expected output shape), shapes
# without the batch axis. A registered layer may be left out only if it builds with no
# arguments; it is then checked on DEFAULT_INPUT with whatever output shape it gives.
EXAMPLES: dict[str, list[tuple]] = {
    "Dense": [(lambda: L.Dense(4, activation="relu"), (6,), (4,)),
              (lambda: L.Dense(4), (5, 6), (5, 4)),
              (lambda: L.Dense(4), (3, 3, 2), (4,))],
    "Conv2D": [(lambda: L.Conv2D(4, 3, activation="relu"), (8, 8, 2), (6, 6, 4)),
               (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (9, 9, 2), (5, 5, 4)),
               (lambda: L.Conv2D(4, (3, 1), padding="same"), (8, 8, 2), (8, 8, 4))],
    "Conv1D": [(lambda: L.Conv1D(4, 3), (10, 2), (8, 4)),
               (lambda: L.Conv1D(4, 3, strides=2, padding="same"), (10, 2), (5, 4))],
    "MaxPooling2D": [(lambda: L.MaxPooling2D(2), (8, 8, 3), (4, 4, 3))],
    "AveragePooling2D": [(lambda: L.AveragePooling2D((2, 2), padding="same"), (7, 7, 3),
                          (4, 4, 3))],
    "MaxPooling1D": [(lambda: L.MaxPooling1D(2), (8, 3), (4, 3))],
    "AveragePooling1D": [(lambda: L.AveragePooling1D(2), (8, 3), (4, 3))],
    "GlobalAveragePooling2D": [(L.GlobalAveragePooling2D, (5, 5, 3), (3,))],
    "GlobalMaxPooling2D": [(L.GlobalMaxPooling2D, (5, 5, 3), (3,))],
    "GlobalAveragePooling1D": [(L.GlobalAveragePooling1D, (5, 3), (3,))],
    "GlobalMaxPooling1D": [(L.GlobalMaxPooling1D, (5, 3), (3,))],
    "Flatten": [(L.Flatten, (4, 4, 2), (32,))],
    "Reshape": [(lambda: L.Reshape((4, -1)), (4, 4, 2), (4, 8))],
    "Dropout": [(lambda: L.Dropout(0.5), (6,), (6,))],
    "BatchNormalization": [(L.BatchNormalization, (6,), (6,)),
                           (L.BatchNormalization, (4, 4, 3), (4, 4, 3))],
    "LayerNormalization": [(L.LayerNormalization, (5, 6), (5, 6))],
    "Activation": [(lambda: L.Activation("softmax"), (6,), (6,))],
    "Rescaling": [(lambda: L.Rescaling(1 / 255), (4, 4, 1), (4, 4, 1))],
    "LSTM": [(lambda: L.LSTM(5), (7, 3), (5,)),
             (lambda: L.LSTM(5, return_sequences=True), (7, 3), (7, 5))],
    "GRU": [(lambda: L.GRU(5), (7, 3), (5,))],
    "Bidirectional": [(lambda: L.Bidirectional(L.LSTM(5)), (7, 3), (10,)),
                      (lambda: L.Bidirectional(L.GRU(5, return_sequences=True)), (7, 3),
                       (7, 10))],
    "MultiHeadAttention": [(lambda: L.MultiHeadAttention(num_heads=2, key_dim=4), (7, 6),
                            (7, 6))],
    "TransformerEncoder": [(lambda: L.TransformerEncoder(num_heads=2, intermediate_dim=16),
                            (7, 6), (7, 6))],
    "Embedding": [(lambda: L.Embedding(10, 4), (6,), (6, 4), "int64")],
    "Concatenate": [(L.Concatenate, [(4,), (3,)], (7,))],
    "Add": [(L.Add, [(4,), (4,)], (4,))],
    "DepthwiseConv2D": [(lambda: L.DepthwiseConv2D(3, padding="same"), (8, 8, 4), (8, 8, 4)),
                        (lambda: L.DepthwiseConv2D(3, strides=2, padding=1, depth_multiplier=2,
                                                   use_bias=False), (8, 8, 4), (4, 4, 8))],
    "SeparableConv2D": [(lambda: L.SeparableConv2D(6, 3, padding="same", activation="relu"),
                         (8, 8, 4), (8, 8, 6)),
                        (lambda: L.SeparableConv2D(6, 3, strides=2, padding="same"),
                         (9, 9, 4), (5, 5, 6))],
    "ZeroPadding2D": [(L.ZeroPadding2D, (4, 4, 2), (6, 6, 2)),
                      (lambda: L.ZeroPadding2D(((1, 2), (0, 3))), (4, 4, 2), (7, 7, 2))],
    "ReLU": [(lambda: L.ReLU(6.0), (6,), (6,)),
             (lambda: L.ReLU(negative_slope=0.1, threshold=0.5), (4, 4, 2), (4, 4, 2)),
             (lambda: L.ReLU(inplace=True), (6,), (6,))],
}
DEFAULT_INPUT = (5, 3)


def exported_layers() -> list[type]:
    """Every registered Layer subclass that ``lepton.core.layers`` exports."""
    found = [getattr(L, name) for name in L.__all__]
    return [cls for cls in found if isinstance(cls, type) and issubclass(cls, L.Layer)
            and cls is not L.Layer and registered_class(cls._registered_name) is cls]


def contract_cases(cls: type, examples: dict[str, list[tuple]]) -> list[tuple]:
    """The cases to run for ``cls``; fails when it has no entry and needs arguments."""
    if cls.__name__ in examples:
        return examples[cls.__name__]
    try:
        cls()
    except (TypeError, ConfigError) as exc:
        pytest.fail(f"{cls.__name__} needs constructor arguments ({exc}); add example cases "
                    f"for it to EXAMPLES in {__file__}")
    return [(cls, DEFAULT_INPUT, None)]


CASES = [(cls.__name__, case) for cls in exported_layers()
         for case in contract_cases(cls, EXAMPLES)]


@pytest.mark.parametrize(("name", "case"), CASES,
                         ids=[f"{name}-{i}" for i, (name, _) in enumerate(CASES)])
def test_layer_contract(name, case):
    run_layer_test(*case)


def test_contract_walks_the_registry_and_demands_examples_for_layers_with_arguments():
    names = {cls.__name__ for cls in exported_layers()}
    assert {"GlobalMaxPooling1D", "Dense", "Add", "Embedding"} <= names
    assert set(EXAMPLES) <= names  # no stale entries
    with pytest.raises(pytest.fail.Exception, match="add example cases for it to EXAMPLES"):
        contract_cases(L.Dense, {})
    # a layer that builds with no arguments and has no entry runs on DEFAULT_INPUT
    (make, shape, expected), = contract_cases(L.GlobalMaxPooling1D, {})
    assert shape == DEFAULT_INPUT and expected is None
    model = run_layer_test(make, shape, expected)
    assert tuple(model(torch.ones(2, *DEFAULT_INPUT)).shape) == (2, 3)


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
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier=0"),
    (lambda: L.DepthwiseConv2D(3, padding=-1), "padding=-1"),
    (lambda: L.SeparableConv2D(0, 3), "filters=0"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), "ZeroPadding2D expected `padding`"),
    (lambda: L.ReLU(max_value=-1.0), "max_value=-1.0"),
    (lambda: L.MaxPooling2D(2, padding=1), "padding=1"),
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


def test_every_kind_of_model_rebuilds_from_its_config_through_the_registry():
    """Sequential, functional and subclassed models alike: registered_class(name).from_config
    (what load_model does), then build_for on the input shapes returns the output shapes."""
    import numpy as np

    from lepton.core import Model, register

    @register
    class TwoHeads(Model):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.body = L.Dense(units, activation="relu")
            self.head = L.Dense(2)

        def call(self, x):
            return self.head(self.body(x))

    inputs = Input((6,))
    functional = Model(inputs, L.Dense(3)(L.Dense(5, activation="relu")(inputs)))
    sequential = Sequential([L.Dense(5, input_shape=(6,)), L.Dense(3)])
    subclassed = TwoHeads(units=7)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 6)).astype("float32"))
    for model, outputs in ((functional, 3), (sequential, 3), (subclassed, 2)):
        assert model.build_for([(6,)]) == [(2, outputs)]
        rebuilt = registered_class(type(model)._registered_name).from_config(model.get_config())
        assert type(rebuilt) is type(model)
        assert rebuilt.build_for([(6,)], ["float32"]) == [(2, outputs)]
        rebuilt.load_state_dict(model.state_dict())
        torch.testing.assert_close(rebuilt(x), model(x))
    assert (Model._registered_name, Sequential._registered_name) == ("Model", "Sequential")


def test_relu_matches_keras_semantics_and_conv_padding_is_symmetric():
    x = torch.linspace(-8, 8, 33)
    torch.testing.assert_close(L.ReLU(6.0)(x), x.clamp(0, 6))
    leaky = L.ReLU(max_value=5.0, negative_slope=0.5, threshold=1.0)(x)
    torch.testing.assert_close(leaky, torch.where(x >= 1, x, 0.5 * (x - 1)).clamp(max=5.0))
    inplace = L.ReLU(inplace=True)
    y = torch.full((4,), -1.0, requires_grad=True) * 1.0
    assert inplace(y).min() == 0 and y.min() == -1  # never in place while recording gradients
    with torch.no_grad():
        z = torch.full((4,), -1.0)
        inplace(z)
        assert z.min() == 0  # at inference it spares a new tensor
    # padding=1 with stride 2 pads both sides (torchvision), 'same' only the far side (Keras)
    image = torch.arange(36.0).reshape(1, 6, 6, 1)
    for padding, expected in ((1, 0.0), ("same", 7.0)):
        conv = L.Conv2D(1, 3, strides=2, padding=padding, use_bias=False)
        conv(image)
        with torch.no_grad():
            conv.kernel.zero_()
            conv.kernel[0, 0, 1, 1] = 1.0  # the centre tap: reads the pixel under it
        with torch.no_grad():
            assert float(conv(image)[0, 0, 0, 0]) == expected


def test_frozen_layers_keep_their_weights_and_batch_norm_statistics():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    inputs = Input((8, 8, 1))
    conv = L.Conv2D(8, 3, padding="same", use_bias=False)
    bn = L.BatchNormalization()
    features = L.GlobalAveragePooling2D()(L.ReLU()(bn(conv(inputs))))
    from lepton.core import Model

    model = Model(inputs, L.Dense(10, activation="softmax")(features))
    assert model.layers[0] is conv and model.get_layer(bn.name) is bn
    conv.trainable = False  # per-layer, applied at compile (as in Keras)
    bn.trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = conv.kernel.detach().clone(), bn.moving_mean.clone()
    model.fit(x[:256], data.target[:256], epochs=1, batch_size=64, verbose=0)
    assert torch.equal(conv.kernel, before[0]) and not conv.kernel.requires_grad
    assert torch.equal(bn.moving_mean, before[1])  # frozen BN ran in inference mode
    head = model.layers[-1]
    assert head.kernel.requires_grad
    text = model.summary(print_fn=lambda _t: None)
    assert "Trainable: 90" in text and "Non-trainable: 88" in text
    model.trainable = False  # the whole model, at once
    assert not any(p.requires_grad for p in model.parameters())
    assert "Trainable: 0" in model.summary(print_fn=lambda _t: None)
    model.trainable = True
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert all(p.requires_grad for p in model.parameters())
