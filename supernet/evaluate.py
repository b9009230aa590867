"""Evaluate an upscaling function on validation pairs: PSNR / SSIM on Y, border cropped."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .data import Pair
from .imaging import imresize, to_tensor, to_uint8
from .metrics import psnr_y, ssim_y

Upscaler = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def evaluate(upscale: Upscaler, pairs: list[Pair], scale: int, ssim: bool = True) -> dict[str, float]:
    """Mean PSNR (and SSIM) of ``upscale`` (1x3xhxw [0,1] -> 1x3xHxW) over ``pairs``."""
    ps, ss = [], []
    for pair in pairs:
        sr = to_uint8(upscale(to_tensor(pair.lr)))
        ps.append(psnr_y(sr, pair.hr, scale, pair.grey))
        if ssim:
            ss.append(ssim_y(sr, pair.hr, scale, pair.grey))
    out = {"psnr": float(np.mean(ps))}
    if ssim:
        out["ssim"] = float(np.mean(ss))
    return out


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline as an upscaler."""
    return lambda x: imresize(x, (x.shape[-2] * scale, x.shape[-1] * scale))


def evaluate_bicubic(pairs: list[Pair], scale: int, ssim: bool = True) -> dict[str, float]:
    """The bicubic baseline on the same pairs."""
    return evaluate(bicubic_upscaler(scale), pairs, scale, ssim)
