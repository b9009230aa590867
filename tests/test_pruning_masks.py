"""Masks never grow back during masked fine-tuning."""
import pickle

import torch
import torch.nn.functional as F

from pruning import Masks, apply_plan
from supernet.config import PruningConfig, load_config
from supernet.errors import UserError
from supernet.model import build_path_net
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
