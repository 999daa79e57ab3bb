"""``Model``: the functional form ``Model(inputs, outputs)``, the base of subclassed models
(``class CNNModel(Model)`` with ``call``), and the home of compile/fit/evaluate/predict/save.

The training loop itself lives in ``lepton.core.training``; a model only describes how to
compute its outputs (and, for the trainer, its outputs before a final softmax/sigmoid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lepton.core.device import module_device
from lepton.core.layers.base import Layer, deserialize_layer
from lepton.core.layers.symbolic import Graph, torch_dtype
from lepton.errors import ConfigError, NotCompiledError, ShapeError


def overridable(name: str, getter: Any, doc: str) -> property:
    """A read-only view (``model.layers``, ``model.output``...) that a subclass may still
    assign its own attribute of that name over, as plain PyTorch code often does."""

    def get(self: Any) -> Any:
        if name in self._modules:
            return self._modules[name]
        if "_own_" + name in self.__dict__:
            return self.__dict__["_own_" + name]
        return getter(self)

    def put(self: Any, value: Any) -> None:
        self.__dict__["_own_" + name] = value

    return property(get, put, doc=doc)


class Model(Layer):
    """A trainable stack of layers; see the module docstring for the three ways to make one."""

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.graph: Graph | None = None
        self.compiled: Any = None
        self.metadata: dict = {}
        self.input_spec: list[tuple[tuple[int, ...], str]] | None = None
        self.stop_training = False
        self.torch_optimizer: torch.optim.Optimizer | None = None
        self.history: Any = None
        self.training_sample: Any = None  # rows fit keeps for the saved reference profile
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ConfigError("Model(inputs, outputs) needs both", fix="pass both")
            self.graph = Graph(inputs, outputs)
            self.symbolic = (inputs, outputs)
            self.graph_layers = nn.ModuleDict({layer.name: layer for layer in self.graph.layers})
            self.input_spec = [(tuple(t.value.shape[1:]), str(t.value.dtype).removeprefix(
                "torch.")) for t in self.graph.inputs]
            self.built = True

    # -- freezing and the functional API's handles ----------------------------------
    @property
    def trainable(self) -> bool:
        """False freezes every weight (and runs BatchNormalization in inference mode);
        it sets every sublayer's flag, as in Keras. Per-layer flags apply at ``compile``."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        from lepton.core.models.freezing import set_trainable

        self.__dict__["_trainable"] = bool(value)
        set_trainable(self, bool(value))

    def _own_layers(self) -> list[Layer]:
        if self.graph is not None:
            return list(self.graph.layers)
        return [m for m in self.children() if isinstance(m, Layer)]

    layers = overridable("layers", _own_layers, "The model's layers in the order they run.")

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"Model '{self.name}' has no layer named {name!r}",
                          expected=f"one of {[layer.name for layer in self.layers][:20]}",
                          received=repr(name))

    def _handles(self, which: int, as_list: bool = False) -> Any:
        if self.graph is None:
            raise ConfigError(f"Model '{self.name}' is not a functional model, so it has no "
                              "symbolic inputs/outputs",
                              fix="build it as Model(inputs, outputs), e.g. with Input(...)")
        value = self.symbolic[which]
        return (list(value) if isinstance(value, (list, tuple)) else [value]) if as_list \
            else value

    input = overridable("input", lambda self: self._handles(0),
                        "The Input placeholder(s), to build on: Model(base.input, ...).")
    output = overridable("output", lambda self: self._handles(1),
                         "The output placeholder(s), to call new layers on.")
    inputs = overridable("inputs", lambda self: self._handles(0, True), "Inputs as a list.")
    outputs = overridable("outputs", lambda self: self._handles(1, True), "Outputs as a list.")

    # -- computing outputs -------------------------------------------------------------
    def call(self, *inputs: Any, training: bool | None = None) -> Any:
        if self.graph is None:
            raise NotImplementedError(
                "Subclassed models define call(self, inputs); functional models are made "
                "with Model(inputs, outputs)")
        outputs = self.graph.run(list(inputs))
        return outputs[0] if self.graph.single_output else outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.built:
            self.input_spec = [(tuple(a.shape[1:]), str(a.dtype).removeprefix("torch."))
                               for a in args if isinstance(a, torch.Tensor)]
        return super().forward(*args, **kwargs)

    def run_outputs(self, inputs: list[torch.Tensor],
                    logits_outputs: frozenset[int] = frozenset()) -> list[torch.Tensor]:
        """All outputs as a list; outputs in ``logits_outputs`` skip their final activation."""
        if self.graph is not None:
            return self.graph.run(inputs, logits_outputs)
        out = self(*inputs)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def output_layer(self, index: int) -> Layer | None:
        """The layer that makes output ``index`` (None when the model cannot tell)."""
        return self.graph.output_layer(index) if self.graph is not None else None

    @property
    def output_names(self) -> list[str]:
        if self.graph is not None:
            return [layer.name if (layer := self.output_layer(i)) else f"output_{i + 1}"
                    for i in range(len(self.graph.output_slots))]
        return ["output_1"]

    @property
    def input_names(self) -> list[str]:
        if self.graph is not None:
            return [t.node.input_name for t in self.graph.inputs]
        return ["input_1"]

    def expects_token_ids(self) -> list[bool]:
        """Per input: does it take integer ids (e.g. into an Embedding)?"""
        if self.input_spec:
            return [dtype.startswith("int") for _, dtype in self.input_spec]
        return [False]

    def build_for(self, shapes: list[tuple[int, ...]],
                  dtypes: list[str] | None = None) -> list[tuple[int, ...]]:
        """Build lazily-shaped layers on a batch of 2 zeros per input (``shapes`` without the
        batch axis, ``dtypes`` by name, default float32) on the model's current device;
        returns the output shapes, batch axis included."""
        device = module_device(self) or torch.device("cpu")
        dtypes = dtypes or ["float32"] * len(shapes)
        return self.build_for_sample([torch.zeros((2, *s), dtype=torch_dtype(d), device=device)
                                      for s, d in zip(shapes, dtypes)])

    def build_for_sample(self, sample: list[torch.Tensor]) -> list[tuple[int, ...]]:
        """Build on the first two rows of real inputs (their dtype and device) in inference
        mode, so no statistics move; returns the output shapes, batch axis included."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                outs = self.run_outputs([s[:2] for s in sample])
        finally:
            self.train(was_training)
        return [tuple(o.shape) for o in outs]

    def check_inputs(self, xs: list[torch.Tensor], what: str) -> None:
        """Refuse inputs whose rank or trailing shape differ from what the model was built on."""
        if not self.input_spec:
            return
        if len(xs) != len(self.input_spec):
            raise ShapeError(f"{what}: the model takes {len(self.input_spec)} input(s)",
                             received=f"{len(xs)} input(s)", fix="pass one array per input")
        for x, (shape, _) in zip(xs, self.input_spec):
            got = tuple(x.shape[1:])
            if got == shape:
                continue
            fix = "pass arrays shaped (N, *input_shape)"
            if len(got) == 3 and len(shape) == 3 and (got[1], got[2], got[0]) == shape:
                fix = "Lepton takes images channels-last: use x.transpose(0, 2, 3, 1)"
            elif len(got) == len(shape) == 3 and got[:2] == shape[:2]:
                fix = (f"the model was built for {shape[-1]} channel(s); convert the images "
                       f"(e.g. grayscale vs RGB) or rebuild the model")
            elif len(got) + 1 == len(shape) and shape[-1] == 1:
                fix = "add the channel axis: x[..., None]"
            raise ShapeError(f"{what}: input shape does not match the model",
                             expected=f"(N, {', '.join(map(str, shape))}) rank {len(shape) + 1}",
                             received=f"{tuple(x.shape)} rank {x.dim()}", fix=fix)

    # -- the Keras workflow ------------------------------------------------------------
    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, precision: str = "auto",
                jit_compile: bool = False, device: Any = "auto", strategy: Any = None) -> None:
        """Choose optimizer, loss(es), metrics and speed settings.

        precision: 'auto' (bf16/fp16 on CUDA, float32 elsewhere), '32', 'bf16' or 'fp16';
        fit, evaluate and predict all compute in it (``model.compiled.precision``).
        jit_compile: run the forward pass through ``torch.compile``.
        strategy: where and by whom it trains (``lepton.core.training.strategy.Strategy``;
        default: this process on ``device``, every CPU thread).
        """
        from lepton.core.models.freezing import apply_trainable
        from lepton.core.training.compiled import CompileSpec

        apply_trainable(self)  # per-layer ``trainable`` changes take effect here, as in Keras
        self.compiled = CompileSpec.make(optimizer, loss, metrics, loss_weights, precision,
                                         jit_compile, device, strategy)
        self.torch_optimizer = None

    def _trainer(self) -> Any:
        from lepton.core.training.trainer import Trainer

        if self.compiled is None:
            raise NotCompiledError(f"Model '{self.name}' must be compiled before training or "
                                   "evaluation",
                                   fix="call model.compile(optimizer='adam', loss=..., "
                                   "metrics=[...]) first")
        return Trainer(self)

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1,
            verbose: Any = "auto", callbacks: Any = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: Any = None,
            sample_weight: Any = None, initial_epoch: int = 0, resume: bool = False,
            seed: int | None = None, accumulate: int = 1) -> Any:
        """Train; returns a History whose ``.history`` maps metric names to per-epoch values.

        resume=True continues from the latest ModelCheckpoint state in ``callbacks``
        (weights, optimizer, epoch and random state), e.g. after the process was killed.
        accumulate=k steps the optimizer once per k batches (an effective batch of k x
        batch_size). Under torchrun, batch_size is the global batch over all processes.
        """
        return self._trainer().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
            validation_split=validation_split, validation_data=validation_data,
            shuffle=shuffle, class_weight=class_weight, sample_weight=sample_weight,
            initial_epoch=initial_epoch, resume=resume, seed=seed, accumulate=accumulate)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: Any = "auto", return_dict: bool = False,
                 sample_weight: Any = None) -> Any:
        """``[loss, *metrics]`` (just the loss when there are no metrics), or a dict."""
        return self._trainer().evaluate(x, y, batch_size=batch_size, verbose=verbose,
                                        return_dict=return_dict, sample_weight=sample_weight)

    def predict(self, x: Any, batch_size: int | None = None, verbose: Any = 0) -> Any:
        """Outputs as NumPy (a list of arrays for several outputs)."""
        from lepton.core.training.predict import predict

        return predict(self, x, batch_size=batch_size, verbose=verbose)

    def summary(self, print_fn: Any = None) -> str:
        """Print (and return) a table of layers, output shapes and parameter counts."""
        from lepton.core.summary import summarize

        return summarize(self, print_fn)

    def save(self, path: str | Path, metadata: dict | None = None, *,
             reference: bool = True) -> Path:
        """Write the artifact directory atomically: lepton.json + weights.safetensors, with
        the reference profile of the rows ``fit`` kept (``reference=False`` skips it, as
        checkpoints taken during training do)."""
        from lepton.core.saving import save_model

        return save_model(self, path, metadata=metadata, profile=reference)

    def get_config(self) -> dict:
        if self.graph is not None:
            return {"name": self.name, "layers": [
                {"class_name": type(layer)._registered_name, "config": layer.get_config()}
                for layer in self.graph.layers], **self.graph.get_config()}
        return super().get_config()

    @classmethod
    def from_config(cls, config: dict) -> Model:
        if "nodes" in config and cls is Model:
            layers = {spec["config"]["name"]: deserialize_layer(spec)
                      for spec in config["layers"]}
            inputs, outputs = Graph.replay(config, layers)
            return Model(inputs, outputs, name=config.get("name"))
        return super().from_config(config)
