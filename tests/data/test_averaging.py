"""Weight averaging (EMA) for small image sets: what validation sees and what is kept."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from lepton.train.auto import auto_plan
from lepton.train.averaging import WeightAverage
from lepton.train.presets import cnn
from lepton.train.run import _compile


def test_validation_and_the_kept_model_use_the_averaged_weights():
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, y_train, x_val, y_val = x[:400], y[:400], x[1000:1200], y[1000:1200]
    torch.manual_seed(0)
    net = cnn((8, 8, 1), 10, "multiclass", {"filters": [8, 16], "dropout": 0.0})
    _compile(net, "multiclass", 2e-3, weight_decay=0.05)
    steps = -(-len(y_train) // 32)
    average = WeightAverage(steps, decay=0.9)
    history = net.fit(x_train, y_train, batch_size=32, epochs=3, callbacks=[average],
                      validation_data=(x_val, y_val), verbose=0, seed=0)

    kept = net.state_dict()
    for key, value in average.average.items():
        torch.testing.assert_close(kept[key], value)
    assert average.live is not None  # the last step's own weights, set aside
    assert any(not torch.equal(average.live[k], kept[k]) for k in kept
               if kept[k].is_floating_point())
    val = net.evaluate(x_val, y_val, verbose=0, return_dict=True)
    assert abs(val["loss"] - history.history["val_loss"][-1]) < 1e-5


def test_auto_averages_and_decays_only_for_small_image_sets():
    small, large = auto_plan("image", 546), auto_plan("image", 60000)
    assert (small.average, small.schedule, small.weight_decay) == (0.995, "cosine", 0.1)
    assert "weight EMA 0.995" in small.describe()
    assert (large.average, large.schedule, large.weight_decay) == (0.0, "plateau", 0.0)
    assert auto_plan("tabular", 546).average == 0.0
