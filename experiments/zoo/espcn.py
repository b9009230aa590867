"""ESPCN (Shi et al., CVPR 2016): two tanh conv layers and a sub-pixel (PixelShuffle) output layer.

Published configuration: 5x5 conv to 64, 3x3 conv to 32 (tanh after each), 3x3 conv to
scale^2, PixelShuffle; trained on Y.
"""
from __future__ import annotations

import torch
from torch import nn


class ESPCN(nn.Module):
    """Y -> Y ESPCN(n1, n2)."""

    def __init__(self, scale: int, n1: int = 64, n2: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, n1, 5, padding=2), nn.Tanh(), nn.Conv2d(n1, n2, 3, padding=1), nn.Tanh(),
                                 nn.Conv2d(n2, scale * scale, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)
