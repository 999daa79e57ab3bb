"""The functional API: ``Input`` placeholders and the graph that ``Model(inputs, outputs)``
runs (what a layer call on a placeholder records lives in ``layers.symbolic_tensor``).

A placeholder carries a real example tensor (batch of 2), so calling a layer on it builds the
layer with the true shapes, exactly as a first real batch would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lepton.core.layers.base import Layer, _validate_input_shape, unique_name
from lepton.core.layers.symbolic_tensor import Node, SymbolicTensor, fill
from lepton.errors import ConfigError

_module_call = torch.nn.Module.__call__

_DTYPES = {"float32": torch.float32, "float64": torch.float32, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int64,
           "uint8": torch.uint8, "bool": torch.bool}


def torch_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise ConfigError("Unknown dtype", expected=f"one of {sorted(_DTYPES)}",
                          received=repr(name)) from None


def Input(shape: Sequence[int] | int, dtype: str = "float32", name: str | None = None,
          batch_size: int | None = None) -> SymbolicTensor:
    """A model input of ``shape`` (no batch axis), e.g. ``Input((28, 28, 1))``."""
    shape = _validate_input_shape(shape, "Input")
    value = torch.zeros((2, *shape), dtype=torch_dtype(dtype))
    node = Node(None, [], [], {}, input_name=name or unique_name("input"))
    tensor = SymbolicTensor(value, node, 0)
    node.outputs = [tensor]
    return tensor


class Graph:
    """The executable form of ``Model(inputs, outputs)``: layers in topological order, each
    reading and writing numbered slots."""

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self.single_output = isinstance(outputs, SymbolicTensor)
        self.single_input = isinstance(inputs, SymbolicTensor)
        inputs = [inputs] if self.single_input else list(inputs)
        outputs = [outputs] if self.single_output else list(outputs)
        for t in [*inputs, *outputs]:
            if not isinstance(t, SymbolicTensor):
                raise ConfigError("Model(inputs, outputs) takes placeholders",
                                  expected="tensors made by Input() and layers called on them",
                                  received=type(t).__name__)
        for t in inputs:
            if t.node.layer is not None:
                raise ConfigError("Model inputs must come straight from Input()",
                                  received=repr(t), fix="pass the Input placeholders as inputs")
        self.inputs = inputs
        self.nodes = self._topological(outputs)
        slot_of = {id(t): i for i, t in enumerate(inputs)}
        self.steps: list[tuple[Layer, list, list[int], dict, int, int]] = []
        for node in self.nodes:
            if node.layer is None:
                if id(node.outputs[0]) not in slot_of:
                    raise ConfigError(
                        f"The outputs depend on the Input '{node.input_name}', "
                        "which is not in the model's inputs",
                        fix="add it to Model(inputs=[...])",
                    )
                continue
            in_slots = [slot_of[id(t)] for t in node.inputs]
            first = len(slot_of)
            for t in node.outputs:
                slot_of[id(t)] = len(slot_of)
            self.steps.append((node.layer, node.arg_spec, in_slots, node.kwargs, first,
                               len(node.outputs)))
        self.output_slots = [slot_of[id(t)] for t in outputs]
        self.n_slots = len(slot_of)
        # each intermediate is dropped after the last step that reads it, so its memory goes
        # back to the allocator for the next layer's output (as eager PyTorch does) instead
        # of the whole forward's feature maps staying alive until the end
        last_use: dict[int, int] = {}
        for k, (_, _, in_slots, *_) in enumerate(self.steps):
            for slot in in_slots:
                last_use[slot] = k
        keep = set(self.output_slots)
        self.release: list[tuple[int, ...]] = [() for _ in self.steps]
        for slot, k in last_use.items():
            if slot not in keep:
                self.release[k] += (slot,)
        self.layers: list[Layer] = []
        for layer, *_ in self.steps:
            if all(layer is not seen for seen in self.layers):
                self.layers.append(layer)
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError("Layer names must be unique within a model",
                              received=f"duplicates {duplicates}", fix="rename those layers")

    @staticmethod
    def _topological(outputs: list[SymbolicTensor]) -> list[Node]:
        order: list[Node] = []
        seen: set[int] = set()

        def visit(node: Node) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            for t in node.inputs:
                visit(t.node)
            order.append(node)

        for t in outputs:
            visit(t.node)
        return order

    def run(self, inputs: list, logits_outputs: frozenset[int] = frozenset()) -> list:
        """Compute the outputs; for outputs in ``logits_outputs`` the producing layer skips its
        final activation (the loss folds it in)."""
        slots: list = [None] * self.n_slots
        slots[: len(inputs)] = inputs
        fold = {self.output_slots[i] for i in logits_outputs}
        for (layer, spec, in_slots, kwargs, first, n_out), done in zip(self.steps,
                                                                       self.release):
            args = fill(spec, [slots[i] for i in in_slots])
            for i in done:
                slots[i] = None
            if first in fold:
                out = layer.call_logits(*args, **kwargs)
            else:  # real tensors: torch's module call (hooks kept), no placeholder check
                out = _module_call(layer, *args, **kwargs)
            del args
            if n_out == 1:
                slots[first] = out
            else:
                slots[first: first + n_out] = list(out)
        return [slots[i] for i in self.output_slots]

    def output_layer(self, index: int) -> Layer | None:
        """The layer producing output ``index``, if it produces nothing else."""
        slot = self.output_slots[index]
        for layer, _, _, _, first, n_out in self.steps:
            if first == slot and n_out == 1:
                consumers = [s for s in self.steps if slot in s[2]]
                return None if consumers else layer
        return None

    def get_config(self) -> dict:
        slot_of = {id(t): i for i, t in enumerate(self.inputs)}
        nodes = []
        for node in self.nodes:
            if node.layer is None:
                continue
            nodes.append({"layer": node.layer.name,
                          "args": fill(node.arg_spec, [slot_of[id(t)] for t in node.inputs]),
                          "kwargs": node.kwargs})
            for t in node.outputs:
                slot_of[id(t)] = len(slot_of)
        return {
            "inputs": [{"name": t.node.input_name, "shape": list(t.value.shape[1:]),
                        "dtype": str(t.value.dtype).removeprefix("torch.")} for t in self.inputs],
            "nodes": nodes,
            "outputs": self.output_slots,
            "single_input": self.single_input,
            "single_output": self.single_output,
        }

    @staticmethod
    def replay(config: dict, layers: dict[str, Layer]) -> tuple[Any, Any]:
        """Rebuild (inputs, outputs) placeholders from ``get_config()`` and fresh layers."""
        inputs = [Input(tuple(i["shape"]), dtype=i["dtype"], name=i["name"])
                  for i in config["inputs"]]
        slots: list[SymbolicTensor] = list(inputs)
        for node in config["nodes"]:
            args = [[slots[j] for j in a] if isinstance(a, list) else slots[a]
                    for a in node["args"]]
            out = layers[node["layer"]](*args, **node["kwargs"])
            slots.extend(out if isinstance(out, list) else [out])
        outputs = [slots[i] for i in config["outputs"]]
        return (inputs[0] if config["single_input"] else inputs,
                outputs[0] if config["single_output"] else outputs)
