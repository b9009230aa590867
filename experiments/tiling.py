"""Run a model over a large frame tile by tile, each tile with real context around it."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Runner = Callable[[torch.Tensor], torch.Tensor]


def tiled_upscale(run: Runner, x: torch.Tensor, scale: int, tile: int = 0, margin: int = 16,
                  fixed_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Upscale 1x3xHxW ``x`` tile by tile; each tile is run with ``margin`` LR pixels of real context.

    With a margin at least the model's receptive-field radius the result equals the
    untiled one (up to float rounding); tile <= 0 runs the whole image at once.
    A model that accepts only ``fixed_hw`` inputs is fed tiles of exactly that size.
    """
    if fixed_hw is not None and tuple(x.shape[-2:]) == tuple(fixed_hw):
        return run(x)
    if fixed_hw is not None:
        fh, fw = fixed_hw
        if fh <= 2 * margin or fw <= 2 * margin:
            margin = min(fh, fw) // 4
        core_h, core_w = fh - 2 * margin, fw - 2 * margin
    elif tile <= 0:
        return run(x)
    else:
        core_h = core_w = tile
    h, w = x.shape[-2:]
    s = scale
    out = x.new_zeros(x.shape[0], 3, h * s, w * s)
    for y0 in range(0, h, core_h):
        for x0 in range(0, w, core_w):
            y1, x1 = min(y0 + core_h, h), min(x0 + core_w, w)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb = min(h, y1 + margin), min(w, x1 + margin)
            patch = x[..., ya:yb, xa:xb]
            if fixed_hw is not None:  # pad bottom/right up to the only size the model takes
                ph, pw = fixed_hw[0] - patch.shape[-2], fixed_hw[1] - patch.shape[-1]
                patch = F.pad(patch, (0, pw, 0, ph), mode="replicate")
            sr = run(patch)
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = sr[..., (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
    return out
