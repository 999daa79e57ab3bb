"""Every registered layer and the SPEC §1 example models export to ONNX with a symbolic batch
axis, and ONNX Runtime matches PyTorch at batch sizes 1, 2, 7 and 64 (fp32: rtol 1e-4,
atol 1e-5). The layer list is the registry itself, so a layer added later is covered or the
test says which case to add."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import lepton.core.layers as L
from lepton.compress.onnx_export import check_batch_axis, onnx_bytes
from lepton.core.layers.base import _REGISTRY
from lepton.core.models import Model, Sequential
from lepton.errors import ArtifactError

IMG, SEQ, FLAT = (8, 8, 3), (6, 4), (5,)
# class name -> (factory, input shape, dtype); classes not listed are tried with no arguments
CASES = {
    "Dense": (lambda: L.Dense(4, activation="relu"), FLAT, "float32"),
    "Conv1D": (lambda: L.Conv1D(4, 3, padding="same", strides=2), SEQ, "float32"),
    "Conv2D": (lambda: L.Conv2D(4, 3, padding="same", strides=2), IMG, "float32"),
    "Activation": (lambda: L.Activation("softmax"), FLAT, "float32"),
    "Dropout": (lambda: L.Dropout(0.5), FLAT, "float32"),
    "Reshape": (lambda: L.Reshape((4, 6)), SEQ, "float32"),
    "Rescaling": (lambda: L.Rescaling(1 / 255, 0.5), IMG, "float32"),
    "Embedding": (lambda: L.Embedding(20, 3), (7,), "int64"),
    "LSTM": (lambda: L.LSTM(5), SEQ, "float32"),
    "GRU": (lambda: L.GRU(5, return_sequences=True), SEQ, "float32"),
    "Bidirectional": (lambda: L.Bidirectional(L.LSTM(3)), SEQ, "float32"),
    "MultiHeadAttention": (lambda: L.MultiHeadAttention(2, 3), SEQ, "float32"),
    "TransformerEncoder": (lambda: L.TransformerEncoder(2, 8), SEQ, "float32"),
    "BatchNormalization": (lambda: L.BatchNormalization(), IMG, "float32"),
    "LayerNormalization": (lambda: L.LayerNormalization(), SEQ, "float32"),
    "MaxPooling1D": (lambda: L.MaxPooling1D(2), SEQ, "float32"),
    "AveragePooling1D": (lambda: L.AveragePooling1D(2, padding="same"), (5, 4), "float32"),
    "MaxPooling2D": (lambda: L.MaxPooling2D(2), IMG, "float32"),
    "AveragePooling2D": (lambda: L.AveragePooling2D(2), IMG, "float32"),
    "Add": ("merge", SEQ, "float32"),
    "Concatenate": ("merge", SEQ, "float32"),
}
GUESSES = {"DepthwiseConv2D": ((3,), IMG), "SeparableConv2D": ((4, 3), IMG)}
SKIP = {"Layer", "Model", "Sequential", "ActivatedLayer"}  # bases, containers (below)


def registered() -> list[str]:
    return sorted(n for n, cls in _REGISTRY.items() if "." not in n and n not in SKIP
                  and not n.startswith("_")
                  and cls.__module__.startswith("lepton.core.layers"))


def model_for(name: str) -> Model:
    cls = _REGISTRY[name]
    factory, shape, dtype = CASES.get(name, (None, IMG, "float32"))
    if factory == "merge":
        a, b = L.Input(shape), L.Input(shape)
        return Model([a, b], cls()([L.Dense(4)(a), L.Dense(4)(b)]))
    if factory is None:
        args, shape = GUESSES.get(name, ((), None))
        for candidate in ([shape] if shape else [IMG, SEQ, FLAT]):
            try:
                x = L.Input(candidate)
                return Model(x, cls(*args)(x))
            except Exception:
                continue
        pytest.fail(f"add an export-parity case for the layer {name} in CASES")
    x = L.Input(shape, dtype=dtype)
    return Model(x, factory()(x))


def check_parity(model: Model) -> None:
    data = onnx_bytes(model)
    check_batch_axis(data)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model.eval()
    for rows in (1, 2, 7, 64):
        feeds = []
        for shape, dtype in model.input_spec:
            if dtype.startswith("int"):
                feeds.append(torch.randint(0, 20, (rows, *shape)))
            else:
                feeds.append(torch.randn((rows, *shape)))
        with torch.no_grad():
            want = [w.numpy() for w in model.run_outputs(feeds)]
        got = session.run(None, {n: f.numpy() for n, f in zip(model.input_names, feeds)})
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"batch {rows}")


@pytest.mark.parametrize("name", registered())
def test_every_registered_layer_exports_with_parity(name):
    check_parity(model_for(name))


def test_the_layer_list_is_the_registry():
    assert {"Dense", "Conv2D", "LSTM", "GRU", "MultiHeadAttention"} <= set(registered())


def spec_cnn():
    return Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                       L.MaxPooling2D((2, 2)), L.Flatten(), L.Dense(64, activation="relu"),
                       L.Dense(10, activation="softmax")])


def first_example():  # Dense straight after pooling, no Flatten
    model = Sequential([L.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
                        L.MaxPooling2D((2, 2)), L.Dense(16), L.Activation("relu"), L.Dense(10),
                        L.Activation("softmax")])
    return model


def functional():
    x = L.Input((12,))
    h = L.Dense(16, activation="relu")(x)
    out = L.Dense(3)(L.Add()([h, L.Dense(16)(x)]))
    return Model(x, out)


class CNNModel(Model):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.conv = L.Conv2D(4, 3, activation="relu")
        self.pool = L.MaxPooling2D(2)
        self.flat = L.Flatten()
        self.head = L.Dense(10)

    def call(self, x):
        return self.head(self.flat(self.pool(self.conv(x))))


def subclassed():
    model = CNNModel()
    model(torch.zeros(2, 12, 12, 1))
    return model


def text_lstm():
    return Sequential([L.Embedding(50, 8, input_shape=(12,)), L.Bidirectional(L.LSTM(6)),
                       L.Dense(2)])


def text_gru_attention():
    x = L.Input((10,), dtype="int64")
    h = L.Embedding(40, 8)(x)
    h = L.TransformerEncoder(2, 16)(L.GRU(8, return_sequences=True)(h))
    return Model(x, L.Dense(3)(L.GlobalAveragePooling1D()(h)))


@pytest.mark.parametrize("build", [spec_cnn, first_example, functional, subclassed, text_lstm,
                                   text_gru_attention])
def test_example_models_export_with_parity(build):
    check_parity(build())


def test_batch_axis_is_read_back_from_the_graph():
    graph = onnx.load_from_string(onnx_bytes(spec_cnn())).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    frozen = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])]))
    with pytest.raises(ArtifactError, match="froze the batch axis"):
        check_batch_axis(frozen.SerializeToString())


class Spectrum(L.Layer):
    """A layer ONNX cannot express (an FFT), to check the error names it."""

    def call(self, x):
        return torch.fft.rfft(x, dim=-1).abs()


def test_a_layer_that_cannot_export_is_named_with_the_option():
    x = L.Input((8,))
    model = Model(x, L.Dense(2)(Spectrum(name="spectrum")(L.Dense(8)(x))))
    with pytest.raises(ArtifactError) as info:
        onnx_bytes(model)
    text = str(info.value)
    assert "spectrum" in text and "Spectrum" in text and "torch runtime" in text
