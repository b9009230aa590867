"""Parameter and multiply-accumulate counts of a model at a given input size (forward hooks)."""
from __future__ import annotations

import torch
from torch import nn


@torch.inference_mode()
def count_macs(model: nn.Module, lr_hw: tuple[int, int], in_ch: int = 3) -> int:
    """MACs of one forward pass on a 1 x in_ch x H x W input, summed over Conv2d / ConvTranspose2d / Linear.

    Element-wise work (activations, adds, softmax, PixelShuffle, interpolation) counts
    zero, as in the literature's tables; quantized convs count like their float twins.
    """
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def deconv_hook(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += inp[0].numel() * (m.out_channels // m.groups) * kh * kw  # each input pixel scatters a kernel

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        name = type(m).__name__
        if isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(deconv_hook))
        elif isinstance(m, nn.Conv2d) or name in ("Conv2d", "ConvReLU2d") and hasattr(m, "kernel_size"):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        model(torch.zeros(1, in_ch, *lr_hw))
    finally:
        for h in hooks:
            h.remove()
    return int(total)


def count_params(model: nn.Module) -> int:
    """Number of parameters (sum of numel)."""
    return int(sum(p.numel() for p in model.parameters()))
