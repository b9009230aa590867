"""Masks never grow back during masked fine-tuning."""
import pickle

import torch
import torch.nn.functional as F

from srnas.pruning import Masks, apply_plan
from srnas.supernet.config import PruningConfig, load_config
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net
import pytest

torch.set_num_threads(1)
CFG = PruningConfig()
MC = load_config("experiments/configs/quick.yaml").model


@pytest.mark.parametrize("scheme", ["unstructured", "filter", "block", "pattern"])
def test_masks_hold_during_finetune(scheme):
    torch.manual_seed(0)
    net = build_path_net(MC, 2, ["wdsr_b", "wdsr_a"])
    masks = apply_plan(net, {n: (scheme, 0.5) for n, _ in net.prunable()}, CFG)
    handles = masks.hook_grads(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    layers = dict(net.prunable())
    for step in range(5):
        x = torch.rand(2, 3, 12, 12)
        loss = F.l1_loss(net(x), torch.rand(2, 3, 24, 24))
        opt.zero_grad()
        loss.backward()
        for n, m in masks.weight.items():
            assert layers[n].weight.grad[m == 0].abs().max() == 0   # the hook zeroes pruned grads
        opt.step()
        masks.apply(net)
        for n, m in masks.weight.items():
            assert layers[n].weight[m == 0].abs().max() == 0
            assert layers[n].weight[m == 1].abs().sum() > 0
    for h in handles:
        h.remove()
    blob = pickle.loads(pickle.dumps(masks))
    assert isinstance(blob, Masks) and blob.plan == masks.plan


def test_bad_plan_names_layer():
    net = build_path_net(MC, 2, ["wdsr_b"])
    with pytest.raises(UserError, match="not prunable"):
        apply_plan(net, {"body.9.body.0": ("filter", 0.5)}, CFG)


FAST = load_config("experiments/configs/fast_x2.yaml", {"model": {"n_feats": 8}}).model


def test_tied_layers_follow_the_chain():
    """A plain conv is tied (its outputs all stay) only before a residual block; the last conv of a residual
    block always is; a plain conv before the tail is not."""
    from srnas.pruning import tied_layers
    net = build_path_net(FAST, 2, ["plain", "dws", "plain", "plain"])
    assert tied_layers(net) == {"body.0.body.0", "body.1.body.4"}


@pytest.mark.parametrize("scheme", ["unstructured", "filter", "block", "pattern"])
def test_masks_hold_in_the_fast_cells(scheme):
    torch.manual_seed(0)
    net = build_path_net(FAST, 2, ["plain", "dws", "plain", "wdsr_b"])
    masks = apply_plan(net, {n: (scheme, 0.5) for n, _ in net.prunable()}, CFG)
    handles = masks.hook_grads(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    layers = dict(net.prunable())
    for _ in range(3):
        loss = F.l1_loss(net(torch.rand(2, 3, 12, 12)), torch.rand(2, 3, 24, 24))
        opt.zero_grad()
        loss.backward()
        opt.step()
        masks.apply(net)
        for n, m in masks.weight.items():   # (block keeps every weight of a depthwise conv: one column per row)
            assert (layers[n].weight[m == 0] == 0).all()
    for h in handles:
        h.remove()
