"""``predict``: batched inference to NumPy, with the compiled model's strategy and precision
(the ones ``evaluate`` measured with), or float32 on the weights' device without ``compile``.

A final activation (softmax, sigmoid) runs apart, in float32, on the logits the precision
computed (Keras' mixed-precision rule for the output layer): bf16 probabilities carry three
significant digits and tie (0.5 / 0.5) where the logits that ``evaluate`` scores do not, so
predict's classes could disagree with the accuracy ``evaluate`` reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lepton.core.data_adapter import batches, check_lengths, is_batch_iterable
from lepton.core.device import default_device, module_device
from lepton.core.training.feeding import model_inputs, positive_int
from lepton.core.training.precision import Precision
from lepton.core.training.strategy import Strategy
from lepton.errors import ShapeError


def predict(model: Any, x: Any, batch_size: int | None = None, verbose: Any = 0) -> Any:
    """Batched inference to NumPy; needs no ``compile``."""
    spec = model.compiled
    strategy = spec.strategy if spec is not None else \
        Strategy(module_device(model) or default_device())
    precision = spec.precision if spec is not None else Precision("32", strategy.device)
    strategy.setup_threads()
    batch_size = positive_int(batch_size or 256, "batch_size")
    if is_batch_iterable(x):
        chunks = [model_inputs(model, b[0] if isinstance(b, (tuple, list)) and len(b) in (2, 3)
                               and not isinstance(b[0], (int, float)) else b, "predict")
                  for b in x]
    else:
        xs = model_inputs(model, x, "predict")
        check_lengths(xs, "predict")
        chunks = [list(b) for b in batches(xs, batch_size, shuffle=False)]
    if not chunks:
        raise ShapeError("predict: no samples", fix="pass at least one row")
    strategy.place(model)
    if model.built:
        model.check_inputs(chunks[0], "predict")
    model.build_for_sample(strategy.to_device(chunks[0])[0])
    model.check_inputs(chunks[0], "predict")
    finals = _final_activations(model)
    apart = frozenset(finals)
    was_training = model.training
    model.eval()
    outputs: list[list[np.ndarray]] = []
    try:
        with torch.inference_mode():
            for chunk in chunks:
                with precision.autocast():
                    outs = model.run_outputs(strategy.to_device(chunk)[0], apart)
                outputs.append([(finals[i](o.float()) if i in finals else o.float())
                                .cpu().numpy() for i, o in enumerate(outs)])
    finally:
        model.train(was_training)
    merged = [np.concatenate(parts) for parts in zip(*outputs)]
    return merged[0] if len(merged) == 1 else merged


def _final_activations(model: Any) -> dict[int, Any]:
    """Per output index, the activation its layer can skip (``call_logits``), if not linear."""
    found = {}
    for i in range(len(model.output_names)):
        layer = model.output_layer(i)
        activation = getattr(layer, "activation", None)
        if hasattr(layer, "call_logits") and getattr(activation, "name", "linear") != "linear":
            found[i] = activation
    return found
