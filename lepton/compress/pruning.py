"""Pruning. Structured: whole channels and units are removed from the network, so the
convolutions and matrix products really shrink; unstructured: weights are zeroed in place
(masks), which keeps every shape and gives *no* speed-up on CPU (dense kernels still multiply
the zeros), useful only for compressing the file.

Structured pruning walks the layer graph (Sequential and functional models): a Dense or
convolution can lose output units when every path from it reaches, through layers that act
on each channel alone (activations, pooling, dropout, BatchNormalization, Flatten), only
Dense or convolution layers, whose inputs then shrink too. Units are ranked by the L1 norm of
their weights. The narrower widths go into the saved config, so the artifact reloads and
serves like any other; a short fine-tune with ``model.fit`` recovers the accuracy.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from lepton.errors import ConfigError

WIDTH = {"Dense": "units", "Conv1D": "filters", "Conv2D": "filters"}
PASS = {"Activation", "Dropout", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
        "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "BatchNormalization", "Flatten"}


def check_amount(amount: Any) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or \
            not 0 < amount < 1:
        raise ConfigError("Invalid pruning amount", expected="a fraction in (0, 1), e.g. 0.5",
                          received=f"amount={amount!r}",
                          fix="--prune 0.5 removes half of the prunable channels and units")
    return float(amount)


def _graph(model: Any) -> tuple[list[Any], dict[str, list[str]]]:
    """(layers in order, consumers by layer name; 'output' marks a model output)."""
    if getattr(model, "graph", None) is not None:
        graph = model.graph
        producer: dict[int, str] = {}
        consumers: dict[str, list[str]] = {}
        for layer, _, in_slots, _, first, n_out in graph.steps:
            consumers.setdefault(layer.name, [])
            for slot in in_slots:
                if slot in producer:
                    consumers[producer[slot]].append(layer.name)
            for slot in range(first, first + n_out):
                producer[slot] = layer.name
        for slot in graph.output_slots:
            consumers[producer[slot]].append("output")
        return list(graph.layers), consumers
    if hasattr(model, "stack"):
        layers = list(model.stack)
        consumers = {a.name: [b.name] for a, b in zip(layers, layers[1:])}
        consumers[layers[-1].name] = ["output"]
        return layers, consumers
    raise ConfigError(f"Structured pruning needs the layer graph, which the subclassed model "
                      f"'{model.name}' does not expose",
                      fix="build it as Sequential or with the functional API, or prune with "
                          "structured=False (masks, no speed-up)")


def _ends(name: str, by_name: dict[str, Any], consumers: dict[str, list[str]]) -> list[str] | None:
    """The Dense/conv layers whose inputs shrink if ``name`` loses units; None if blocked."""
    ends: list[str] = []
    for nxt in consumers.get(name, []):
        if nxt == "output":
            return None
        layer = by_name[nxt]
        kind = type(layer).__name__
        if kind in WIDTH:
            ends.append(nxt)
        elif kind in PASS and getattr(layer, "activation", None) is not None and \
                "softmax" in str(layer.get_config().get("activation")):
            return None
        elif kind in PASS:
            more = _ends(nxt, by_name, consumers)
            if more is None:
                return None
            ends.extend(more)
        else:
            return None
    return ends or None


def plan(model: Any, amount: float) -> dict[str, torch.Tensor]:
    """Which output units each prunable layer keeps (sorted indices), by L1 norm."""
    layers, consumers = _graph(model)
    by_name = {layer.name: layer for layer in layers}
    keep: dict[str, torch.Tensor] = {}
    for layer in layers:
        kind = type(layer).__name__
        if kind not in WIDTH or _ends(layer.name, by_name, consumers) is None:
            continue
        if kind == "Dense" and layer.kernel.shape[0] < 2:
            continue
        weight = layer.kernel.detach()
        score = weight.abs().reshape(weight.shape[0], -1).sum(1)
        n = max(1, int(round(weight.shape[0] * (1 - amount))))
        keep[layer.name] = torch.sort(torch.topk(score, n).indices).values
    if not keep:
        raise ConfigError(f"Model '{model.name}' has no layer that structured pruning can "
                          "narrow", received=f"layers {sorted({type(x).__name__ for x in layers})}",
                          fix="prune with structured=False (masks) or distill a smaller student")
    return keep


def _input_keep(model: Any, keep: dict[str, torch.Tensor]
                ) -> dict[str, tuple[torch.Tensor, int]]:
    """Per layer: the channel indices it still receives and the width they index into,
    traced forward from each pruned layer through the per-channel layers."""
    layers, consumers = _graph(model)
    incoming: dict[str, tuple[torch.Tensor, int]] = {}
    for layer in layers:
        name = layer.name
        out = (keep[name], int(layer.kernel.shape[0])) if name in keep else None
        if out is None and type(layer).__name__ in PASS and name in incoming:
            out = incoming[name]
        if out is None:
            continue
        for nxt in consumers.get(name, []):
            if nxt != "output":
                incoming[nxt] = out
    return incoming


def _slice_layer(layer: Any, out_keep: torch.Tensor | None,
                 incoming: tuple[torch.Tensor, int] | None) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    kind = type(layer).__name__
    if kind == "BatchNormalization" and incoming is not None:
        return {k: (v[incoming[0]] if v.dim() == 1 else v) for k, v in state.items()}
    if kind not in WIDTH:
        return state
    kernel = state["kernel"]
    if incoming is not None:
        index, width = incoming
        if kernel.shape[1] != width:  # a flattened channels-last map: feature = pos * C + c
            positions = kernel.shape[1] // width
            index = (torch.arange(positions)[:, None] * width + index[None, :]).reshape(-1)
        kernel = kernel[:, index]
    if out_keep is not None:
        kernel = kernel[out_keep]
        if "bias" in state:
            state["bias"] = state["bias"][out_keep]
    state["kernel"] = kernel.contiguous()
    return state


def structured(model: Any, amount: float) -> Any:
    """A new, narrower model with the kept weights copied in (the original is untouched)."""
    amount = check_amount(amount)
    keep = plan(model, amount)
    incoming = _input_keep(model, keep)
    config = copy.deepcopy(model.get_config())
    for spec in config["layers"]:
        name = spec["config"]["name"]
        if name in keep:
            spec["config"][WIDTH[spec["class_name"]]] = int(len(keep[name]))
    new = type(model).from_config(config)
    new.build_for([s for s, _ in model.input_spec], [d for _, d in model.input_spec])
    old_layers = {layer.name: layer for layer in _graph(model)[0]}
    for layer in _graph(new)[0]:
        old = old_layers[layer.name]
        state = _slice_layer(old, keep.get(layer.name), incoming.get(layer.name))
        if type(layer).__name__ == "Conv2D":
            state["kernel"] = state["kernel"].contiguous(memory_format=torch.channels_last)
        layer.load_state_dict(state)
    new.metadata = dict(getattr(model, "metadata", {}) or {})
    return new.eval()


def masks(model: Any, amount: float) -> Any:
    """A copy with the smallest ``amount`` of each Dense/conv kernel's weights set to zero."""
    amount = check_amount(amount)
    new = copy.deepcopy(model)
    with torch.no_grad():
        for module in new.modules():
            if type(module).__name__ in WIDTH:
                kernel = module.kernel
                k = int(kernel.numel() * amount)
                if k:
                    cut = kernel.abs().flatten().kthvalue(k).values
                    kernel[kernel.abs() <= cut] = 0
    return new


