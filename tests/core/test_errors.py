"""Bad input never wins: each mistake gets a LeptonError naming what, expected, received, fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lepton.core import Sequential, layers
from lepton.core.utils import to_categorical
from lepton.errors import (
    ConfigError,
    LabelError,
    LeptonError,
    LeptonWarning,
    NotCompiledError,
    ShapeError,
)


def cnn():
    model = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)),
                        layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_wrong_input_rank(mnist_small):
    x, y, _, _ = mnist_small
    with pytest.raises(ShapeError) as info:
        cnn().fit(x[:64, ..., 0], y[:64], verbose=0)
    message = str(info.value)
    assert "(N, 28, 28, 1) rank 4" in message and "(64, 28, 28) rank 3" in message
    assert "x[..., None]" in message


def test_channels_first_input_gets_the_transpose_fix(mnist_small):
    x, y, _, _ = mnist_small
    with pytest.raises(ShapeError, match=r"channels-last: use x.transpose\(0, 2, 3, 1\)"):
        cnn().predict(x[:8].transpose(0, 3, 1, 2))


def test_wrong_channel_count(mnist_small):
    x, y, _, _ = mnist_small
    rgb = np.repeat(x[:16], 3, axis=-1)
    with pytest.raises(ShapeError, match="built for 1 channel"):
        cnn().evaluate(rgb, y[:16], verbose=0)


def test_one_hot_labels_with_sparse_loss(mnist_small):
    x, y, _, _ = mnist_small
    with pytest.raises(LabelError, match="look one-hot: use loss='categorical_crossentropy'"):
        cnn().fit(x[:64], to_categorical(y[:64], 10), verbose=0)


def test_class_indices_with_categorical_loss(mnist_small):
    x, y, _, _ = mnist_small
    model = cnn()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(LabelError, match="to_categorical"):
        model.fit(x[:64], y[:64], verbose=0)


def test_label_out_of_range_and_label_dtype(mnist_small):
    x, y, _, _ = mnist_small
    with pytest.raises(LabelError, match="0 <= y < 10"):
        cnn().fit(x[:64], y[:64] + 5, verbose=0)
    with pytest.raises(LeptonError, match="must be numeric"):
        cnn().fit(x[:4], np.array(["a", "b", "c", "d"]), verbose=0)


def test_binary_labels_outside_zero_one(breast_cancer):
    x, y = breast_cancer
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(30,))])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(LabelError, match=r"labels in \[0, 1\]"):
        model.fit(x, y * 2, verbose=0)


def test_mismatched_sample_counts(breast_cancer):
    x, y = breast_cancer
    model = Sequential([layers.Dense(2, activation="softmax", input_shape=(30,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match="different numbers of samples"):
        model.fit(x, y[:-1], verbose=0)


@pytest.mark.parametrize(("kwargs", "known"), [
    ({"optimizer": "adamm", "loss": "mse"}, "'adam', 'adamw', 'lbfgs', 'rmsprop', 'sgd'"),
    ({"optimizer": "adam", "loss": "crossentropy"}, "'binary_crossentropy'"),
    ({"optimizer": "adam", "loss": "mse", "metrics": ["acuracy"]}, "'accuracy'"),
])
def test_unknown_strings_list_the_known_ones(kwargs, known):
    model = Sequential([layers.Dense(1, input_shape=(3,))])
    with pytest.raises(ConfigError) as info:
        model.compile(**kwargs)
    assert known in str(info.value) and "Received:" in str(info.value)


def test_fit_before_compile(breast_cancer):
    x, y = breast_cancer
    model = Sequential([layers.Dense(2, input_shape=(30,))])
    with pytest.raises(NotCompiledError, match=r"call model.compile\("):
        model.fit(x, y, verbose=0)


def test_softmax_output_with_from_logits_warns(breast_cancer):
    from lepton.core.losses import SparseCategoricalCrossentropy

    x, y = breast_cancer
    model = Sequential([layers.Dense(2, activation="softmax", input_shape=(30,))])
    model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, verbose=0)
    messages = [str(w.message) for w in caught if issubclass(w.category, LeptonWarning)]
    assert messages and "from_logits=True" in messages[0] and "softmax" in messages[0]


def test_bad_fit_arguments(breast_cancer):
    x, y = breast_cancer
    model = Sequential([layers.Dense(2, activation="softmax", input_shape=(30,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="batch_size=0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ConfigError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ConfigError, match="class_weight"):
        model.fit(x, y, class_weight=[1, 2], verbose=0)


def test_errors_are_builtin_subclasses_too():
    assert issubclass(ShapeError, ValueError) and issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        layers.Dense(0)
