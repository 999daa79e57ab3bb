"""Distributed training on torch.distributed (gloo, 2 processes on 127.0.0.1), launched for
real through torch.distributed.run: the same parameters as one process with the same global
batch and sample order (within 1e-6, as PyTorch's ``_test_DDP_niter`` checks), the same
metrics, SyncBatchNorm, gradient accumulation, rank-0-only files, resume onto another number
of processes, failures that end the job, and the bad inputs.

This file is also the workers' script: ``python -m lepton.train.launch --nproc 2
tests/core/test_distributed.py SCENARIO OUT`` runs the ``__main__`` part below in each rank.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_VAL, BATCH, SEED = 203, 101, 32, 7  # uneven: last batch 11 rows, 6 + 5 per rank
BN_ROWS = 128  # SyncBatchNorm: K = 4 steps (its float32 statistics make longer runs drift)


def _data():
    from lepton.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    x = (x[:N_TRAIN, ..., None] / 255.0).astype("float32")
    xv = (xt[:N_VAL, ..., None] / 255.0).astype("float32")
    return x, np.eye(10, dtype="float32")[y[:N_TRAIN]], xv, np.eye(10, dtype="float32")[
        yt[:N_VAL]]


def _cnn(batchnorm: bool = False):
    """The SPEC section 1 CNN (with a BatchNormalization for the SyncBatchNorm check)."""
    from lepton.core import Sequential, layers

    torch.manual_seed(0)
    stack = [layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
             layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dense(64, activation="relu")]
    if batchnorm:  # on (rows, 64): torch's one-process kernel sums 32 values, exactly enough
        stack.append(layers.BatchNormalization(momentum=0.9))
    stack.append(layers.Dense(10, activation="softmax"))
    return Sequential(stack)


def _compile(model, strategy=None):
    from lepton.core import optimizers

    model.compile(optimizer=optimizers.SGD(learning_rate=0.02, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"], strategy=strategy)
    return model


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save_state(model, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _state(model).items()}, str(path))


def _launch(*args: str, timeout: float = 240, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """``python -m lepton.train.launch --nproc 2 <this file> args``; the subprocess timeout
    is the guard against a hang."""
    full_env = {k: v for k, v in os.environ.items() if k != "LEPTON_NUM_THREADS"}  # the default
    full_env.update({"LEPTON_DIST_TIMEOUT": "30", "PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "lepton.train.launch", "--nproc", "2",
                           __file__, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


# -- the workers -------------------------------------------------------------------------------
def _worker(scenario: str, out: Path) -> None:
    from lepton.core import callbacks
    from lepton.core.training.distributed import DistributedStrategy
    from lepton.errors import ConfigError

    rank = int(os.environ["RANK"])
    x, y, xv, yv = _data()
    report: dict = {}
    if scenario == "main":
        # 1. a script unchanged from one process: compile picks the distributed strategy
        model = _compile(_cnn())
        report["strategy"] = type(model.compiled.strategy).__name__
        try:
            model.fit(x, y, batch_size=33, epochs=1, verbose=0)
        except ConfigError as exc:
            report["indivisible"] = str(exc)
        class FirstEpoch(callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0 and rank == 0:
                    _save_state(self.model, out / "cnn1.safetensors")

        history = model.fit(x, y, batch_size=BATCH, epochs=2, seed=SEED, verbose=0,
                            validation_data=(xv, yv),
                            callbacks=[callbacks.ModelCheckpoint(out / "ckpt" / "cnn"),
                                       callbacks.CSVLogger(out / "log.csv"), FirstEpoch()])
        report["threads"] = torch.get_num_threads()
        report["history"] = history.history
        report["evaluate"] = model.evaluate(xv, yv, verbose=0, return_dict=True)
        if rank == 0:
            _save_state(model, out / "cnn.safetensors")
        # 2. SyncBatchNorm: batch statistics over the global batch
        bn = _compile(_cnn(batchnorm=True), DistributedStrategy(threads=1, sync_batchnorm=True))
        report["bn_history"] = bn.fit(x[:BN_ROWS], y[:BN_ROWS], batch_size=BATCH, epochs=1,
                                      seed=SEED, verbose=0).history
        if rank == 0:
            _save_state(bn, out / "bn.safetensors")
        # 3. gradient accumulation: 2 x 16 rows per step, as one process's batch of 32
        acc = _compile(_cnn(), DistributedStrategy(threads=1))
        acc.fit(x, y, batch_size=BATCH // 2, accumulate=2, epochs=1, seed=SEED, verbose=0)
        if rank == 0:
            _save_state(acc, out / "acc.safetensors")
    elif scenario == "die":
        class Die(callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if rank == 1 and batch == 2:
                    os.kill(os.getpid(), 9)

        _compile(_cnn()).fit(x, y, batch_size=BATCH, epochs=3, verbose=0, callbacks=[Die()])
    elif scenario == "unused":
        from lepton.core import Model, layers

        class Branchy(Model):
            """Rank 1 skips a layer: its weights get no gradient there."""

            def __init__(self):
                super().__init__()
                self.flat, self.a = layers.Flatten(), layers.Dense(16, activation="relu")
                self.b, self.out = layers.Dense(16, activation="relu"), layers.Dense(10)

            def call(self, inputs):
                h = self.a(self.flat(inputs))
                return self.out(h if rank == 1 and self.built_once else self.b(h))

        model = Branchy()
        model.built_once = False
        model.compile(optimizer="sgd", loss="categorical_crossentropy",
                      strategy=DistributedStrategy(threads=1))
        model.build_for_sample([torch.from_numpy(x[:2])])
        model.built_once = True
        model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    (out / f"rank{rank}.json").write_text(json.dumps(report))


# -- the single-process references ---------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    """One process, batch 32, the same seed (so the same order): states after epochs 1-3."""
    from lepton.core import callbacks
    from lepton.core.training.strategy import Strategy

    x, y, xv, yv = _data()
    before = torch.get_num_threads()
    states: list[dict] = []

    class Snapshot(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            states.append(_state(self.model))

    model = _compile(_cnn(), Strategy(threads=1))
    history = model.fit(x, y, batch_size=BATCH, epochs=3, seed=SEED, verbose=0,
                        validation_data=(xv, yv), callbacks=[Snapshot()]).history
    model.load_state_dict(states[1])
    evaluated = model.evaluate(xv, yv, verbose=0, return_dict=True)
    predictions = np.asarray(model.predict(xv))
    bn = _compile(_cnn(batchnorm=True), Strategy(threads=1))
    bn.fit(x[:BN_ROWS], y[:BN_ROWS], batch_size=BATCH, epochs=1, seed=SEED, verbose=0)
    torch.set_num_threads(before)
    return {"states": states, "history": history, "evaluate": evaluated,
            "predictions": predictions, "bn": _state(bn)}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    done = _launch("main", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def _assert_same_params(path: Path, expected: dict[str, torch.Tensor], rel: float = 1e-6
                        ) -> None:
    from safetensors.torch import load_file

    got = load_file(str(path))
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        if want.is_floating_point():
            scale = max(float(want.norm()), 1e-12)
            assert float((got[key] - want).norm()) / scale <= rel, key
        else:
            assert torch.equal(got[key], want), key


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_step_exactly_like_one_with_the_global_batch(two_ranks, reference):
    out, (rank0, rank1) = two_ranks
    assert rank0["strategy"] == rank1["strategy"] == "DistributedStrategy"
    assert rank0["threads"] == rank1["threads"] == 1  # 2 usable cores / 2 processes
    _assert_same_params(out / "cnn1.safetensors", reference["states"][0])  # K = 7 steps
    _assert_same_params(out / "cnn.safetensors", reference["states"][1], rel=1e-5)  # 14
    for key, values in rank0["history"].items():  # reduced: the same on every rank
        assert values == rank1["history"][key]
        np.testing.assert_allclose(values, reference["history"][key][:2], rtol=1e-6, atol=1e-7,
                                   err_msg=key)
    # exact validation: all 101 rows counted once over uneven shards (51 + 50)
    for key, value in reference["evaluate"].items():
        assert rank0["evaluate"][key] == rank1["evaluate"][key]
        assert rank0["evaluate"][key] == pytest.approx(value, rel=1e-6, abs=1e-7)
    assert rank0["history"]["val_accuracy"][-1] == pytest.approx(
        reference["history"]["val_accuracy"][1], abs=0.5 / N_VAL)


@pytest.mark.slow
def test_sync_batchnorm_and_accumulation_match_one_process(two_ranks, reference):
    out, (rank0, _) = two_ranks
    _assert_same_params(out / "bn.safetensors", reference["bn"], rel=2e-6)  # K = 4 steps
    _assert_same_params(out / "acc.safetensors", reference["states"][0])


@pytest.mark.slow
def test_rank_zero_alone_writes_and_its_artifact_predicts_like_one_process(two_ranks,
                                                                          reference):
    from lepton.core import load_model

    out, (rank0, _) = two_ranks
    assert "divisible by it" in rank0["indivisible"] and "batch_size=33" in rank0["indivisible"]
    rows = (out / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 epochs: written once, by rank 0
    loaded = load_model(out / "ckpt" / "cnn")
    np.testing.assert_allclose(np.asarray(loaded.predict(_data()[2])), reference["predictions"],
                               atol=1e-5)


@pytest.mark.slow
def test_resume_onto_one_process_continues_the_two_process_run(two_ranks, reference, tmp_path):
    from lepton.core import callbacks
    from lepton.core.training.strategy import Strategy

    out, (rank0, _) = two_ranks
    shutil.copytree(out / "ckpt", tmp_path / "ckpt")
    x, y, xv, yv = _data()
    model = _compile(_cnn(), Strategy(threads=1))
    history = model.fit(x, y, batch_size=BATCH, epochs=3, seed=SEED, verbose=0, resume=True,
                        validation_data=(xv, yv),
                        callbacks=[callbacks.ModelCheckpoint(tmp_path / "ckpt" / "cnn")])
    assert len(history.history["loss"]) == 3  # two epochs restored, the third run here
    assert history.history["loss"][:2] == pytest.approx(rank0["history"]["loss"], rel=1e-9)
    for key, want in reference["states"][2].items():
        got = model.state_dict()[key]
        assert float((got - want).norm()) <= 1e-5 * max(float(want.norm()), 1e-12), key


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_its_rank(tmp_path):
    done = _launch("die", str(tmp_path))
    assert done.returncode == 2
    assert "rank 1 of 2 ended with killed by signal SIGKILL" in done.stderr


@pytest.mark.slow
def test_parameters_without_gradient_on_one_rank_fail_clearly(tmp_path):
    done = _launch("unused", str(tmp_path))
    assert done.returncode == 2
    assert "got no gradient" in done.stderr and "find_unused_parameters=True" in done.stderr


def _main(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from lepton.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def test_bad_launch_counts_are_one_line_errors():
    code, err = _main("train", "--data", "x.csv", "--nproc", "0")
    assert code == 2 and "--nproc must be an integer >= 1" in err and "Traceback" not in err
    code, err = _main("train", "--data", "x.csv", "--nproc", "2", "--nnodes", "2",
                      "--node-rank", "2")
    assert code == 2 and "--node-rank must be below --nnodes" in err


def test_strategy_needs_torchrun_and_nccl_needs_cuda(monkeypatch):
    from lepton.core.training.distributed import DistributedStrategy, default_strategy
    from lepton.core.training.strategy import Strategy
    from lepton.errors import ConfigError

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert type(default_strategy("cpu")) is Strategy  # a plain script: one process
    with pytest.raises(ConfigError, match="needs the environment torchrun sets"):
        DistributedStrategy()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="NCCL backend needs CUDA"):
            DistributedStrategy(backend="nccl")


def test_an_unreachable_master_is_a_clear_error_within_the_timeout(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "LEPTON_NUM_THREADS"}
    env.update({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port), "LEPTON_DIST_TIMEOUT": "3", "PYTHONPATH": str(ROOT)})
    code = ("from lepton.core.training.distributed import DistributedStrategy\n"
            "from lepton.errors import TrainingError\n"
            "try:\n    DistributedStrategy()\nexcept TrainingError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert "could not join the training job at 127.0.0.1" in done.stdout, done.stderr[-2000:]
    assert "within 3 s" in done.stdout


@pytest.mark.slow
def test_lepton_train_nproc_2_writes_one_artifact_and_one_registry_version(tmp_path,
                                                                          breast_cancer):
    import pandas as pd

    from lepton.artifact import open_runtime

    x, y = breast_cancer
    frame = pd.DataFrame(x[:, :8], columns=[f"f{i}" for i in range(8)]).assign(label=y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    env = {k: v for k, v in os.environ.items() if k != "LEPTON_NUM_THREADS"}
    env.update({"LEPTON_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT),
                "LEPTON_DIST_TIMEOUT": "30"})
    done = subprocess.run([sys.executable, "-m", "lepton", "train", "--data", "t.csv",
                           "--target", "label", "--model", "mlp-small", "--epochs", "2",
                           "--out", "model", "--nproc", "2", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert sum(line.startswith("model:") for line in lines) == 1  # printed by rank 0 alone
    assert "registered: model:1" in lines
    runtime = open_runtime(tmp_path / "model")
    assert runtime is not None


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _worker(sys.argv[1], Path(sys.argv[2]))
