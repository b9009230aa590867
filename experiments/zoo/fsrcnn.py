"""FSRCNN (Dong et al., ECCV 2016): feature extraction, shrinking, mapping, expanding, deconvolution.

Layer layout follows the paper (d, s, m = 56, 12, 4; PReLU; 9x9 transposed conv with
stride = scale), with the padding of the edge-SR authors' retrain (arXiv 2108.10335,
repository pnavarre/eSR) so the output is exactly scale x the input.
"""
from __future__ import annotations

import torch
from torch import nn


class FSRCNN(nn.Module):
    """Y -> Y FSRCNN(d, s, m)."""

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.features = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=(9 - 1 - scale) // 2 + 1,
                                         output_padding=(scale + 1) % 2)
        for mod in self.features:
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.25)
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.deconv.weight, std=0.001)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.features(y))
