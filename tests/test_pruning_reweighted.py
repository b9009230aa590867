"""Reweighted dynamic regularization meets an injected latency target with per-layer rates."""
import pytest
import torch

from srnas.pruning import reweighted_prune
from srnas.supernet.config import PruningConfig, load_config
from srnas.supernet.data import PatchSampler, load_images
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

from conftest import DiesAt, Killed

torch.set_num_threads(1)
MC = load_config("experiments/configs/quick.yaml").model


def _macs(net):
    """A MAC-proportional latency model standing in for the LUT."""
    sizes = {n: c.weight.numel() for n, c in net.prunable()}
    total = sum(sizes.values())
    return lambda plan: 10.0 * sum(sizes[n] * (1 - plan.get(n, ("none", 0.0))[1]) for n in sizes) / total


def _setup(reg_steps: int, finetune_steps: int):
    """A WDSR-B + WDSR-A net, a patch sampler, a short stage-3 config and the MAC latency stand-in."""
    torch.manual_seed(0)
    net = build_path_net(MC, 2, ["wdsr_b", "wdsr_a"])
    sampler = PatchSampler(load_images("skimage", "train"), 2, 16, 4, True, 0, 0)
    return net, sampler, PruningConfig(reg_steps=reg_steps, finetune_steps=finetune_steps, reg_lambda=1e-3), _macs(net)


def test_reweighted_meets_target():
    net, sampler, cfg, lat = _setup(6, 4)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=5.0, schemes="filter")
    assert lat(plan) <= 5.0
    assert set(plan) == {n for n, _ in net.prunable()}
    rates = [r for _, r in plan.values()]
    assert len(set(rates)) > 1                 # rates differ across layers
    layers = dict(net.prunable())
    for n, m in masks.weight.items():          # masks held through the fine-tune
        assert layers[n].weight[m == 0].abs().max() == 0


def test_measured_fallback_steps_only_as_far_as_the_device_needs():
    """When the estimate says the (tightened) goal is out of reach, rates rise one measured step at a time."""
    net, sampler, cfg, lat = _setup(4, 2)
    calls = []

    def measure(plan):   # the device is far slower than estimated until the estimate drops to 3 ms
        calls.append(plan)
        return lat(plan) + (10.0 if lat(plan) > 3.0 else 0.0)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=5.0, schemes="filter",
                                        measure_fn=measure)
    assert measure(plan) <= 1.05 * 5.0 and len(calls) > 2
    fastest = {n: ("filter", 0.75) for n, _ in net.prunable()}
    assert lat(plan) > lat(fastest)           # not every layer thrown to the top rate


def test_measured_fallback_never_leaves_the_estimate_above_the_target():
    """A device that stays slower than the target by noise must not push the plan over the target by the LUT.

    The stand-in prices a layer's first pruning step above dense (as the LUT prices a sparse kernel at a low
    rate): stepping on while the measurement disagrees once left a front winner 9 % over its target.
    """
    from srnas.pruning import apply_plan
    from srnas.pruning.reweighted import plan_for_target
    net, _, cfg, _ = _setup(1, 1)
    apply_plan(net, {}, cfg)
    names = [n for n, _ in net.prunable()]
    lat = lambda p: 5.0 + sum(0.4 if r == 0.25 else -0.1 * r for _, r in p.values())  # noqa: E731
    calls = []

    def measure(plan):   # a noisy device: the dense plan reads 2x slow once, then every plan fits
        calls.append(plan)
        return 2.0 * lat(plan) if len(calls) == 1 else 5.0
    plan = plan_for_target(net, {n: "unstructured" for n in names}, cfg, [0.0, 0.25, 0.5, 0.75], 0.1, lat, 5.0,
                           measure)
    assert lat(plan) <= 5.0


def test_meet_target_crosses_plateaus():
    """Padding can make one layer's step save nothing while two together pay: the search steps on."""
    from srnas.pruning import apply_plan
    from srnas.pruning.reweighted import meet_target
    net, _, cfg, _ = _setup(1, 1)
    apply_plan(net, {}, cfg)   # fuse weight norm as stage 3 does
    plan = {n: ("filter", 0.0) for n, _ in net.prunable()}
    lat = lambda p: 4.0 if sum(r >= 0.25 for _, r in p.values()) >= 2 else 10.0  # noqa: E731
    got = meet_target(net, plan, cfg, [0.0, 0.25, 0.5, 0.75], lat, 5.0)
    assert lat(got) <= 5.0 and sum(r > 0 for _, r in got.values()) == 2


def _setup_ecb(reg_steps: int, finetune_steps: int):
    """Plain cells trained with ECB branches (cpu_x2's recipe): a masked conv's branches fold at the plan."""
    torch.manual_seed(0)
    mc = load_config("experiments/configs/quick.yaml", {"model": {"rep": "ecb", "blocks": ["plain"]}}).model
    net = build_path_net(mc, 2, ["plain", "plain"])
    sampler = PatchSampler(load_images("skimage", "train"), 2, 16, 4, True, 0, 0)
    return net, sampler, PruningConfig(reg_steps=reg_steps, finetune_steps=finetune_steps, reg_lambda=1e-3), _macs(net)


