"""Training-time branches of a 3x3 conv (ECBSR's edge-oriented block), folded into that one conv to run.

Every branch is linear and bias-free, so the sum is exactly one 3x3 kernel: the network that is pruned,
timed, quantized and exported is the plain conv, and only training sees the branches. Kept as a weight
parametrization, the conv stays an ``nn.Conv2d`` everywhere (widths, masks, LUT probes read its shapes).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

REPS = ("none", "ecb")

_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


class EdgeBranches(nn.Module):
    """weight -> weight + 1x1-then-3x3 (``mult`` x cout wide) + per-pair scaled Sobel x / y and Laplacian
    (+ the identity when cin == cout): ECBSR's branches without their biases, so the sum is exact."""

    def __init__(self, cout: int, cin: int, mult: int = 2):
        super().__init__()
        mid = cout * mult
        self.expand = nn.Parameter(torch.randn(mid, cin) / cin ** 0.5)
        self.squeeze = nn.Parameter(torch.zeros(cout, mid, 3, 3))   # the branch starts at zero
        self.edge = nn.Parameter(torch.zeros(3, cout, cin))
        self.register_buffer("filters", torch.stack([_SOBEL, _SOBEL.t(), _LAPLACE]))
        identity = torch.zeros(cout, cin, 3, 3)
        if cin == cout:
            identity[torch.arange(cout), torch.arange(cin), 1, 1] = 1.0
        self.register_buffer("identity", identity)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight + torch.einsum("omhw,mi->oihw", self.squeeze, self.expand)
                + torch.einsum("foi,fhw->oihw", self.edge, self.filters) + self.identity)


def rep_conv(cin: int, cout: int, rep: str) -> nn.Conv2d:
    """A 3x3 'same' conv trained with the branches of ``rep`` ('ecb'); 'none' is not a rep conv."""
    if rep not in REPS[1:]:
        raise ValueError(f"unknown training-time branches {rep!r}; use one of {REPS}")
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    parametrize.register_parametrization(conv, "weight", EdgeBranches(cout, cin))
    return conv


def has_branches(module: nn.Module) -> bool:
    """Whether ``module``'s weight is computed from training-time branches."""
    return parametrize.is_parametrized(module, "weight") and any(
        isinstance(p, EdgeBranches) for p in module.parametrizations.weight)


def own_class(module: nn.Module) -> nn.Module:
    """Give a parametrized module a class of its own before its parametrization is removed.

    torch generates one parametrized class per module and copy.deepcopy shares it with the copy;
    removing the parametrization deletes the weight property from that class, so folding a copy
    (stage 3 times plans on copies) left the original without a weight.
    """
    cls = module.__class__
    module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
    return module


def fold_branches(module: nn.Module) -> nn.Module:
    """Fold the training-time branches of every conv in ``module`` into its plain weight (in place); returns it."""
    for m in module.modules():
        if has_branches(m):
            parametrize.remove_parametrizations(own_class(m), "weight", leave_parametrized=True)
    return module
