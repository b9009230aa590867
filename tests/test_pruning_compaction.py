"""Compaction equals masked execution, and filter pruning physically shrinks layers."""
import pytest
import torch

from srnas.pruning import apply_plan, compact
from srnas.supernet.config import PruningConfig, load_config
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.model import build_path_net

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


# ---- the fast cells: plain (no residual: filter pruning narrows the next cell) and dws (depthwise) ---------
FAST = load_config("experiments/configs/fast_x2.yaml", {"model": {"n_feats": 16}}).model


def _fast_net(path):
    torch.manual_seed(0)
    net = build_path_net(FAST, 2, path).eval()
    with torch.no_grad():
        for _, c in net.prunable():
            c.bias.normal_(0, 0.1)
    return net


def _cell_params(net, i):
    return sum(p.numel() for p in net.body[i].parameters())


@pytest.mark.parametrize("block", ["plain", "dws"])
@pytest.mark.parametrize("scheme", ["filter", "block", "mixed", "unstructured"])
@pytest.mark.parametrize("multiple", [1, 16])
def test_compact_new_cells_equals_masked_and_removes_work(block, scheme, multiple):
    """Each new cell, beside its own kind, a residual block, the head and the ABPN tail: the compact net
    computes what the masked one does, and where pruning leaves fewer channels it computes fewer."""
    from srnas.pruning import count_macs
    path = (block, block, "wdsr_b", block)
    net = _fast_net(path)
    names = [n for n, _ in net.prunable()]
    mix = ["filter", "block", "filter", "pattern", "unstructured", "filter", "block"]
    plan = {n: ((mix[i % len(mix)] if scheme == "mixed" else scheme), 0.5) for i, n in enumerate(names)}
    masks = apply_plan(net, plan, PruningConfig(channel_multiple=multiple))
    small = compact(net, masks)
    x = torch.rand(2, 3, 21, 17)
    with torch.no_grad():
        assert (net(x) - small(x)).abs().max().item() <= 1e-4
    dense = fuse_weight_norm(_fast_net(path))
    if scheme == "unstructured":   # zeros inside a conv still run: nothing to remove, nothing removed
        assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in dense.parameters())
        return
    assert count_macs(small, (16, 16)) < 0.9 * count_macs(dense, (16, 16))
    if scheme != "block":   # block only narrows what others produce (a union of columns), not every cell
        for i, b in enumerate(path):
            if b == block:
                assert _cell_params(small, i) < _cell_params(dense, i), (i, b)


def test_a_filtered_plain_cell_narrows_its_neighbours():
    """Untied filter pruning of a plain conv removes its filters and the next cell's (or tail's) inputs; before
    a residual block the same plan removes the plain conv's inputs, and so the previous cell's filters."""
    net = _fast_net(("plain", "plain", "wdsr_b", "plain"))
    plan = {"body.0.body.0": ("filter", 0.5), "body.1.body.0": ("filter", 0.5), "body.3.body.0": ("filter", 0.75)}
    small = compact(net, apply_plan(net, plan, PruningConfig(channel_multiple=1)))
    n = FAST.n_feats
    w = [(c.in_channels, c.out_channels) for c in (small.get_submodule(s.name) for s in small.chain().convs)]
    # head -> plain0 (filter: 8 out) -> plain1 (tied: reads 8 of 8 live, keeps all 16 out) -> wdsr_b ...
    assert w[0] == (3, n) and w[1] == (n, n // 2) and w[2] == (n // 2, n)
    assert w[-3] == (n, 4) and w[-2] == (4, 12)   # last plain: 4 filters left; the ABPN tail reads 4


def test_depthwise_channels_go_with_their_pointwise_neighbours():
    """Filter pruning of the dws expand conv alone removes the same channels from the depthwise conv and the
    project conv's inputs (the depthwise conv is masked to match); pruning the depthwise conv alone
    removes the expand's matching filters."""
    for plan, dead in [({"body.0.body.0": ("filter", 0.5)}, 16), ({"body.0.body.2": ("filter", 0.75)}, 24)]:
        net = _fast_net(("dws",))
        masks = apply_plan(net, plan, PruningConfig(channel_multiple=1))
        assert "body.0.body.2" in masks.weight
        small = compact(net, masks)
        expand, dw, project = [c for c in small.body[0].body if isinstance(c, torch.nn.Conv2d)]
        wide = FAST.n_feats * FAST.expansion_dws
        assert expand.out_channels == dw.in_channels == dw.out_channels == dw.groups == project.in_channels \
            == wide - dead
        x = torch.rand(1, 3, 9, 11)
        with torch.no_grad():
            assert (net(x) - small(x)).abs().max().item() <= 1e-5
