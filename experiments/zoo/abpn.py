"""ABPN (Du et al., "Anchor-based plain net for mobile image super-resolution", CVPRW/MAI 2021).

Seven 3x3 convs: 3->28 and four 28->28 with ReLU, 28->3s^2 with ReLU, 3s^2->3s^2;
the anchor (the input repeated s^2 times per colour channel) is added before
PixelShuffle, and the output is clipped to [0, 1]. The conv stack is its own
submodule (``body``) so quantization-aware training can wrap exactly it.
"""
from __future__ import annotations

import torch
from torch import nn


class ABPN(nn.Module):
    """RGB -> RGB ABPN(channels, n_mid)."""

    y_only = False

    def __init__(self, scale: int, channels: int = 28, n_mid: int = 4):
        super().__init__()
        out = 3 * scale * scale
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
        for _ in range(n_mid):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.scale = scale
        self.shuffle = nn.PixelShuffle(scale)

    def anchor(self, x: torch.Tensor) -> torch.Tensor:
        """The input repeated s^2 times per channel: nearest-neighbour upscaling after the shuffle."""
        return torch.repeat_interleave(x, self.scale * self.scale, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x) + self.anchor(x)).clamp(0.0, 1.0)
