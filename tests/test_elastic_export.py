"""Compact export of elastic members: a narrow and a deep one, pruned, run in ONNX Runtime as the masked net does."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from srnas.pruning import apply_plan, compact, export_model
from srnas.pruning.compaction import pruned_path_net
from srnas.supernet.config import ModelConfig, PruningConfig

from test_elastic_supernet import perturbed

CFG = ModelConfig(n_cells=[1, 3, 6], n_feats=[8, 16, 32], blocks=["plain", "wdsr_b"], expansion_b=6, rep="ecb",
                  clamp=True, elastic=True)

MEMBERS = {
    "narrow": (("plain",), 8, ("filter", 0.5)),
    "deep": (("wdsr_b", "plain", "wdsr_b", "plain", "wdsr_b", "wdsr_b"), 32, ("block", 0.5)),
}


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_a_compact_member_exports_and_matches_the_masked_net(tmp_path, member):
    path, width, layer = MEMBERS[member]
    net = perturbed(CFG).extract(path, width)
    names = [n for n, _ in net.prunable()]
    # alternate the pruned scheme with unstructured zeros, so width and zero pruning both reach the file
    plan = {n: layer if i % 2 == 0 else ("unstructured", 0.5) for i, n in enumerate(names)}
    masks = apply_plan(net, plan, PruningConfig())
    small = compact(net, masks).eval()
    x = torch.rand(1, 3, 20, 14)
    with torch.no_grad():
        ref = net(x)
        out = small(x)
    assert torch.allclose(ref, out, atol=1e-5)
    convs = [m for m in small.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels <= width and len(small.body) == len(path)
    files = export_model(small, tmp_path / member, lr_hw=(16, 16))
    sess = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert y.shape == (1, 3, 40, 28) and np.abs(y - ref.numpy()).max() <= 1e-4


def test_member_work_is_really_removed():
    """A pruned narrow member holds fewer weights than the dense one of its size (the LUT and calibration
    time exactly these compact nets)."""
    path, width, layer = MEMBERS["narrow"]
    member = perturbed(CFG).path_config(len(path), width)
    dense = pruned_path_net(member, 2, path, {}, PruningConfig())
    pruned = pruned_path_net(member, 2, path, {"body.0.body.0": layer}, PruningConfig())
    count = lambda m: sum(p.numel() for p in m.parameters())   # noqa: E731
    assert count(pruned) < count(dense)
