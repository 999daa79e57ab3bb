"""fit/evaluate/predict behaviour: callbacks, weights, inputs of every kind, speed switches,
and resuming a run killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from lepton.core import Sequential, callbacks, layers, optimizers


def mlp(inputs=30, outputs=2, activation="softmax"):
    return Sequential([layers.Dense(16, activation="relu", input_shape=(inputs,)),
                       layers.Dense(outputs, activation=activation)])


def test_breast_cancer_with_validation_split_and_metrics(breast_cancer):
    x, y = breast_cancer
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "precision", "recall", "f1", "auc"])
    history = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["val_accuracy"] > 0.9 and logs["val_auc"] > 0.95
    assert 0.9 < logs["f1"] <= 1 and logs["precision"] > 0.85 and logs["recall"] > 0.85
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "accuracy", "precision", "recall", "f1", "auc"}


def test_binary_sigmoid_output_and_class_weight_shifts_predictions(breast_cancer):
    x, y = breast_cancer
    rates = []
    for weights in (None, {0: 20.0, 1: 1.0}):
        torch.manual_seed(0)
        model = mlp(outputs=1, activation="sigmoid")
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=5, batch_size=32, class_weight=weights, verbose=0)
        rates.append(float((model.predict(x) < 0.5).mean()))
    # weighting class 0 heavily makes the model predict class 0 more often
    assert rates[1] > rates[0]


def test_inputs_numpy_pandas_torch_and_dataloader_agree(breast_cancer):
    x, y = breast_cancer
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(30)])
    results = []
    for xs, ys in [(x, y), (frame, pd.Series(y)), (torch.from_numpy(x), torch.from_numpy(y))]:
        torch.manual_seed(0)
        model = mlp()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(xs, ys, epochs=2, batch_size=64, shuffle=False, verbose=0)
        results.append(model.predict(xs))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)
    np.testing.assert_allclose(results[0], results[2], rtol=1e-5)
    torch.manual_seed(0)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64)
    model.fit(loader, epochs=2, verbose=0)
    np.testing.assert_allclose(model.predict(x), results[0], rtol=1e-5)
    assert model.evaluate(loader, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))


def test_early_stopping_restores_best_weights_and_lr_callbacks(breast_cancer, tmp_path):
    x, y = breast_cancer
    model = mlp()
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    plateau = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0)
    log = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=60, validation_split=0.3, verbose=0,
                        callbacks=[stop, plateau, callbacks.CSVLogger(log)])
    epochs_run = len(history.history["loss"])
    assert epochs_run < 60 and stop.stopped_epoch is not None
    best = min(history.history["val_loss"])
    val = model.evaluate(x[-171:], y[-171:], verbose=0)[0]
    assert val == pytest.approx(best, rel=1e-4)
    assert min(history.history["learning_rate"]) < 0.05
    rows = log.read_text().splitlines()
    assert rows[0].startswith("epoch,loss,accuracy,val_loss") and len(rows) == epochs_run + 1


def test_learning_rate_scheduler_and_tensorboard(breast_cancer, tmp_path):
    x, y = breast_cancer
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    seen = []
    schedule = callbacks.LearningRateScheduler(
        lambda epoch, lr: seen.append(lr) or 0.1 / (epoch + 1))
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[schedule, callbacks.TensorBoard(tmp_path / "tb")])
    assert model.torch_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / 3)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_nan_loss_stops_and_names_the_step(breast_cancer):
    from lepton.errors import TrainingError

    x, y = breast_cancer
    x = x.copy()
    x[100] = np.nan  # the 4th batch of 32 (no shuffling) holds row 100
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(TrainingError, match=r"became nan at step 4 of epoch 1"):
        model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)


@pytest.mark.parametrize("options", [{"precision": "bf16"}, {"jit_compile": True}])
def test_speed_switches_train_correctly(mnist_small, options):
    x, y, x_test, y_test = mnist_small
    model = Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
                        layers.MaxPooling2D(2), layers.Flatten(),
                        layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], **options)
    model.fit(x[:2000], y[:2000], epochs=2, batch_size=32, verbose=0)
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.75  # a float32 run: 0.82


def test_progress_output_by_verbosity(breast_cancer, capsys):
    x, y = breast_cancer
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose="auto")  # not a TTY under pytest: one line per epoch
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "loss:" in lines[0]


RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, torch
    from sklearn.datasets import load_breast_cancer
    from lepton.core import Sequential, layers, callbacks
    torch.manual_seed(0)
    data = load_breast_cancer()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype("float32")
    y = data.target
    mode, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
    model = Sequential([layers.Dense(16, activation="relu", input_shape=(30,)),
                        layers.Dropout(0.2), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    class KillAfter(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if mode == "kill" and epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    cbs = [callbacks.ModelCheckpoint(ckpt), KillAfter()] if mode != "plain" else []
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=cbs,
                        resume=(mode == "resume"))
    np.save(out, np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
    print(len(history.history["loss"]))
""")


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}

    def run(mode):
        return subprocess.run([sys.executable, str(script), mode, str(tmp_path / "ckpt" / "model"),
                               str(tmp_path / f"{mode}.npy")], env=env, capture_output=True,
                              text=True, timeout=240)

    plain = run("plain")
    assert plain.returncode == 0, plain.stderr
    killed = run("kill")
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "ckpt" / "model.resume" / "state.json").exists()
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "5"  # the history holds all five epochs
    np.testing.assert_array_equal(np.load(tmp_path / "resume.npy"), np.load(tmp_path / "plain.npy"))


def test_lbfgs_through_fit_reaches_scikit_learns_optimum_and_runs_callbacks():
    """Full-batch L-BFGS is an optimizer the trainer steps with a closure, so callbacks and
    validation apply; with weight_decay = 1 / (C n) it solves scikit-learn's L2 problem."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    data = load_wine()
    x = StandardScaler().fit_transform(data.data).astype("float32")
    y = data.target
    reference = LogisticRegression(C=1.0, max_iter=2000, tol=1e-10).fit(x, y)

    class Seen(callbacks.Callback):
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((epoch, dict(logs)))

    seen = Seen()
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(13,))])
    model.compile(optimizer=optimizers.LBFGS(max_iter=500, tolerance_grad=1e-9,
                                             weight_decay=1 / len(x)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], precision="32")
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0,
                        validation_data=(x, y), callbacks=[seen])
    assert [epoch for epoch, _ in seen.epochs] == [0]
    logs = seen.epochs[0][1]
    assert logs["accuracy"] == 1.0 and logs["val_accuracy"] == 1.0
    assert history.history["val_loss"] == [logs["val_loss"]]
    np.testing.assert_allclose(model.predict(x), reference.predict_proba(x), atol=1e-3)


def test_lbfgs_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path):
    """The curvature history is part of the resume state: two epochs, then a resumed third,
    give the weights of three epochs in a row."""
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")

    def run(epochs, resume, ckpt):
        torch.manual_seed(0)
        model = Sequential([layers.Dense(3, activation="softmax", input_shape=(13,))])
        model.compile(optimizer=optimizers.LBFGS(max_iter=5, weight_decay=1e-3),
                      loss="sparse_categorical_crossentropy", precision="32")
        model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[callbacks.ModelCheckpoint(ckpt)], resume=resume)
        return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])

    straight = run(3, False, tmp_path / "a" / "model")
    run(2, False, tmp_path / "b" / "model")
    assert (tmp_path / "b" / "model.resume" / "state.safetensors").exists()
    np.testing.assert_array_equal(run(3, True, tmp_path / "b" / "model"), straight)
    assert not np.array_equal(run(2, False, tmp_path / "c" / "model"), straight)
