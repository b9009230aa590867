import dataclasses

import numpy as np
import pytest
import torch

from srnas.supernet.blocks import BLOCKS, fuse_weight_norm, register_block
from srnas.supernet.config import ModelConfig
from srnas.supernet.imaging import imresize
from srnas.supernet.model import SuperNet, build_path_net, parse_path

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


def test_the_3x3_bicubic_skip_keeps_flat_areas_and_stays_near_bicubic():
    """bicubic_conv3 drops bicubic's outermost taps: every phase still sums to one (a flat image comes out
    flat), and on a smooth image it stays within a few percent of bicubic, much nearer than nearest."""
    from srnas.supernet.model import SKIP_KERNEL, make_skip
    skip = make_skip("bicubic_conv3", 2)
    assert skip.conv.kernel_size == (SKIP_KERNEL["bicubic_conv3"],) * 2 == (3, 3)
    flat = torch.full((1, 3, 12, 12), 0.4)
    with torch.no_grad():
        assert torch.allclose(torch.nn.functional.pixel_shuffle(skip(flat), 2), torch.full((1, 3, 24, 24), 0.4))
        yy, xx = torch.meshgrid(torch.linspace(0, 6, 24), torch.linspace(0, 6, 24), indexing="ij")
        x = (0.5 + 0.4 * torch.sin(yy) * torch.cos(xx)).expand(1, 3, 24, 24)
        ref = imresize(x, (48, 48))[..., 6:-6, 6:-6]
        up3 = torch.nn.functional.pixel_shuffle(skip(x), 2)[..., 6:-6, 6:-6]
        near = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")[..., 6:-6, 6:-6]
    assert (up3 - ref).abs().max() < 0.03 and (up3 - ref).abs().mean() < 0.2 * (near - ref).abs().mean()


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


def perturbed(cfg) -> SuperNet:
    """A supernet whose weights are moved off their initialisation (zeroed tails make every path equal)."""
    sn = SuperNet(cfg, 2)
    with torch.no_grad():
        for p in sn.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return sn


def test_fusing_an_extract_leaves_the_supernet_intact():
    sn = perturbed(CFG)
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


# ---- the fast cells (plain, dws) and ABPN's head / tail / anchor / clamp options ---------------------------
FAST = ModelConfig(n_cells=3, blocks=["plain", "dws", "wdsr_b"], n_feats=8, expansion_b=2, head_act="relu",
                   tail="abpn", skip="anchor", clamp=True)


def test_abpn_is_a_member_of_the_space():
    """ABPN's shipped weights load into the supernet path plain x4 (28 features, ABPN head / tail / anchor /
    clamp) by key; the path computes exactly what the zoo's ABPN does."""
    from srnas.experiments import zoo
    ref = zoo.load("abpn", 2)
    cfg = ModelConfig(n_cells=4, blocks=["plain", "dws", "wdsr_b"], n_feats=28, head_act="relu", tail="abpn",
                      skip="anchor", clamp=True)
    sn = SuperNet(cfg, 2)
    net = fuse_weight_norm(sn.extract(("plain",) * 4)).eval()
    convs = [m for m in ref.body if isinstance(m, torch.nn.Conv2d)]
    names = [c.name for c in net.chain().convs]
    assert names == ["head.0", "body.0.body.0", "body.1.body.0", "body.2.body.0", "body.3.body.0", "tail.0", "tail.2"]
    state = {f"{n}.{p}": getattr(c, p).detach() for n, c in zip(names, convs) for p in ("weight", "bias")}
    net.load_state_dict(state, strict=True)   # every key of the path is one of ABPN's, and the reverse
    torch.manual_seed(0)
    x = torch.rand(2, 3, 36, 44)
    with torch.no_grad():
        assert (net(x) - ref(x)).abs().max().item() <= 1e-5
    from srnas.pruning import count_macs
    assert count_macs(net, (36, 44)) == count_macs(ref.body, (36, 44))   # same work, conv for conv


