"""Colour handling shared by the zoo: BT.601 YCbCr and the Y-only wrapper."""
from __future__ import annotations

import torch
from torch import nn

from .bicubic import Bicubic


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Nx3xHxW RGB in [0,1] -> Nx3xHxW YCbCr (ITU-R BT.601, studio range) in [0,1], as MATLAB's rgb2ycbcr."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = (128.0 - 37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = (128.0 + 112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    y, cb, cr = x[:, 0:1] * 255.0 - 16.0, x[:, 1:2] * 255.0 - 128.0, x[:, 2:3] * 255.0 - 128.0
    r = 0.00456621 * y + 0.00625893 * cr
    g = 0.00456621 * y - 0.00153632 * cb - 0.00318811 * cr
    b = 0.00456621 * y + 0.00791071 * cb
    return torch.cat([r, g, b], dim=1)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Nx3xHxW RGB in [0,1] -> Nx1xHxW BT.601 luma in [0,1] (the channel Y-only models see)."""
    return rgb_to_ycbcr(x)[:, :1]


class YOnly(nn.Module):
    """RGB in, RGB out around a Y->Y network; Cb/Cr are upscaled bicubically, as FSRCNN/ESPCN/edge-SR do.

    Every zoo model thereby shares the 1x3xhxw [0,1] -> 1x3xHxW interface that
    evaluation, benchmarking, upscaling and export use.
    """

    y_only = True

    def __init__(self, core: nn.Module, scale: int):
        super().__init__()
        self.core, self.scale = core, scale
        self.chroma_up = Bicubic(scale, channels=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ycc = rgb_to_ycbcr(x)
        y = self.core(ycc[:, :1])
        chroma = self.chroma_up(ycc[:, 1:])
        return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0.0, 1.0)
