"""Quantization-aware fine-tuning (pruning.quant) and stage 3's use of it for INT8 executors."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from srnas.pruning import Executor, PrunedModel, Timer, apply_plan, prune_to_target
from srnas.pruning.quant import fake_quantized, prepare_qat, qat_finetune
from srnas.pruning.stage3 import record
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import ModelConfig, PruningConfig, build_section, config_from_dict
from srnas.supernet.data import PatchSampler, load_images, lr_crops
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

from conftest import DiesAt, Killed

torch.set_num_threads(1)
PATH = ["wdsr_b", "wdsr_a"]
MODEL = {"n_cells": 2, "n_feats": 8, "expansion_a": 2, "expansion_b": 2}   # bicubic skip (the default)


def _net(path=PATH, seed: int = 0) -> nn.Module:
    """A tiny fused path net with a bicubic global skip."""
    torch.manual_seed(seed)
    return fuse_weight_norm(build_path_net(build_section(ModelConfig, {**MODEL, "n_cells": len(path)}), 2, path))


def _masked(seed: int = 0):
    """The tiny net filter-pruned at 0.5 in every prunable conv, and its masks."""
    net = _net(seed=seed)
    masks = apply_plan(net, {n: ("filter", 0.5) for n, _ in net.prunable()}, PruningConfig(channel_multiple=1))
    return net, masks


def _sampler(seed: int = 0) -> PatchSampler:
    return PatchSampler(load_images("skimage", "train"), 2, 12, 2, True, seed, 0)


def test_every_conv_but_the_skip_is_fake_quantized_and_the_skip_path_stays_float():
    net, _ = _masked()
    prepared = prepare_qat(copy.deepcopy(net))
    fq = set(fake_quantized(prepared))
    assert {f"{n}.weight_fake_quant" for n, _ in net.prunable()} | {"head.weight_fake_quant",
                                                                      "tail.weight_fake_quant"} <= fq
    assert not any(n.startswith("skip") for n in fq)
    assert type(prepared.get_submodule("skip.conv")) is nn.Conv2d      # a float conv: no weight fake quantization
    # with the body's share zeroed, the fake-quantized net is the float skip exactly: nothing rounds the skip's
    # output, the sum or the shuffle (as the deployed QDQ file keeps them float)
    with torch.no_grad():
        net.tail.weight.zero_()
        net.tail.bias.zero_()
        prepared = prepare_qat(copy.deepcopy(net)).eval()
        x = torch.rand(1, 3, 10, 12)
        assert torch.equal(prepared(x), net.eval()(x))


def test_qat_keeps_pruned_weights_zero_and_returns_the_float_net():
    net, masks = _masked()
    before = copy.deepcopy(net)
    out = qat_finetune(net, _sampler(), 4, 1e-3, masks, progress=False)
    assert out is net and type(out) is type(before) and not fake_quantized(out)
    for name, conv in out.prunable():
        assert torch.count_nonzero(conv.weight * (1 - masks.weight[name])) == 0, name
        if name in masks.bias:
            assert torch.count_nonzero(conv.bias * (1 - masks.bias[name])) == 0, name
    assert not torch.equal(out.tail.weight, before.tail.weight)       # it trained
    assert torch.count_nonzero(masks.weight["body.0.body.0"] == 0) > 0


def test_the_int8_file_of_qat_weights_is_closer_to_the_float_net_than_ptq(tmp_path):
    """QAT adapts the weights to the grid the deployed QDQ file rounds to.

    The float net is the target (its own outputs are the HR batches), so a float fine-tune cannot
    improve on it and only quantization error is left to learn away. One conv's per-channel int8 scale
    is set by large weights on a channel that a ReLU keeps at zero (function unchanged), so PTQ rounds
    its live weights coarsely. QAT must bring the QDQ file (ONNX Runtime, calibrated on real LR crops)
    clearly closer to the float net than PTQ of the un-adapted weights; without fake quantization, or
    with the weights not handed back, the two files are the same.
    """
    from srnas.latency.executors import make_infer
    from srnas.search.stage3 import qat_grid

    net = _net(["wdsr_a"]).eval()
    with torch.no_grad():
        c1, c2 = net.body[0].body[0], net.body[0].body[2]
        c1.weight[0], c1.bias[0] = 0.0, -1.0                       # channel 0 is dead after the ReLU
        c2.weight[:, 0] = 100 * c2.weight.abs().max()              # and sets every int8 scale of c2
    teacher = copy.deepcopy(net)
    images = load_images("skimage", "train")
    inner = _sampler()

    class Distil:
        def sample(self, step):
            x = inner.sample(step)[0]
            with torch.no_grad():
                return x, teacher(x)

    crops = lr_crops(images, 2, n=4, size=48)
    xs = [c[..., :24, :24] for c in crops]

    def error(tag: str, m: nn.Module) -> float:
        run = make_infer(copy.deepcopy(m).eval(), [torch.rand(1, 3, 16, 16)], "onnxruntime", 1, "int8",
                         [[c] for c in crops], dynamic=True, workdir=tmp_path / tag)
        with torch.no_grad():
            return float(np.mean([(run(x) - teacher(x)).abs().mean().item() for x in xs]))

    qat = qat_finetune(copy.deepcopy(net), Distil(), 30, 1e-4, grid=qat_grid(), progress=False)
    ptq_err, qat_err = error("ptq", net), error("qat", qat)
    assert qat_err < 0.8 * ptq_err, (qat_err, ptq_err)


def test_interrupted_and_resumed_qat_equals_uninterrupted(tmp_path):
    net, masks = _masked()
    ref = qat_finetune(copy.deepcopy(net), _sampler(), 7, 1e-3, masks, progress=False)
    ckpt, logs = tmp_path / "qat.pt", []
    with pytest.raises(Killed):          # killed in step 6 (saved after 2 and 4)
        qat_finetune(copy.deepcopy(net), DiesAt(_sampler(), 6), 7, 1e-3, masks, checkpoint=ckpt, save_every=2,
                     log=logs.append, progress=False)
    got = qat_finetune(copy.deepcopy(net), _sampler(), 7, 1e-3, masks, checkpoint=ckpt, save_every=2,
                       log=logs.append, progress=False)
    assert any("resuming qat at step 4/7" in s for s in logs), logs
    for k, v in ref.state_dict().items():
        assert torch.allclose(got.state_dict()[k], v, atol=1e-6), k
    with pytest.raises(UserError, match="other settings.*lr"):   # a changed setting never continues an old run
        qat_finetune(copy.deepcopy(net), _sampler(), 7, 2e-3, masks, checkpoint=ckpt, progress=False)


def _stage3_cfg(tmp_path, precision: str, qat_steps: int = 3):
    return config_from_dict({
        "name": "q", "run_dir": str(tmp_path),
        "data": {"train": ["skimage"], "val": "skimage", "patch_size": 12, "batch_size": 2},
        "model": MODEL, "train": {"qat_steps": qat_steps},
        "latency": {"backend": "onnxruntime", "precision": precision, "lr_height": 12, "lr_width": 16},
        "pruning": {"schemes": ["none", "filter"], "reg_steps": 2, "finetune_steps": 2}})


def _timer(cfg) -> Timer:
    """A stand-in timer (stage 3's latency is not under test here)."""
    lat = cfg.latency
    return Timer(Executor(lat.backend, lat.precision, "nchw", (lat.lr_height, lat.lr_width), 1),
                 lambda module, repeats: {"median_ms": 1.0, "iqr_ms": 0.0})


def _stage3(cfg, logs: list, **kw) -> PrunedModel:
    """Stage 3 of the tiny path with a latency stand-in whose target needs pruning."""
    lat = lambda plan: 10.0 * (1 - sum(r for _, r in plan.values()) / len(plan))  # noqa: E731
    return prune_to_target(cfg, lambda: _net(), PATH, "filter", cfg.out_dir / "stage3", _timer(cfg), lat, 6.0,
                           candidate={"path": PATH}, log=logs.append, **kw)


def test_stage3_of_an_int8_executor_ends_with_qat_and_says_so(tmp_path):
    logs: list[str] = []
    fp32 = _stage3(_stage3_cfg(tmp_path / "a", "fp32"), logs)
    assert fp32.qat_steps == 0 and not fp32.qat_adapted and fp32.qat_grid is None
    pm = _stage3(_stage3_cfg(tmp_path / "b", "int8"), logs, qat_grid="qdq7")
    sdir = tmp_path / "b" / "q" / "stage3"
    again = PrunedModel.load(sdir / "pruned.pt")
    assert again.qat_steps == 3 and again.qat_adapted and again.qat_grid == "qdq7" and pm.precision == "int8"
    assert not (sdir / "qat.pt").exists() and not (sdir / "checkpoint.pt").exists()
    assert again.masks.weight
    for name, m in again.masks.weight.items():     # the saved QAT weights (not re-masked on load) keep the pruning
        assert torch.count_nonzero(again.state[f"{name}.weight"] * (1 - m)) == 0, name
    assert any("quantization-aware fine-tune (3 steps" in s for s in logs), logs
    # finished: returned as it is
    logs.clear()
    assert _stage3(_stage3_cfg(tmp_path / "b", "int8"), logs).qat_steps == 3
    assert any("exists; skipping" in s for s in logs) and not any("quantization-aware" in s for s in logs), logs
    # weights adapted by another QAT length are not reused silently
    with pytest.raises(UserError, match="after 3 quantization-aware steps.*asks for 5"):
        _stage3(_stage3_cfg(tmp_path / "b", "int8", qat_steps=5), logs)


def test_a_float_trained_pruned_model_gets_only_the_qat_it_lacks(tmp_path):
    """A pruned.pt written without QAT (fp32, an older srnas) is QAT fine-tuned from its weights, not pruned again."""
    logs: list[str] = []
    plain = _stage3(_stage3_cfg(tmp_path, "fp32"), logs)
    logs.clear()
    pm = _stage3(_stage3_cfg(tmp_path, "int8"), logs, qat_grid="qdq")
    assert plain.qat_steps == 0 and pm.qat_steps == 3 and pm.plan == plain.plan
    assert not torch.equal(pm.state["tail.weight"], plain.state["tail.weight"])
    assert any("adding the quantization-aware fine-tune" in s for s in logs), logs
    assert not any("reweighted" in s for s in logs), logs


def test_stage3_killed_in_qat_resumes_there(tmp_path, monkeypatch):
    """Killed mid-QAT, stage 3 keeps its pruning (no step redone) and QAT resumes: same weights as one go."""
    import srnas.pruning.stage3 as stage3

    cfg = _stage3_cfg(tmp_path / "ref", "int8", qat_steps=6)
    ref = _stage3(cfg, [], qat_grid="qdq")
    real = stage3.stage3_sampler
    monkeypatch.setattr(stage3, "stage3_sampler",
                        lambda c, stream=1: DiesAt(real(c, stream), 5) if stream == 2 else real(c, stream))
    cfg = _stage3_cfg(tmp_path / "run", "int8", qat_steps=6)
    with pytest.raises(Killed):      # in QAT step 5 (saved after the 1st..4th: save_every of 6 steps is 1)
        _stage3(cfg, [], qat_grid="qdq")
    sdir = cfg.out_dir / "stage3"
    assert (sdir / "checkpoint.pt").exists() and (sdir / "qat.pt").exists() and not (sdir / "pruned.pt").exists()
    monkeypatch.setattr(stage3, "stage3_sampler", real)
    logs: list[str] = []
    got = _stage3(cfg, logs, qat_grid="qdq")
    assert any("resuming qat at step 4/6" in s for s in logs), logs
    assert not any("resuming regularization" in s for s in logs), logs
    assert got.plan == ref.plan and got.qat_steps == 6
    for k, v in ref.state.items():
        assert torch.allclose(got.state[k], v, atol=1e-6), k


def test_a_final_timing_over_the_target_is_taken_again_and_the_fastest_kept(tmp_path):
    """One slow timing of the finished model (load on the machine) does not fail a winner that meets its target."""
    cfg = _stage3_cfg(tmp_path, "fp32")
    lat = cfg.latency
    timings = iter([7.0, 5.5, 6.5, 1.0])   # the final model: over the 6 ms target, then under it
    ex = Executor(lat.backend, lat.precision, "nchw", (lat.lr_height, lat.lr_width), 1)
    final = Timer(ex, lambda module, repeats: {"median_ms": next(timings), "iqr_ms": 0.0})
    net = _net()
    masks = apply_plan(net, {}, cfg.pruning)
    pm = record(cfg, net, PATH, masks, {}, final, target_ms=6.0)
    assert pm.measured_ms == 5.5 and next(timings) == 6.5   # stopped once under the target
    slow = iter([7.0, 8.0, 6.8, 1.0])
    pm = record(cfg, net, PATH, masks, {}, Timer(ex, lambda m, r: {"median_ms": next(slow)}),
                target_ms=6.0)
    assert pm.measured_ms == 6.8 and next(slow) == 1.0       # at most two more timings: a real miss stays a miss
    once = iter([7.0, 1.0])
    pm = record(cfg, net, PATH, masks, {}, Timer(ex, lambda m, r: {"median_ms": next(once)}))
    assert pm.measured_ms == 7.0                               # no target: nothing to meet, one timing


def test_calibration_crops_shrink_to_what_the_images_hold():
    """INT8 calibration at x4 of small training images (T91, BSD200: no 96 px LR square) takes the largest
    square there is instead of none (a whole x4 front once stopped at its first export for want of crops)."""
    from srnas.supernet.data import HRImage
    rng = np.random.default_rng(0)
    shapes = [(320, 320), (360, 400), (200, 480)]            # LR at x4: 80x80, 90x100, 50x120
    images = [HRImage(f"i{k}", rng.integers(0, 256, (*hw, 3), dtype=np.uint8)) for k, hw in enumerate(shapes)]
    assert [tuple(c.shape) for c in lr_crops(images, 4, n=2, size=96)] == [(1, 3, 80, 80)] * 2
    assert [tuple(c.shape) for c in lr_crops(images, 4, n=8, size=96)] == [(1, 3, 50, 50)] * 3
    assert [tuple(c.shape) for c in lr_crops(images, 2, n=8, size=96)] == [(1, 3, 96, 96)] * 3
