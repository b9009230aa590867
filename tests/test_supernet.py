import numpy as np
import pytest
import torch

from supernet.blocks import BLOCKS, fuse_weight_norm, register_block
from supernet.config import ModelConfig
from supernet.imaging import imresize
from supernet.model import SuperNet, build_path_net, parse_path

CFG = ModelConfig(n_cells=3, n_feats=8, expansion_a=2, expansion_b=2)


def test_blocks_are_registered_and_duplicates_refused():
    assert {"wdsr_a", "wdsr_b"} <= set(BLOCKS)
    with pytest.raises(ValueError, match="already registered"):
        register_block("wdsr_a")(type("X", (), {}))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_untrained_supernet_is_exactly_bicubic(scale):
    torch.manual_seed(0)
    net = SuperNet(CFG, scale)
    x = torch.rand(1, 3, 20, 24)
    path = ("wdsr_a", "wdsr_b", "wdsr_a")
    ref = imresize(x, (20 * scale, 24 * scale))
    inner = (slice(None), slice(None), slice(3 * scale, -3 * scale), slice(3 * scale, -3 * scale))
    assert torch.allclose(net(x, path)[inner], ref[inner], atol=1e-5)


def test_extract_matches_supernet_and_is_independent():
    torch.manual_seed(0)
    net = SuperNet(CFG, 2)
    for p in net.cells.parameters():
        p.data.normal_(0, 0.1)
    net.tail.parametrizations.weight.original0.data.fill_(0.1)
    x = torch.rand(2, 3, 16, 16)
    path = ("wdsr_b", "wdsr_a", "wdsr_b")
    sub = net.extract(path)
    assert torch.allclose(sub(x), net(x, path), atol=1e-6)
    before = net(x, path).clone()
    for p in sub.parameters():
        p.data.zero_()
    assert torch.allclose(net(x, path), before)


def test_fusing_an_extract_leaves_the_supernet_intact():
    sn = SuperNet(CFG, 2)
    with torch.no_grad():
        for p in sn.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(1, 3, 10, 10)
    for path in [("wdsr_a", "wdsr_b", "wdsr_a"), ("wdsr_a", "wdsr_b", "wdsr_a"), ("wdsr_b", "wdsr_a", "wdsr_b")]:
        net = fuse_weight_norm(sn.extract(path))  # fusing a copy must not touch the supernet
        with torch.no_grad():
            assert torch.allclose(net(x), sn(x, path), atol=1e-6)


def test_paths_differ_and_are_checked():
    torch.manual_seed(0)
    net = SuperNet(CFG, 2)
    net.tail.parametrizations.weight.original0.data.fill_(0.1)
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(net(x, ("wdsr_a",) * 3), net(x, ("wdsr_b",) * 3))
    with pytest.raises(ValueError, match="3 cells"):
        net.extract(("wdsr_a",))
    with pytest.raises(ValueError, match="unknown block"):
        net.extract(("wdsr_a", "wdsr_c", "wdsr_a"))


def test_prunable_layers_follow_the_path():
    net = build_path_net(CFG, 2, ("wdsr_a", "wdsr_b"))
    names = [n for n, _ in net.prunable()]
    assert names == ["body.0.body.0", "body.0.body.2", "body.1.body.0", "body.1.body.2", "body.1.body.3"]
    assert [c.kernel_size[0] for _, c in net.prunable()] == [3, 3, 1, 1, 3]


def test_fuse_weight_norm_keeps_outputs():
    torch.manual_seed(0)
    net = build_path_net(CFG, 2, ("wdsr_a", "wdsr_b"))
    net.tail.parametrizations.weight.original0.data.fill_(0.1)
    x = torch.rand(1, 3, 12, 12)
    y = net(x)
    fuse_weight_norm(net)
    assert not any("parametrizations" in k for k in net.state_dict())
    assert torch.allclose(net(x), y, atol=1e-6)


def test_parse_path_forms():
    names = ["wdsr_a", "wdsr_b"]
    assert parse_path("wdsr_a,wdsr_b", names) == ("wdsr_a", "wdsr_b")
    assert parse_path("a, B", names) == ("wdsr_a", "wdsr_b")
    assert parse_path("1,0", names) == ("wdsr_b", "wdsr_a")
    with pytest.raises(ValueError, match="cannot read"):
        parse_path("a,z", names)


def test_random_path_respects_probs():
    net = SuperNet(CFG, 2)
    rng = np.random.default_rng(0)
    paths = [net.random_path(rng, [1.0, 0.0]) for _ in range(5)]
    assert all(p == ("wdsr_a",) * 3 for p in paths)
