"""Random image augmentation for training batches: rotation, shift, zoom, horizontal flip.

One affine warp per batch with ``torch.nn.functional.grid_sample`` (vectorised, no per-image
Python loop). Used on training batches only; predict and serving never augment.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def augment_batch(x: np.ndarray, options: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Return a randomly warped copy of the float32 batch ``x`` (N, H, W, C)."""
    import torch
    import torch.nn.functional as F

    n = len(x)
    if n == 0:
        return x
    angle = np.deg2rad(rng.uniform(-1, 1, n) * float(options.get("rotate", 0.0)))
    zoom = 1.0 + rng.uniform(-1, 1, n) * float(options.get("zoom", 0.0))
    shift = float(options.get("shift", 0.0)) * 2.0  # grid coordinates span [-1, 1]
    tx, ty = rng.uniform(-1, 1, n) * shift, rng.uniform(-1, 1, n) * shift
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0) if options.get("flip") else np.ones(n)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    theta = np.stack([np.stack([cos * flip, -sin, tx], 1), np.stack([sin * flip, cos, ty], 1)], 1)
    inp = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    grid = F.affine_grid(torch.from_numpy(theta.astype(np.float32)), list(inp.shape),
                         align_corners=False)
    # pad with the per-image minimum (the background after normalisation), not with zero
    low = inp.amin(dim=(1, 2, 3), keepdim=True)
    out = F.grid_sample(inp - low, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False) + low
    return out.permute(0, 2, 3, 1).contiguous().numpy()

