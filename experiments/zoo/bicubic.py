"""Bicubic upscaling (the baseline every SR paper starts from) as an exportable module."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srnas.supernet.model import bicubic_phase_kernels


class Bicubic(nn.Module):
    """MATLAB-style bicubic x``scale`` (Keys a=-0.5) as a fixed depthwise 5x5 conv + PixelShuffle.

    Torch's plain ``interpolate(mode="bicubic")`` uses a=-0.75 (0.3 dB off the literature's
    33.66 dB on Set5 x2) and its a=-0.5 variant (antialias=True) does not export to ONNX;
    the phase kernels read off ``supernet.imaging.imresize`` reproduce it exactly,
    with replicate padding for the borders.
    """

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        self.scale, self.channels = scale, channels
        w = bicubic_phase_kernels(scale, 5)                      # (s^2, 5, 5)
        self.register_buffer("weight", w.unsqueeze(1).repeat(channels, 1, 1, 1), persistent=False)  # fixed, not saved
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.weight, groups=self.channels)
        return self.shuffle(y).clamp(0.0, 1.0)
