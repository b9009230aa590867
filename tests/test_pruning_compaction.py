"""Compaction equals masked execution, and filter pruning physically shrinks layers."""
import pytest
import torch

from pruning import apply_plan, compact
from supernet.config import PruningConfig, load_config
from supernet.model import build_path_net

torch.set_num_threads(1)
CFG = PruningConfig()
MC = load_config("experiments/configs/quick.yaml").model


def _net(path):
    torch.manual_seed(0)
    net = build_path_net(MC, 2, path).eval()
    with torch.no_grad():
        for _, c in net.prunable():
            c.bias.normal_(0, 0.1)   # non-zero biases catch a pruned filter whose bias leaks
        net.tail.bias.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("scheme", ["unstructured", "filter", "block", "pattern", "mixed"])
@pytest.mark.parametrize("rate", [0.5, 0.75])
def test_compact_equals_masked(scheme, rate):
    net = _net(["wdsr_b", "wdsr_a", "wdsr_b"])
    names = [n for n, _ in net.prunable()]
    mix = ["block", "filter", "pattern", "filter", "unstructured", "filter", "filter", "block"]
    plan = {n: ((mix[i % len(mix)] if scheme == "mixed" else scheme), rate) for i, n in enumerate(names)}
    masks = apply_plan(net, plan, CFG)
    small = compact(net, masks)
    x = torch.rand(2, 3, 21, 17)
    with torch.no_grad():
        assert (net(x) - small(x)).abs().max().item() <= 1e-4
    if scheme == "filter":
        n_dense = sum(p.numel() for p in net.parameters())
        n_small = sum(p.numel() for p in small.parameters())
        assert n_small < 0.75 * n_dense


def test_block_pruning_kills_channels_no_row_block_reads():
    net = _net(["wdsr_b"])
    names = [n for n, _ in net.prunable()]
    masks = apply_plan(net, {n: ("block", 0.75) for n in names}, PruningConfig(channel_multiple=1))
    small = compact(net, masks)
    wide, narrow = [c for c in small.body[0].body if isinstance(c, torch.nn.Conv2d)][:2]
    # the expand conv computes exactly the wide channels some row-block of the next conv reads
    read = masks.weight[names[1]].sum(dim=(0, 2, 3)) > 0
    assert wide.out_channels == narrow.in_channels == int(read.sum()) < MC.n_feats * MC.expansion_b
    # padded to a multiple of 16 (the default): same outputs, and the padding carries no weights
    masks.channel_multiple = 16
    padded = compact(net, masks)
    wide16 = [c for c in padded.body[0].body if isinstance(c, torch.nn.Conv2d)][0]
    assert wide16.out_channels == -(-int(read.sum()) // 16) * 16 > wide.out_channels
    assert int((wide16.weight.flatten(1).abs().sum(1) > 0).sum()) == int(read.sum())
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert (padded(x) - small(x)).abs().max().item() <= 1e-5
