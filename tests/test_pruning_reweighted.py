"""Reweighted dynamic regularization meets an injected latency target with per-layer rates."""
import torch

from pruning import reweighted_prune
from supernet.config import PruningConfig, load_config
from supernet.data import PatchSampler, load_images
from supernet.model import build_path_net

torch.set_num_threads(1)
MC = load_config("experiments/configs/quick.yaml").model


def _macs(net):
    """A MAC-proportional latency model standing in for the LUT."""
    sizes = {n: c.weight.numel() for n, c in net.prunable()}
    total = sum(sizes.values())
    return lambda plan: 10.0 * sum(sizes[n] * (1 - plan.get(n, ("none", 0.0))[1]) for n in sizes) / total


def test_reweighted_meets_target():
    torch.manual_seed(0)
    net = build_path_net(MC, 2, ["wdsr_b", "wdsr_a"])
    sampler = PatchSampler(load_images("skimage", "train"), 2, 16, 4, True, 0, 0)
    cfg = PruningConfig(reg_steps=6, finetune_steps=4, reg_lambda=1e-3)
    lat = _macs(net)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=5.0, schemes="filter")
    assert lat(plan) <= 5.0
    assert set(plan) == {n for n, _ in net.prunable()}
    rates = [r for _, r in plan.values()]
    assert len(set(rates)) > 1                 # rates differ across layers
    layers = dict(net.prunable())
    for n, m in masks.weight.items():          # masks held through the fine-tune
        assert layers[n].weight[m == 0].abs().max() == 0
