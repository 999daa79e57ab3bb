"""Strategy: device placement, this process's data, who writes and torch's thread count, and
that a strategy for several processes plugs in by subclassing it."""

from __future__ import annotations

import math

import pytest
import torch

from lepton.core import Sequential, callbacks, layers, optimizers
from lepton.core.data_adapter import batches
from lepton.core.device import module_device
from lepton.core.training.strategy import Strategy
from lepton.errors import ConfigError


def _model():
    return Sequential([layers.Dense(16, activation="relu", input_shape=(30,)),
                       layers.Dense(2, activation="softmax")])


def test_single_process_writes_places_and_keeps_all_the_data(breast_cancer):
    x, y = breast_cancer
    strategy = Strategy("cpu")
    assert (strategy.is_writer, strategy.rank, strategy.world_size) == (True, 0, 1)
    model = _model()
    strategy.place(model)
    assert module_device(model) == torch.device("cpu")
    xs, ys, w = [torch.from_numpy(x)], [torch.from_numpy(y)], None
    moved = strategy.to_device(xs, ys, w)
    assert moved[0][0] is xs[0] and moved[1][0] is ys[0] and moved[2] is None
    index = torch.arange(len(x))
    seen = torch.cat([b[0] for b in strategy.shard_arrays([index], 64, True,
                                                          torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(len(x)))  # every row once, shuffled
    assert seen.tolist() != list(range(len(x)))
    stream = [(x[:10], y[:10])]
    assert strategy.shard_stream(stream) is stream


def test_threads_are_set_by_the_strategy_of_each_run(breast_cancer):
    x, y = breast_cancer
    before = torch.get_num_threads()
    try:
        model = _model()
        model.compile(loss="sparse_categorical_crossentropy", strategy=Strategy(threads=1))
        model.fit(x, y, epochs=1, verbose=0)
        assert torch.get_num_threads() == 1
        other = _model()
        other.compile(loss="sparse_categorical_crossentropy")  # default: LEPTON_NUM_THREADS
        other.predict(x[:5])
        assert torch.get_num_threads() == Strategy().setup_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_bad_threads_and_device_with_strategy_are_refused():
    with pytest.raises(ConfigError, match=r"threads.*Received: threads=0"):
        Strategy(threads=0)
    with pytest.raises(ConfigError, match="a device or a strategy, not both"):
        _model().compile(loss="mse", device="cpu", strategy=Strategy())


class SecondOfTwo(Strategy):
    """What a distributed strategy overrides, as rank 1 of 2 in one process."""

    rank, world_size = 1, 2

    def shard_arrays(self, tensors, batch_size, shuffle, generator=None):
        order = torch.randperm(len(tensors[0]), generator=generator)[self.rank::self.world_size]
        return batches([t[order] for t in tensors], batch_size, shuffle=False)


def test_a_subclass_shards_the_data_and_does_not_write(breast_cancer, tmp_path):
    x, y = breast_cancer

    class Steps(callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            self.count += 1

    steps = Steps()
    model = _model()
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], strategy=SecondOfTwo())
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[
        steps, callbacks.CSVLogger(tmp_path / "log.csv"),
        callbacks.ModelCheckpoint(tmp_path / "ckpt" / "model")])
    assert steps.count == 2 * math.ceil(len(x) / 2 / 32)  # half the rows per epoch
    assert not list(tmp_path.iterdir())  # only the writer saves logs and checkpoints
    assert model.evaluate(x, y, verbose=0)[1] > 0.9  # it trained on its half


@pytest.mark.gpu
def test_cuda_strategy_places_the_model_and_batches(breast_cancer):
    x, y = breast_cancer
    strategy = Strategy("cuda")
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], strategy=strategy, precision="32")
    model.fit(x, y, epochs=3, verbose=0)
    assert module_device(model).type == "cuda"
    xs, ys, w = strategy.to_device([torch.from_numpy(x)], [torch.from_numpy(y)], None)
    assert xs[0].device.type == ys[0].device.type == "cuda" and w is None
    assert model.evaluate(x, y, verbose=0)[1] > 0.95
