"""Exported TorchScript and ONNX load in a fresh process without srnas and match the toolkit model."""
import subprocess
import sys

import numpy as np
import torch

from pruning import apply_plan, compact, export_model
from supernet.config import PruningConfig, load_config
from supernet.model import build_path_net

torch.set_num_threads(1)
MC = load_config("experiments/configs/quick.yaml").model

RUNNER = """
import sys, numpy as np, torch, onnxruntime as ort
x = np.load(sys.argv[1])
ts = torch.jit.load(sys.argv[2])
with torch.no_grad():
    a = ts(torch.from_numpy(x)).numpy()
sess = ort.InferenceSession(sys.argv[3], providers=["CPUExecutionProvider"])
b = sess.run(None, {sess.get_inputs()[0].name: x})[0]
np.save(sys.argv[4], np.stack([a, b]))
"""


def test_export_matches(tmp_path):
    torch.manual_seed(0)
    net = build_path_net(MC, 2, ["wdsr_b", "wdsr_a"]).eval()
    names = [n for n, _ in net.prunable()]
    plan = dict(zip(names, [("block", 0.75), ("filter", 0.5), ("pattern", 0.5), ("filter", 0.5), ("block", 0.5)]))
    small = compact(net, apply_plan(net, plan, PruningConfig()))
    paths = export_model(small, tmp_path / "exp", lr_hw=(24, 32))
    x = torch.rand(1, 3, 30, 22)               # another size than traced: H/W are dynamic
    np.save(tmp_path / "x.npy", x.numpy())
    # a fresh interpreter in an empty dir, with srnas off the path: only torch / onnxruntime
    subprocess.run([sys.executable, "-I", "-c", RUNNER, str(tmp_path / "x.npy"), paths["torchscript"],
                    paths["onnx"], str(tmp_path / "y.npy")], check=True, cwd=tmp_path)
    with torch.no_grad():
        ref = small(x).numpy()
    ts_out, onnx_out = np.load(tmp_path / "y.npy")
    assert ts_out.shape == ref.shape == (1, 3, 60, 44)
    assert np.abs(ts_out - ref).max() <= 1e-4
    assert np.abs(onnx_out - ref).max() <= 1e-4
