"""The documented Lepton Core examples (SPEC §1) run as written, on real MNIST / SMS data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FIXTURES


def test_first_example_dense_straight_after_pooling(mnist_small, capsys):
    import lepton_core as lc
    from lepton_core.layers import Activation, Conv2D, Dense, MaxPooling2D

    x, labels, _, _ = mnist_small
    x_train, y_train = x[:500], np.eye(10, dtype="float32")[labels[:500]]

    model = lc.Sequential()
    model.add(Conv2D(32, 3, activation='relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dense(64))
    model.add(Activation('relu'))
    model.add(Dense(10))
    model.add(Activation('softmax'))
    model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
    loss, accuracy = model.evaluate(x_train, y_train)     # x: (N, 28, 28, 1), y: one-hot (N, 10)

    assert 2.0 < loss < 2.7  # untrained 10-way classifier: about ln(10)
    assert 0.0 <= accuracy <= 0.3
    text = model.summary()
    assert "flattens (13, 13, 32) -> 5408" in text
    assert "(None, 10)" in text
    assert model.predict(x_train[:4]).shape == (4, 10)


def test_dense_on_sequences_acts_on_last_axis():
    import torch

    from lepton_core.layers import Dense

    layer = Dense(5)
    out = layer(torch.zeros(2, 7, 3))
    assert tuple(out.shape) == (2, 7, 5)


@pytest.mark.slow
def test_second_example_trains_to_high_accuracy(mnist_small):
    from lepton_core.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from lepton_core.models import Sequential
    from lepton_core.optimizers import Adam

    x, labels, x_test, test_labels = mnist_small
    onehot = np.eye(10, dtype="float32")
    x_train, y_train = x[:2500], onehot[labels[:2500]]
    x_val, y_val = x[2500:], onehot[labels[2500:]]
    y_test = onehot[test_labels]

    model = Sequential([
        Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
        MaxPooling2D((2, 2)),
        Flatten(),
        Dense(64, activation='relu'),
        Dense(10, activation='softmax'),
    ])
    model.compile(optimizer=Adam(), loss='categorical_crossentropy', metrics=['accuracy'])
    history = model.fit(x_train, y_train, epochs=3, batch_size=32, validation_data=(x_val, y_val),
                        verbose=0)
    predictions = model.predict(x_test)
    accuracy = model.evaluate(x_test, y_test, verbose=2)

    assert predictions.shape == (1000, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-4)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                   "learning_rate"}
    assert accuracy[1] > 0.9
    assert (predictions.argmax(1) == test_labels).mean() == pytest.approx(accuracy[1])


def test_subclassed_cnn_model(mnist_small):
    from lepton_core.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from lepton_core.models import Model

    class CNNModel(Model):
        def __init__(self, num_classes=10):
            super().__init__()
            self.conv1 = Conv2D(32, 3, activation="relu")
            self.pool = MaxPooling2D(2)
            self.flatten = Flatten()
            self.d1 = Dense(64, activation="relu")
            self.d2 = Dense(num_classes, activation="softmax")

        def call(self, inputs):
            x = self.conv1(inputs)
            x = self.pool(x)
            x = self.flatten(x)
            x = self.d1(x)
            return self.d2(x)

    x, labels, x_test, test_labels = mnist_small
    model = CNNModel()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, labels, epochs=2, batch_size=64, verbose=0)
    loss, accuracy = model.evaluate(x_test, test_labels, verbose=0)
    assert accuracy > 0.88


def _sms_tokens(max_len: int = 40, vocab: int = 3000):
    import collections
    import re

    rows = (FIXTURES / "sms_spam.tsv").read_text(encoding="utf-8").splitlines()[1:]
    labels, texts = zip(*(r.split("\t", 1) for r in rows if "\t" in r))
    words = [re.findall(r"[a-z0-9£$!]+", t.lower()) for t in texts]
    counts = collections.Counter(w for ws in words for w in ws)
    index = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(vocab - 2))}
    ids = np.zeros((len(words), max_len), dtype="int64")
    for row, ws in enumerate(words):
        seq = [index.get(w, 1) for w in ws][:max_len]
        ids[row, max_len - len(seq):] = seq  # pre-padding: the last step is a real token
    y = np.array([1 if label == "spam" else 0 for label in labels])
    return ids, y


@pytest.mark.slow
def test_text_model_bidirectional_lstm_from_logits():
    from lepton_core import Sequential
    from lepton_core.layers import LSTM, Bidirectional, Dense, Embedding
    from lepton_core.losses import SparseCategoricalCrossentropy

    ids, y = _sms_tokens()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:2000], order[4000:]
    model = Sequential([
        Embedding(3000, 32),
        Bidirectional(LSTM(32)),
        Dense(2),
    ])
    model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(ids[train], y[train], epochs=3, batch_size=64, verbose=0)
    loss, accuracy = model.evaluate(ids[test], y[test], verbose=0)
    majority = 1 - y[test].mean()
    assert accuracy > max(0.93, majority + 0.05)