def prune(model: Any, amount: float = 0.5, structured_: bool = True, *,
          path: str | Path, fine_tune: tuple[Any, Any] | None = None, epochs: int = 1,
          batch_size: int = 64, lineage: dict[str, Any] | None = None, **kw: Any) -> Path:
    """Write a pruned (and, given ``fine_tune=(x, y)``, fine-tuned) variant at ``path``."""
    from lepton.artifact.save import save_artifact
    from lepton.compress.source import as_source, chain, lineage_for

    use_structure = kw.pop("structured", structured_)
    if kw:
        raise ConfigError("prune got unknown arguments", received=sorted(kw))
    source = as_source(model)
    amount = check_amount(amount)
    new = structured(source.model, amount) if use_structure else masks(source.model, amount)
    settings: dict[str, Any] = {"amount": amount, "structured": bool(use_structure),
                                "criterion": "L1"}
    if use_structure:
        settings["widths"] = {n: len(k) for n, k in plan(source.model, amount).items()}
    else:
        settings["note"] = "masks only: no speed-up on CPU"
    if fine_tune is not None and epochs > 0:
        from lepton.core.training.compiled import from_json

        spec = source.document.get("compile") or (source.model.compiled.to_json()
                                                  if source.model.compiled else None)
        if spec is None:
            raise ConfigError("Fine-tuning needs the model's compile settings (loss, metrics)",
                              fix="compile the model before pruning, or pass fine_tune=None")
        new.compile(**from_json(spec))
        new.fit(*fine_tune, epochs=epochs, batch_size=batch_size, verbose=0)
        settings["fine_tune_epochs"] = epochs
        new = new.to("cpu").eval()
    name = f"pruned-{int(round(amount * 100))}" + ("" if use_structure else "-masks")
    return save_artifact(new, path, metadata=source.metadata,
                         variant=chain(source, name, ("prune", settings)),
                         lineage=lineage_for(source, "prune", lineage))
