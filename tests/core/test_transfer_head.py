"""The small-set transfer recipe's first stage: the new head fit to the frozen backbone's
features in one L-BFGS step answers as scikit-learn's LogisticRegression on those features."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURES, large_file

WEIGHTS = "models/mobilenet_v2_imagenet.safetensors"


def _breastmnist(size: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FIXTURES / "breastmnist.npz")
    images = torch.from_numpy(data["train_images"][:160].astype(np.float32) / 255)[:, None]
    images = torch.nn.functional.interpolate(images, size=size, mode="bilinear")
    x = images.repeat(1, 3, 1, 1).permute(0, 2, 3, 1).contiguous().numpy()
    return x, data["train_labels"].reshape(-1)[:160].astype(np.int64)


def test_lbfgs_head_reaches_the_logistic_regression_optimum_and_leaves_the_base_alone():
    from sklearn.linear_model import LogisticRegression

    from lepton.data.split import class_weights
    from lepton.train import run, transfer

    torch.manual_seed(0)
    x, y = _breastmnist(32)
    plan = transfer.TransferPlan("mobilenetv2", {"dropout": 0.2}, head="lbfgs", head_epochs=0,
                                 weights=str(large_file(WEIGHTS)))
    net, base = transfer.build(plan, (32, 32, 3), 2)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    prepared = SimpleNamespace(y_train=y, task="binary", train_read=lambda idx: x[idx])
    cw = class_weights(y, 2)
    assert cw is not None  # 27 % malignant: the sqrt-balanced weights are on
    transfer.fit_head(net, base, prepared, run._lbfgs(prepared, plan), cw, run._compile)

    features = base.predict(x, verbose=0)
    reference = LogisticRegression(C=1.0, class_weight=cw, max_iter=5000, tol=1e-10)
    expected = reference.fit(features, y).predict_proba(features)
    got = net.predict(x, verbose=0)
    assert np.abs(got - expected).max() < 5e-4
    assert got[:, 1].std() > 0.05  # a head that learned, not a constant
    for key, value in base.state_dict().items():  # the frozen base did not move
        assert torch.equal(value, before[key]), key


def test_small_image_sets_get_the_feature_then_top_blocks_plan(tmp_path):
    from PIL import Image

    from lepton.train import transfer

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("L", (28, 28), 40 * i).save(tmp_path / label / f"{i}.png")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    plan = transfer.transfer_plan("mobilenetv2", tmp_path, str(weights), None)
    assert plan is not None
    assert (plan.image_size, plan.head, plan.augment) == (224, "lbfgs", False)
    assert plan.fine_tune_from == "block_13_expand" and not plan.fine_tune_bn
    assert plan.warmup_epochs > 0  # Adam's first steps from a converged head are warmed up
    text = plan.describe()
    assert "L-BFGS" in text and "no augmentation" in text and "224x224" in text
    assert "warm-up" in text
    with pytest.raises(Exception, match="too small"):
        transfer.transfer_plan("mobilenetv2", tmp_path, str(weights), 16)
