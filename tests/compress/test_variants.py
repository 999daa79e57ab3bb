"""quantize / prune / distill / the ONNX Runtime runtime, on the demo CNN and small models."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import lepton.core.layers as L
from lepton.artifact.manifest import read_manifest
from lepton.artifact.runtimes import open_runtime
from lepton.compress import distill, export, prune, quantize
from lepton.compress.distillation import half_student, kd_loss, logits
from lepton.compress.int8 import choose_method
from lepton.compress.measure import metric, outputs_of
from lepton.compress.pruning import masks, structured
from lepton.core import load_model
from lepton.core.models import Model, Sequential
from lepton.errors import ArtifactError, ConfigError, DataError, ShapeError


@pytest.fixture(scope="module")
def digits(mnist_small):
    x, y, x_test, y_test = mnist_small
    return x, y, x_test, y_test


def accuracy(path, x, y, runtime=None):
    return metric(outputs_of(open_runtime(path, runtime=runtime), [x]), y)[0]


def test_onnx_export_artifact_runs_on_both_runtimes(demo_artifact, digits, tmp_path):
    _, _, x, y = digits
    path = export(demo_artifact, "onnx", tmp_path / "onnx")
    manifest = read_manifest(path)
    assert manifest.runtime["name"] == "onnxruntime"
    assert "dynamo=False" in manifest.runtime["exporter"]
    assert manifest.variant["transforms"][0]["settings"]["batch_axis"] == "symbolic"
    assert manifest.metadata["preprocessing"]  # preprocessing stays in the JSON
    assert manifest.lineage["parent"] == str(demo_artifact)
    ort_rt = open_runtime(path, threads=1)
    assert ort_rt.platform == "onnxruntime"
    a, b = outputs_of(ort_rt, [x]), outputs_of(open_runtime(path, runtime="torch"), [x])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="pickle"):
        export(demo_artifact, "torch.export", tmp_path / "pt2")


def test_static_int8_cnn_is_small_and_accurate(demo_artifact, digits, tmp_path):
    x_train, _, x, y = digits
    assert choose_method(load_model(demo_artifact)) == "static"
    fp32 = export(demo_artifact, "onnx", tmp_path / "fp32")
    int8 = quantize(demo_artifact, tmp_path / "int8", calibration=x_train[:512])
    manifest = read_manifest(int8)
    assert manifest.variant["name"] == "int8-static"
    assert "weights.safetensors" not in manifest.document["checksums"]
    sizes = [(p / "model.onnx").stat().st_size for p in (fp32, int8)]
    assert sizes[1] <= 0.30 * sizes[0]
    assert accuracy(fp32, x, y) - accuracy(int8, x, y) <= 0.3
    with pytest.raises(ArtifactError, match="torch runtime"):
        open_runtime(int8, runtime="torch")


def test_dynamic_on_a_cnn_never_makes_conv_integer(demo_artifact, tmp_path):
    path = quantize(demo_artifact, tmp_path / "dyn", method="dynamic")
    ops = {n.op_type for n in onnx.load(str(path / "model.onnx")).graph.node}
    assert "ConvInteger" not in ops and "Conv" in ops
    settings = read_manifest(path).variant["transforms"][0]["settings"]
    assert "ConvInteger" in settings["skipped"]
    open_runtime(path).run([{"input_1": np.zeros((2, 28, 28, 1), np.float32)}])


def test_mlp_and_text_models_choose_dynamic():
    mlp = Sequential([L.Dense(32, activation="relu", input_shape=(20,)), L.Dense(3)])
    text = Sequential([L.Embedding(30, 4, input_shape=(6,)), L.LSTM(4), L.Dense(2)])
    assert choose_method(mlp) == choose_method(text) == "dynamic"


@pytest.mark.parametrize("bad, match", [
    (np.zeros((8, 28, 28), np.float32), "wrong shape"),
    (np.array([["a"] * 784] * 2).reshape(2, 28, 28, 1), "not numeric"),
    ([np.zeros((4, 28, 28, 1), np.float32)] * 2, "number of inputs"),
])
def test_bad_calibration_data_is_refused(demo_artifact, tmp_path, bad, match):
    with pytest.raises(ShapeError, match=match):
        quantize(demo_artifact, tmp_path / "q", method="static", calibration=bad)


def test_structured_pruning_removes_channels_and_reloads(demo_artifact, digits, tmp_path):
    x_train, y_train, x, y = digits
    path = prune(demo_artifact, 0.5, path=tmp_path / "p", fine_tune=(x_train, y_train), epochs=1)
    config = read_manifest(path).document["model"]["config"]["layers"]
    widths = {c["class_name"]: c["config"].get("filters", c["config"].get("units"))
              for c in config if c["class_name"] in ("Conv2D",)}
    assert widths == {"Conv2D": 16}
    assert [c["config"]["units"] for c in config if c["class_name"] == "Dense"] == [32, 10]
    reloaded = load_model(path)
    assert reloaded.count_params() < 0.3 * load_model(demo_artifact).count_params()
    assert accuracy(demo_artifact, x, y) - accuracy(path, x, y) <= 3.0  # 1 short epoch
    assert read_manifest(path).variant["name"] == "pruned-50"


def test_pruning_without_fine_tune_keeps_the_kept_units_exactly():
    x = L.Input((10,))
    h = L.Dense(8, activation="relu", name="h")(x)
    model = Model(x, L.Dense(3, name="out")(h))
    narrow = structured(model, 0.5)
    assert narrow.graph_layers["h"].kernel.shape == (4, 10)
    assert narrow.graph_layers["out"].kernel.shape == (3, 4)
    keep = torch.topk(model.graph_layers["h"].kernel.abs().sum(1), 4).indices.sort().values
    torch.testing.assert_close(narrow.graph_layers["h"].kernel,
                               model.graph_layers["h"].kernel[keep])


def test_layers_feeding_add_or_outputs_are_not_narrowed():
    x = L.Input((6,))
    a, b = L.Dense(4, name="a")(x), L.Dense(4, name="b")(x)
    model = Model(x, L.Dense(2, name="out")(L.Dense(8, name="c")(L.Add()([a, b]))))
    narrow = structured(model, 0.5)
    assert narrow.graph_layers["a"].kernel.shape[0] == 4
    assert narrow.graph_layers["c"].kernel.shape[0] == 4


@pytest.mark.parametrize("amount", [1.5, 0, -0.1, True, "half"])
def test_bad_pruning_amount(demo_artifact, tmp_path, amount):
    with pytest.raises(ConfigError, match="pruning amount"):
        prune(demo_artifact, amount, path=tmp_path / "p")


def test_subclassed_models_say_to_use_masks():
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="structured=False"):
        structured(net, 0.5)
    masked = masks(net, 0.5)
    assert (masked.d.kernel == 0).float().mean() >= 0.5 and (net.d.kernel != 0).all()


def test_kd_loss_is_batchmean_kl_times_t_squared():
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    temp = 3.0
    p_t = F.softmax(t / temp, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / temp, 1))).sum() / 8
    want = 0.2 * F.cross_entropy(s, y) + 0.8 * kl * temp ** 2
    torch.testing.assert_close(kd_loss(s, t, y, temp, 0.2), want)


def test_distill_makes_a_half_width_student_from_teacher_logits_once(demo_artifact, digits,
                                                                     tmp_path, monkeypatch):
    x_train, y_train, x, y = digits
    teacher = load_model(demo_artifact)
    student = half_student(teacher)
    assert student.count_params() < teacher.count_params() / 1.9
    calls = []
    real = logits

    def counted(model, data, batch=512):
        calls.append(len(data))
        return real(model, data, batch)

    monkeypatch.setattr("lepton.compress.distillation.logits", counted)
    path = distill(demo_artifact, "half", (x_train, y_train), path=tmp_path / "s", epochs=2)
    assert calls == [len(x_train)]
    assert read_manifest(path).variant["name"] == "distilled-half"
    assert accuracy(path, x, y) > 70


def test_corrupt_or_truncated_onnx_is_an_error(demo_artifact, tmp_path):
    path = export(demo_artifact, "onnx", tmp_path / "o")
    data = (path / "model.onnx").read_bytes()
    (path / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt"):
        open_runtime(path)
    manifest = json.loads((path / "lepton.json").read_text())
    del manifest["checksums"]["model.onnx"]
    (path / "lepton.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not a valid ONNX"):
        open_runtime(path)
    (path / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ArtifactError):
        open_runtime(path)


def test_custom_operator_domains_are_refused():
    from lepton.artifact.runtimes.onnxruntime import check_domains

    node = onnx.helper.make_node("Evil", ["x"], ["y"], domain="my.ops")
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                         onnx.helper.make_opsetid("my.ops", 1)])
    with pytest.raises(ArtifactError, match="custom operators"):
        check_domains(model.SerializeToString())


def test_wrong_held_out_data_is_refused(demo_artifact, tmp_path):
    from lepton.compress.data import load

    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 5), np.float32), y=np.zeros(3))
    with pytest.raises(DataError, match="does not fit"):
        load(tmp_path / "bad.npz", load_model(demo_artifact), {})


def test_a_preset_student_fits_the_teacher_or_is_refused(demo_artifact, digits, tmp_path):
    from lepton.compress.distillation import preset_student

    x_train, y_train, x, y = digits
    teacher = load_model(demo_artifact)
    student = preset_student(teacher, "cnn-small")
    assert student.input_spec == teacher.input_spec
    assert student.run_outputs([torch.zeros(2, 28, 28, 1)])[0].shape == (2, 10)
    for wrong in ("mlp-small", "text-embedding", "no-such-preset"):
        with pytest.raises(ConfigError, match="'half' or one of \\['cnn', 'cnn-small'\\]"):
            preset_student(teacher, wrong)
    text = Sequential([L.Embedding(50, 8, input_shape=(6,)), L.Bidirectional(L.LSTM(4)),
                       L.Dense(2)])
    text.build_for([(6,)], ["int64"])
    small = preset_student(text, "text-embedding")
    assert small.get_config()["layers"][0]["config"]["input_dim"] == 50  # the teacher's vocab
    assert "activation" not in small.get_config()["layers"][-1]["config"]  # logits, as taught
    flat = Sequential([L.Dense(32, activation="relu", input_shape=(784,)),
                       L.Dense(10, activation="softmax")])
    flat.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rows = x_train.reshape(len(x_train), -1)
    flat.fit(rows, y_train, epochs=1, verbose=0)
    path = distill(flat, "mlp-small", (rows, y_train), path=tmp_path / "s", epochs=1)
    assert read_manifest(path).variant["name"] == "distilled-mlp-small"
    assert accuracy(path, x.reshape(len(x), -1), y) > 60


def test_onnx_runtime_answers_each_item_and_refuses_only_the_bad_one(demo_artifact, tmp_path):
    path = export(demo_artifact, "onnx", tmp_path / "o")
    ort_rt, torch_rt = open_runtime(path, threads=1), open_runtime(path, runtime="torch")
    name = ort_rt.inputs[0].name
    rng = np.random.default_rng(0)
    items = [{name: rng.random((n, 28, 28, 1), dtype=np.float32)} for n in (1, 3, 2)]
    bad = {name: items[1][name].copy()}
    bad[name][1, 4, 4, 0] = np.nan
    for batch in ([items[0]], items, [items[0], bad, items[2]]):
        got, want = ort_rt.run(batch), torch_rt.run(batch)
        for g, w, item in zip(got, want, batch):
            if item is bad:
                assert isinstance(g, ShapeError) and isinstance(w, ShapeError)
                continue
            (out,) = g.values()
            assert out.shape == (len(item[name]), 10) and list(g) == list(w)
            np.testing.assert_allclose(out, next(iter(w.values())), rtol=1e-4, atol=1e-5)