@pytest.mark.parametrize("setup", [_setup, _setup_ecb], ids=["wdsr", "plain_ecb"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, setup):
    """Killed once in regularization and once in fine-tune, the resumed run ends with the same weights."""
    net, sampler, cfg, lat = setup(10, 8)
    ref, ref_masks, ref_plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=5.0, schemes="filter")
    ckpt, logs = tmp_path / "progress.pt", []
    # first killed at regularization step 7 (saved after 3 and 6); then, resumed at 6, at fine-tune step 5
    # (4 regularization batches + 6 fine-tune ones; saved after 0 and 4)
    for dies_at in (8, 4 + 6):
        net, _, _, _ = setup(10, 8)
        with pytest.raises(Killed):
            reweighted_prune(net, DiesAt(sampler, dies_at), cfg, latency_fn=lat, target_ms=5.0, schemes="filter",
                             checkpoint=ckpt, save_every=3 if dies_at == 8 else 4, log=logs.append)
    net, _, _, _ = setup(10, 8)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=5.0, schemes="filter",
                                        checkpoint=ckpt, log=logs.append)
    assert any("resuming regularization at step 6/10" in s for s in logs), logs
    assert any("resuming finetune at step 4/8" in s for s in logs), logs
    assert plan == ref_plan and masks.weight.keys() == ref_masks.weight.keys()
    for k, v in ref.state_dict().items():
        assert torch.allclose(net.state_dict()[k], v, atol=1e-6), k
    for k, m in ref_masks.weight.items():
        assert torch.equal(masks.weight[k], m), k


def test_progress_of_other_settings_is_refused(tmp_path):
    net, sampler, cfg, lat = _setup(4, 0)
    with pytest.raises(Killed):
        reweighted_prune(net, DiesAt(sampler, 4), cfg, schemes="filter", checkpoint=tmp_path / "p.pt",
                         save_every=1, log=lambda s: None)
    net, _, _, _ = _setup(4, 0)
    with pytest.raises(UserError, match="other settings.*schemes"):
        reweighted_prune(net, sampler, cfg, schemes="block", checkpoint=tmp_path / "p.pt", log=lambda s: None)


def test_reweighted_prunes_a_fast_path_to_its_target():
    """Stage 3 on plain and dws cells (a chain without residual ties, depthwise convs): the target is met,
    and the compact model computes what the masked one does with less work."""
    from srnas.pruning import compact, count_macs
    mc = load_config("experiments/configs/fast_x2.yaml", {"model": {"n_feats": 8}}).model
    torch.manual_seed(0)
    path = ["plain", "dws", "plain", "plain"]
    net = build_path_net(mc, 2, path)
    sampler = PatchSampler(load_images("skimage", "train"), 2, 16, 4, True, 0, 0)
    cfg = PruningConfig(reg_steps=4, finetune_steps=2, reg_lambda=1e-3, channel_multiple=1)
    lat = _macs(net)
    net, masks, plan = reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=6.0, schemes="filter")
    assert lat(plan) <= 6.0 and set(plan) == {n for n, _ in net.prunable()}
    small = compact(net, masks)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert (net(x) - small(x)).abs().max().item() <= 1e-4
    dense = build_path_net(mc, 2, path)
    assert count_macs(small, (12, 10)) < count_macs(dense, (12, 10))


def test_lr_comes_from_the_pruning_config(monkeypatch):
    import srnas.pruning.reweighted as rw
    seen = []
    real = rw.masked_finetune
    monkeypatch.setattr(rw, "masked_finetune",
                        lambda net, s, steps, lr, *a, **k: seen.append(lr) or real(net, s, steps, lr, *a, **k))
    net, sampler, cfg, _ = _setup(2, 2)
    cfg.lr = 3e-3
    rw.reweighted_prune(net, sampler, cfg, schemes="filter", log=lambda s: None)
    assert seen == [3e-3, 3e-3]    # regularization and fine-tune


def test_rates_are_lowered_while_the_target_still_holds():
    """Regularization may collapse more groups than the target needs: the plan keeps only what it must."""
    from srnas.pruning.reweighted import plan_for_target, relax_to_target

    net, _, cfg, lat = _setup(0, 0)
    top = {n: ("filter", 0.75) for n, _ in net.prunable()}
    assert relax_to_target(net, top, cfg, [0.0, 0.25, 0.5, 0.75], lat, 100.0) == {n: ("filter", 0.0) for n in top}
    relaxed = relax_to_target(net, top, cfg, [0.0, 0.25, 0.5, 0.75], lat, 6.0)
    assert lat(relaxed) <= 6.0 and lat(relaxed) > lat(top)
    # no single step lower fits: every remaining one would cross 6 ms
    assert all(lat({**relaxed, n: (s, r - 0.25)}) > 6.0 for n, (s, r) in relaxed.items() if r > 0)
    # through plan_for_target: collapsed groups no longer set rates the target does not need
    with torch.no_grad():
        for _, conv in net.prunable():
            conv.weight[: conv.weight.shape[0] * 3 // 4] = 0.0        # 75 % of every layer's filters collapsed
    plan = plan_for_target(net, {n: "filter" for n in top}, cfg, [0.0, 0.25, 0.5, 0.75], 0.1, lat, 8.0, None)
    assert lat(plan) <= 8.0 and any(r < 0.75 for _, r in plan.values())


def test_no_regularization_when_the_dense_network_meets_the_target(monkeypatch):
    import srnas.pruning.reweighted as rw
    penalties = []
    real = rw.masked_finetune
    monkeypatch.setattr(rw, "masked_finetune", lambda *a, penalty=None, **k: penalties.append(penalty) or
                        real(*a, penalty=penalty, **k))
    for target in (100.0, 5.0):            # the dense network takes 10 ms by the stand-in
        net, sampler, cfg, lat = _setup(2, 2)
        _, _, plan = rw.reweighted_prune(net, sampler, cfg, latency_fn=lat, target_ms=target, schemes="filter",
                                         log=lambda s: None)
    assert penalties[0] is None and penalties[2] is not None     # [reg, fine-tune] per target
    assert lat(plan) <= 5.0