def test_new_blocks_are_registered_with_their_structure():
    from srnas.supernet.blocks import make_block
    plain, dws = make_block("plain", 8), make_block("dws", 8, expansion_dws=3)
    assert not plain.residual and dws.residual
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.groups) for _, c in plain.convs()] == [(8, 8, 3, 1)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.groups) for _, c in dws.convs()] == \
        [(8, 24, 1, 1), (24, 24, 3, 24), (24, 8, 1, 1)]
    x = torch.rand(1, 8, 10, 12)
    with torch.no_grad():
        assert plain(x).min() >= 0 and dws(x).shape == x.shape


@pytest.mark.parametrize("skip", ["anchor", "conv"])
def test_untrained_fast_supernet_is_nearest_upscaling(skip):
    """With the ABPN tail (last conv zero) every path starts at its skip: the anchor, or the conv skip that
    starts as the anchor (nearest upscaling), clamped to [0, 1]."""
    torch.manual_seed(0)
    net = SuperNet(dataclasses.replace(FAST, skip=skip), 2)
    x = torch.rand(1, 3, 10, 12)
    near = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    for path in [("plain", "dws", "wdsr_b"), ("plain",) * 3]:
        with torch.no_grad():
            assert torch.allclose(net(x, path), near, atol=1e-6)
    with torch.no_grad():   # the clamp: an input outside [0, 1] comes out inside it
        assert net(x * 3 - 1, ("dws",) * 3).min() >= 0 and net(x * 3 - 1, ("dws",) * 3).max() <= 1


def test_extract_and_chain_of_the_fast_space():
    """An extracted path matches the supernet, and its conv chain is the one the width rule reads off the config."""
    from srnas.supernet.model import path_chain
    torch.manual_seed(0)
    sn = perturbed(FAST)
    x = torch.rand(1, 3, 12, 10)
    for path in [("plain", "dws", "wdsr_b"), ("dws", "plain", "plain"), ("wdsr_b", "plain", "dws")]:
        net = sn.extract(path)
        with torch.no_grad():
            assert torch.allclose(net(x), sn(x, path), atol=1e-6)
        assert net.chain() == path_chain(FAST, 2, path)
    chain = path_chain(FAST, 2, ("plain", "wdsr_b", "plain"))
    # head, plain, wdsr_b (3 convs), plain, tail (2 convs): the edges beside the residual block are tied, those
    # between a plain cell and the head or tail, and inside blocks and the tail, are not
    assert chain.tied == (False, True, False, False, True, False, False)


def test_model_options_are_checked_at_load():
    from srnas.supernet.config import ConfigError, config_from_dict
    cfg = config_from_dict({"model": {"blocks": ["plain", "dws"], "head_act": "relu", "tail": "abpn",
                                      "skip": "conv", "clamp": True, "expansion_dws": 3}})
    assert (cfg.model.head_act, cfg.model.tail, cfg.model.skip, cfg.model.clamp) == ("relu", "abpn", "conv", True)
    with pytest.raises(ConfigError) as e:
        config_from_dict({"model": {"blocks": ["plain", "wdsr_c"], "tail": "deep", "expansion_dws": 0}})
    msg = str(e.value)
    assert "model.tail: 'deep' is not one of ['conv', 'abpn']" in msg and "model.expansion_dws: 0" in msg
    assert "unknown: ['wdsr_c']" in msg and "'dws'" in msg


def test_supernet_training_keeps_the_skip_and_trains_the_paths(tmp_path):
    """A learnable skip would take the linear residual and leave the zero-started tail (and every path) at zero."""
    from srnas.supernet.config import load_config
    from srnas.supernet.elastic import build_supernet
    from srnas.supernet.train import load_supernet, train_supernet

    from conftest import tiny_config
    cfg = load_config(tiny_config(tmp_path), check_data=False)
    start = build_supernet(cfg.model, cfg.data.scale).skip.state_dict()
    net = load_supernet(train_supernet(cfg, cfg.run(tmp_path / "run")))
    assert all(torch.equal(v, net.skip.state_dict()[k]) for k, v in start.items())
    tail = [m for m in net.tail.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert float(tail.weight.abs().sum()) > 0          # the tail left zero: paths contribute
