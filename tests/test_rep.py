"""Training-time branches (model.rep: ecb): exact fold into one 3x3 conv, kept while a conv trains unpruned,
folded for masks, QAT and the pruned-model file."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srnas.pruning import PrunedModel, apply_plan, compact, prune_to_target
from srnas.supernet.config import ConfigError, ModelConfig, PruningConfig, build_section, config_from_dict
from srnas.supernet.model import SuperNet
from srnas.supernet.rep import EdgeBranches, fold_branches, has_branches, rep_conv

torch.set_num_threads(1)
MODEL = {"n_cells": 2, "n_feats": 8, "blocks": ["plain", "wdsr_b"], "expansion_b": 2, "rep": "ecb"}


def test_the_folded_conv_computes_every_branch_exactly():
    """One 3x3 conv equals the branches computed one by one: main 3x3, 1x1 then 3x3, scaled Sobel x / y and
    Laplacian after a 1x1 per pair, and the identity."""
    torch.manual_seed(0)
    conv = rep_conv(6, 6, "ecb")
    br: EdgeBranches = conv.parametrizations.weight[0]
    with torch.no_grad():
        for p in (br.squeeze, br.edge):
            p.normal_()
    x = torch.randn(2, 6, 9, 11)
    main = conv.parametrizations.weight.original
    expected = F.conv2d(x, main, conv.bias, padding=1)
    expected += F.conv2d(F.conv2d(x, br.expand[:, :, None, None]), br.squeeze, padding=1)
    for f in range(3):   # a 1x1 conv (cin -> cout) then the fixed filter on each of its channels
        mid = F.conv2d(x, br.edge[f][:, :, None, None])
        expected += F.conv2d(mid, br.filters[f].expand(6, 1, 3, 3).contiguous(), padding=1, groups=6)
    expected += x
    with torch.no_grad():
        assert torch.allclose(conv(x), expected, atol=1e-4)
        folded = fold_branches(conv)
        assert not has_branches(folded) and type(folded.weight) is torch.nn.Parameter
        assert torch.allclose(folded(x), expected, atol=1e-4)


def test_only_the_plain_cells_conv_trains_with_branches():
    cfg = build_section(ModelConfig, MODEL)
    net = SuperNet(cfg, 2).extract(("plain", "wdsr_b"))
    with_branches = {n for n, m in net.named_modules() if has_branches(m)}
    assert with_branches == {"body.0.body.0"}   # the plain cell's conv (on WDSR-B's 3x3 they broke training)
    assert not any(has_branches(m) for m in SuperNet(build_section(ModelConfig, {**MODEL, "rep": "none"}), 2).modules())
    with pytest.raises(ConfigError, match="model.rep"):
        config_from_dict({"model": {**MODEL, "rep": "acb"}})


def test_masks_fold_the_pruned_convs_and_the_file_holds_plain_convs(tmp_path):
    """A pruned conv loses its branches (masks hold plain weights); an unpruned one keeps them through the
    fine-tune; stage 3's file is plain convs whose compact form computes what the trained net did."""
    cfg = config_from_dict({
        "name": "rep", "run_dir": str(tmp_path),
        "data": {"train": ["skimage"], "val": "skimage", "patch_size": 12, "batch_size": 2},
        "model": MODEL, "train": {"qat_steps": 2},
        "latency": {"backend": "onnxruntime", "precision": "int8", "lr_height": 12, "lr_width": 16},
        "pruning": {"schemes": ["none", "filter"], "reg_steps": 2, "finetune_steps": 3, "channel_multiple": 1}})
    torch.manual_seed(0)
    net = SuperNet(cfg.model, 2).extract(("plain", "plain"))
    masks = apply_plan(net, {"body.0.body.0": ("filter", 0.5)}, PruningConfig(channel_multiple=1))
    assert list(masks.weight) == ["body.0.body.0"]
    assert not has_branches(net.get_submodule("body.0.body.0")) and has_branches(net.get_submodule("body.1.body.0"))
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.allclose(compact(net, masks)(x), net.eval()(x), atol=1e-4)

    from srnas.pruning import Executor, Timer

    timer = Timer(Executor("onnxruntime", "int8", "nchw", (12, 16), 1), lambda m, r: {"median_ms": 1.0, "iqr_ms": 0.0})
    pm = prune_to_target(cfg, lambda: SuperNet(cfg.model, 2).extract(("plain", "plain")), ["plain", "plain"],
                         "filter", tmp_path / "stage3", timer, lambda plan: 1.0, 2.0, log=lambda s: None)
    again = PrunedModel.load(tmp_path / "stage3" / "pruned.pt")
    assert again.qat_steps == 2 and not any("parametrizations" in k for k in again.state)
    loaded = again.net()
    assert not any(has_branches(m) for m in loaded.modules())
    with torch.no_grad():
        assert torch.allclose(again.compact()(x), pm.net()(x), atol=1e-4)


def test_folding_or_fusing_a_copy_leaves_the_original_intact():
    """copy.deepcopy shares torch's parametrized class; removing the parametrization of the copy (stage 3 times
    plans on copies) once took the original's weight away."""
    import copy

    from srnas.supernet.blocks import fuse_weight_norm, make_block
    from srnas.supernet.rep import fold_branches

    for block, undo in (("plain", fold_branches), ("wdsr_b", fuse_weight_norm)):
        blk = make_block(block, 8, rep="ecb" if block == "plain" else "none")
        x = torch.rand(1, 8, 6, 6)
        with torch.no_grad():
            ref = blk(x)
        undo(copy.deepcopy(blk))
        with torch.no_grad():
            assert torch.equal(blk(x), ref) and blk.body[0].weight is not None
