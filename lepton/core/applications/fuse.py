"""``fold_batchnorm``: an inference copy of a functional model with each BatchNormalization
that directly follows a convolution folded into that convolution's weights and bias.

BatchNormalization in inference mode is an affine map per channel, so ``bn(conv(x))`` equals
one convolution with ``W * g / sqrt(v + eps)`` and ``(b - m) * g / sqrt(v + eps) + beta``:
one pass over each feature map fewer. The model passed in is not changed. The folded
normalizations stay in the copy's layers as identities (so it saves and loads correctly)
but are skipped when it runs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lepton.errors import ConfigError

FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Conv1D")


def fold_batchnorm(model: Any) -> Any:
    """A new model computing the same outputs (inference mode) with fewer passes."""
    if getattr(model, "graph", None) is None:
        raise ConfigError("fold_batchnorm works on functional models",
                          received=type(model).__name__,
                          fix="build the model as Model(inputs, outputs) (the applications "
                              "are)")
    fused = type(model).from_config(model.get_config())  # a copy (deepcopy recurses too deep)
    fused.load_state_dict(model.state_dict())
    fused.eval()
    graph = fused.graph
    producer = {first: i for i, (*_, first, n_out) in enumerate(graph.steps) if n_out == 1}
    consumers: dict[int, int] = {}
    for _, _, in_slots, *_ in graph.steps:
        for slot in in_slots:
            consumers[slot] = consumers.get(slot, 0) + 1
    drop: set[int] = set()
    for i, (layer, _, in_slots, _, first, _) in enumerate(graph.steps):
        if type(layer).__name__ != "BatchNormalization" or len(in_slots) != 1:
            continue
        source = in_slots[0]
        j = producer.get(source)
        if j is None or consumers.get(source) != 1 or source in graph.output_slots:
            continue
        conv = graph.steps[j][0]
        if type(conv).__name__ not in FOLDABLE or conv.activation.name != "linear":
            continue
        _fold(conv, layer)
        step = list(graph.steps[j])
        step[4] = first  # the convolution now writes what the normalization wrote
        graph.steps[j] = tuple(step)
        drop.add(i)
    graph.steps = [s for i, s in enumerate(graph.steps) if i not in drop]
    return fused


@torch.no_grad()
def _fold(conv: Any, bn: Any) -> None:
    scale = bn.gamma / torch.sqrt(bn.moving_variance + bn.epsilon)
    shape = (-1,) + (1,) * (conv.kernel.dim() - 1)
    fmt = torch.channels_last if conv.kernel.dim() == 4 else torch.contiguous_format
    conv.kernel.data = (conv.kernel * scale.reshape(shape)).contiguous(memory_format=fmt)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.moving_mean)
    conv.bias = nn.Parameter((bias - bn.moving_mean) * scale + bn.beta)
    conv.use_bias = True
    conv.__dict__["_lepton_config"]["use_bias"] = True
    bn.gamma.fill_(1.0)
    bn.beta.zero_()
    bn.moving_mean.zero_()
    bn.moving_variance.fill_(1.0 - bn.epsilon)
