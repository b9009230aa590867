"""Full WDSR-A / WDSR-B networks (Yu et al., 2018) built from the supernet's own blocks.

Published WDSR models are 32 blocks wide enough for a GPU; on this shared CPU the
zoo uses 4 blocks of n_feats=32 (WDSR-A) and of n_feats=16 (WDSR-B, sized so it trains in the shared budget), the supernet's
block settings (expansion 4 / 6, low rank 0.8), weight norm and the learnable
bicubic-initialised skip.
"""
from __future__ import annotations

import torch
from torch import nn

from srnas.supernet.config import ModelConfig
from srnas.supernet.model import build_path_net


def wdsr(scale: int, block: str, n_blocks: int, n_feats: int = 32) -> nn.Module:
    """A standalone SRNet of ``n_blocks`` blocks of one type (weight-normed; fuse before export)."""
    cfg = ModelConfig(n_cells=n_blocks, blocks=[block], n_feats=n_feats)
    net = build_path_net(cfg, scale, [block] * n_blocks)
    with torch.no_grad():  # start at the skip's bicubic output, as the supernet does
        net.tail.parametrizations.weight.original0.zero_()
        net.tail.bias.zero_()
    net.y_only = False
    return net
