"""edge-SR one-layer models and eSR-CNN (Navarrete Michelini et al., arXiv 2108.10335).

Definitions follow the paper and its reference code (repository pnavarre/eSR,
``edgeSR_MAX/TM/TR/CNN``): one KxK conv from Y to s^2*C (MAX), 2*s^2*C (TM) or
3*s^2*C (TR) channels without bias, PixelShuffle, then per output pixel
- eSR-MAX: the max over the C channels,
- eSR-TM: sum(value * softmax(key)) over C (template matching),
- eSR-TR: sum(value * softmax(query * key)) over C (transformer-like);
eSR-CNN(C, D, S): 5x5 conv 1->D, tanh, 3x3 conv D->S, tanh, 3x3 conv S->2*s^2*C, PixelShuffle,
then sum(value * softmax(key * key)). Initialisation as the reference code: Xavier
normal with the centre tap set to 1, so every channel starts as nearest-neighbour upscaling.

Each model takes its max / softmax-weighted sum over the C channels before the shuffle, at the input's size, on
the conv's channels grouped as the shuffle reads them: the same numbers as shuffling first (the shuffle only
moves values), with 1/C of the shuffle's work; chunks, not slices, so the backward pass fills no zeros.
"""
from __future__ import annotations

import torch
from torch import nn


def _phases(f: torch.Tensor, scale: int) -> torch.Tensor:
    """The conv's output (N, G*s^2, h, w) as (N, G, s^2, h, w): channel g of the shuffled image at each phase."""
    n, c, h, w = f.shape
    return f.reshape(n, c // (scale * scale), scale * scale, h, w)


def _filter(cout: int, k: int) -> nn.Conv2d:
    conv = nn.Conv2d(1, cout, k, padding=(k - 1) // 2, bias=False)
    nn.init.xavier_normal_(conv.weight, gain=1.0)
    with torch.no_grad():
        conv.weight[:, :, k // 2, k // 2] = 1.0
    return conv


class ESRMax(nn.Module):
    """eSR-MAX(K, C)."""

    def __init__(self, scale: int, k: int = 3, c: int = 4):
        super().__init__()
        self.scale = scale
        self.filter, self.shuffle = _filter(scale * scale * c, k), nn.PixelShuffle(scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.shuffle(_phases(self.filter(y), self.scale).amax(dim=1))


class ESRTM(nn.Module):
    """eSR-TM(K, C): template matching."""

    def __init__(self, scale: int, k: int = 7, c: int = 16):
        super().__init__()
        self.c, self.scale = c, scale
        self.filter, self.shuffle = _filter(2 * scale * scale * c, k), nn.PixelShuffle(scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        f = _phases(self.filter(y), self.scale)
        value, key = f.chunk(2, dim=1)
        return self.shuffle((value * torch.softmax(key, dim=1)).sum(dim=1))


class ESRTR(nn.Module):
    """eSR-TR(K, C): transformer-like query/key/value."""

    def __init__(self, scale: int, k: int = 7, c: int = 16):
        super().__init__()
        self.c, self.scale = c, scale
        self.filter, self.shuffle = _filter(3 * scale * scale * c, k), nn.PixelShuffle(scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        f = _phases(self.filter(y), self.scale)
        value, query, key = f.chunk(3, dim=1)
        return self.shuffle((value * torch.softmax(query * key, dim=1)).sum(dim=1))


class ESRCNN(nn.Module):
    """eSR-CNN(C, D, S)."""

    def __init__(self, scale: int, c: int = 4, d: int = 3, s: int = 6):
        super().__init__()
        self.c, self.scale = c, scale
        convs = [nn.Conv2d(1, d, 5, padding=2), nn.Conv2d(d, s, 3, padding=1),
                 nn.Conv2d(s, 2 * scale * scale * c, 3, padding=1, bias=False)]
        for conv in convs:
            nn.init.xavier_normal_(conv.weight, gain=1.0)
            with torch.no_grad():
                conv.weight[:, 0, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = 1.0
        self.filter = nn.Sequential(convs[0], nn.Tanh(), convs[1], nn.Tanh(), convs[2])
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        f = _phases(self.filter(y), self.scale)
        value, key = f.chunk(2, dim=1)
        return self.shuffle((value * torch.softmax(key * key, dim=1)).sum(dim=1))
