"""The elastic supernet: path nets of every depth and width, sandwich sampling, a training step that reaches all."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from srnas.supernet.config import ConfigError, ModelConfig, config_from_dict, load_config
from srnas.supernet.elastic import Arch, ElasticSuperNet, leading
from srnas.supernet.elastic import build_supernet
from srnas.supernet.model import SRNet
from srnas.supernet.train import load_supernet, sandwich_loss, train_supernet

from conftest import tiny_config

CFG = ModelConfig(n_cells=[1, 2, 3], n_feats=[8, 12, 16], blocks=["plain", "wdsr_b"], expansion_b=2,
                  rep="ecb", clamp=True, elastic=True)


def perturbed(cfg: ModelConfig = CFG) -> ElasticSuperNet:
    """An elastic supernet with every tensor nudged (the untrained one is bicubic on every path)."""
    net = build_supernet(cfg, 2)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def test_elastic_config_is_opt_in_and_checked():
    net = build_supernet(CFG, 2)
    assert isinstance(net, ElasticSuperNet) and net.n_cells == 3 and net.depths == [1, 2, 3]
    assert not isinstance(build_supernet(ModelConfig(n_cells=2, n_feats=8), 2), ElasticSuperNet)
    # a list without elastic still needs a target to be sized against; with elastic it is the space
    with pytest.raises(ConfigError, match="absolute latency.target"):
        config_from_dict({"model": {"n_cells": [1, 2], "n_feats": 8}})
    cfg = config_from_dict({"model": {"n_cells": [1, 2], "n_feats": [8, 16], "elastic": True}})
    assert cfg.model.elastic and cfg.model.n_feats == [8, 16]
    with pytest.raises(ConfigError, match="listed"):
        config_from_dict({"model": {"n_cells": "auto", "n_feats": [8, 16], "elastic": True}})
    with pytest.raises(ConfigError, match="train.distill"):
        config_from_dict({"model": {"n_cells": [1, 2], "n_feats": [8], "elastic": True}, "train": {"distill": 2.0}})


@pytest.mark.parametrize("width", [8, 12, 16])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_path_nets_of_every_size_match_the_sliced_forward(depth, width):
    net = perturbed()
    x = torch.rand(1, 3, 12, 10)
    for path in itertools.islice(itertools.product(net.block_names, repeat=depth), 4):
        sub = net.extract(path, width)
        assert isinstance(sub, SRNet) and len(sub.body) == depth
        assert sub.head.in_channels == 3 and sub.head.out_channels == width
        with torch.no_grad():
            assert torch.allclose(net(x, path, width), sub(x), atol=1e-6)
            assert sub(x).shape == (1, 3, 24, 20)


def test_extract_copies_and_sizes_are_checked():
    net = perturbed()
    sub = net.extract(("plain", "wdsr_b"), 8)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(1.0)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(net(x, ("plain", "wdsr_b"), 8), sub(x))
    with pytest.raises(ValueError, match="cells"):
        net(x, ("plain",) * 4, 8)
    with pytest.raises(ValueError, match="width"):
        net(x, ("plain",), 10)


def test_narrow_paths_are_leading_slices_of_the_wide_weights():
    net = perturbed()
    narrow = net.extract(("wdsr_b",), 8).state_dict()
    wide = net.state_dict()
    w = wide["cells.0.wdsr_b.body.0.parametrizations.weight.original1"]
    assert torch.equal(narrow["body.0.body.0.parametrizations.weight.original1"], leading(w, (16, 8, 1, 1)))
    assert torch.equal(narrow["head.parametrizations.weight.original1"],
                       wide["head.parametrizations.weight.original1"][:8])


def test_sandwich_draws_largest_smallest_and_random():
    net = build_supernet(CFG, 2)
    rng = np.random.default_rng(0)
    draws = [net.sandwich(rng, 2) for _ in range(200)]
    assert all(len(d) == 4 for d in draws)
    assert all(d[0] == (("wdsr_b",) * 3, 16) for d in draws)    # WDSR-B at expansion 2 costs more than plain
    assert all(d[1] == (("plain",), 8) for d in draws)
    randoms = [a for d in draws for a in d[2:]]
    assert {len(a.path) for a in randoms} == {1, 2, 3}
    assert {a.width for a in randoms} == {8, 12, 16}
    assert len(set(randoms)) == 3 * (2 + 4 + 8)                 # every network of the space was drawn


def test_a_training_budget_bounds_the_sandwich():
    """train.max_gmacs: the largest trained is the costliest member within it, random members are drawn within it."""
    from srnas.experiments.macs import count_macs
    from srnas.supernet.errors import UserError
    from srnas.supernet.model import build_path_net

    net = build_supernet(CFG, 2)

    def counted(arch: Arch) -> float:   # MACs per LR pixel of the inference form, skip included
        return count_macs(build_path_net(net.path_config(len(arch.path), arch.width), 2, arch.path).eval(),
                          (10, 10)) / 100

    small = net.smallest()
    for arch in (net.largest(), net.random_arch(np.random.default_rng(3))):   # the skip is every member's
        assert net.macs_per_px(arch) - net.macs_per_px(small) == pytest.approx(counted(arch) - counted(small))
    top = net.largest()
    budget = 0.6 * net.macs_per_px(top)
    net.set_budget(budget)
    inside = [Arch(("wdsr_b",) * d, w) for d in net.depths for w in net.widths
              if net.macs_per_px(Arch(("wdsr_b",) * d, w)) <= budget]
    assert net.largest() != top and net.largest() in inside
    assert net.macs_per_px(net.largest()) == max(net.macs_per_px(a) for a in inside)
    rng = np.random.default_rng(0)
    drawn = [net.random_arch(rng) for _ in range(200)]
    assert all(net.macs_per_px(a) <= budget for a in drawn) and len({a.width for a in drawn}) > 1
    with pytest.raises(UserError, match="train.max_gmacs admits no member"):
        net.set_budget(0.5 * net.macs_per_px(net.smallest()))


def test_a_sandwich_step_updates_the_weights_of_every_size():
    net = perturbed().train()
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    loss = sandwich_loss(net, seed=0, n_random=2, distill=0.5)(net, x, hr, 0)
    loss.backward()
    opt.step()
    after = dict(net.named_parameters())
    # the largest path reaches every cell and all 16 channels; the smallest the first 8 of cell 0
    head = "head.parametrizations.weight.original1"
    assert not torch.equal(before[head][:8], after[head][:8]) and not torch.equal(before[head][8:], after[head][8:])
    for i in range(3):
        key = f"cells.{i}.wdsr_b.body.3.parametrizations.weight.original1"
        assert not torch.equal(before[key], after[key])
    assert not torch.equal(before["cells.0.plain.body.0.bias"][:8], after["cells.0.plain.body.0.bias"][:8])


def test_elastic_supernet_trains_saves_loads_and_evaluates(tmp_path, capsys):
    path = tiny_config(tmp_path, model={"n_cells": [1, 2], "n_feats": [4, 8], "blocks": ["plain", "wdsr_b"],
                                        "elastic": True},
                       train={"steps": 4, "epoch_steps": 2, "val_paths": 3, "threads": 1})
    cfg = load_config(path)
    final = train_supernet(cfg)
    log = (cfg.out_dir / "supernet" / "train_log.csv").read_text()
    assert "w8:" in log and "w4:" in log
    net = load_supernet(final)
    assert isinstance(net, ElasticSuperNet) and net.widths == [4, 8]
    # the global skip stays bicubic while the paths share weights (a learnable one made every path equal)
    fresh = build_supernet(net.cfg, 2)
    assert torch.equal(net.skip.conv.weight, fresh.skip.conv.weight)
    assert not torch.equal(net.state_dict()["tail.parametrizations.weight.original0"],
                           fresh.state_dict()["tail.parametrizations.weight.original0"])
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(net(x, ("plain",), 4), net.extract(("plain",), 4)(x), atol=1e-6)
    # `srnas supernet eval` takes a member's width and samples members of every size
    from srnas.search.cli import main
    capsys.readouterr()
    assert main(["supernet", "eval", "-c", str(path), "--datasets", "skimage", "--path", "plain,b", "--width", "4",
                 "--sample", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows][:2] == ["bicubic", "w4:plain-wdsr_b"] and len({r["model"] for r in rows}) == 5


def test_training_keeps_to_train_max_gmacs(tmp_path):
    """With train.max_gmacs at the widest 4-feature member's size, no 8-feature member trains or validates."""
    model = {"n_cells": [1, 2], "n_feats": [4, 8], "blocks": ["plain", "wdsr_b"], "elastic": True}
    cfg = load_config(tiny_config(tmp_path, model=model, train={"steps": 2, "epoch_steps": 2, "val_paths": 4,
                                                                "threads": 1}))
    net = build_supernet(cfg.model, 2)
    px = cfg.latency.lr_height * cfg.latency.lr_width
    gmacs = net.macs_per_px(Arch(("wdsr_b", "wdsr_b"), 4)) * px / 1e9
    cfg.train.max_gmacs = gmacs * 1.0001
    train_supernet(cfg)
    log = (cfg.out_dir / "supernet" / "train_log.csv").read_text()
    assert "w4:wdsr_b-wdsr_b" in log and "w8:" not in log
