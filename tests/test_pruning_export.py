"""Exported TorchScript and ONNX load in a fresh process without srnas and match the toolkit model."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from srnas.pruning import apply_plan, compact, export_model
from srnas.supernet.config import PruningConfig, load_config
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

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


def _stage3_model(tmp_path):
    """A tiny config and the pruned.pt that stage 3 (pruning.prune_to_target) writes for one of its paths."""
    from srnas.pruning import prune_to_target
    from srnas.search.stage3 import timer_for
    from conftest import tiny_config

    cfg_path = tiny_config(tmp_path, latency={"lr_height": 12, "lr_width": 16, "threads": 1, "repeats": 3},
                           pruning={"schemes": ["none", "filter"], "reg_steps": 3, "finetune_steps": 2})
    cfg = load_config(cfg_path)
    torch.manual_seed(0)
    net = build_path_net(cfg.model, cfg.data.scale, ["wdsr_b", "wdsr_a"])
    lat = lambda plan: 10.0 * (1 - sum(r for _, r in plan.values()) / len(plan))  # noqa: E731
    pm = prune_to_target(cfg, lambda: net, ["wdsr_b", "wdsr_a"], "filter", cfg.out_dir / "stage3", timer_for(cfg),
                         lat, 6.0, candidate={"path": ["wdsr_b", "wdsr_a"]}, log=lambda s: None)
    return cfg_path, cfg.out_dir / "stage3" / "pruned.pt", pm


def test_export_command_rebuilds_the_stage3_model_file(tmp_path, capsys):
    """`srnas export --model <run>/stage3/pruned.pt` needs nothing but the file: TorchScript + ONNX match it."""
    from srnas.pruning import PrunedModel
    from srnas.search.cli import main

    cfg_path, model, pm = _stage3_model(tmp_path)
    again = PrunedModel.load(model)
    assert again.path == ["wdsr_b", "wdsr_a"] and again.scale == 2 and again.model_cfg["n_feats"] == 8
    assert (again.backend, again.precision, again.layout, tuple(again.lr_hw)) == ("torch-cpu", "fp32", "nchw", (12, 16))
    assert again.measured_ms > 0 and again.predicted_ms <= 6.0 and again.candidate == {"path": ["wdsr_b", "wdsr_a"]}
    assert again.plan == pm.plan and any(r > 0 for _, r in again.plan.values())
    assert not (model.parent / "checkpoint.pt").exists()     # the model file replaced the progress file
    out = tmp_path / "X"
    assert main(["export", "-c", str(cfg_path), "--model", str(model), "--out", str(out)]) == 0
    x = torch.rand(1, 3, 14, 18)
    with torch.no_grad():
        ref = again.compact()(x).numpy()
        ts = torch.jit.load(str(out / "model.ts"))(x).numpy()
    import onnxruntime as ort
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(ts - ref).max() <= 1e-4 and np.abs(onnx_out - ref).max() <= 1e-4
    assert not list(out.glob("*.tmp"))


def test_old_model_file_asks_for_a_redo(tmp_path, capsys):
    """A pruned.pt of the earlier format (no model config / path) is refused with the fix, not a KeyError."""
    from srnas.search.cli import main
    from srnas.supernet import checkpoint

    cfg_path, model, pm = _stage3_model(tmp_path)
    old = tmp_path / "old.pt"
    checkpoint.atomic_save({"state": pm.state, "masks": pm.masks.to_dict(), "plan": pm.plan, "candidate": pm.candidate}, old)
    capsys.readouterr()
    assert main(["export", "-c", str(cfg_path), "--model", str(old), "--out", str(tmp_path / "Y")]) == 2
    err = capsys.readouterr().err
    assert "older format" in err and "--redo" in err and "Traceback" not in err and "KeyError" not in err


@pytest.mark.parametrize("block", ["plain", "dws"])
def test_export_of_the_new_cells_carries_only_the_live_work(tmp_path, block):
    """The exported ONNX of a pruned fast path (ABPN head / tail / anchor / clamp) matches the masked net and
    holds fewer conv weights than the dense export: the pruned channels are gone from the file."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    mc = load_config("experiments/configs/fast_x2.yaml", {"model": {"n_feats": 16}}).model
    path = [block, "wdsr_b", block, block]

    def conv_weights(onnx_path):
        g = onnx.load(onnx_path).graph
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        return sum(inits[n.input[1]].size for n in g.node if n.op_type == "Conv" and n.input[1] in inits)

    torch.manual_seed(0)
    net = build_path_net(mc, 2, path).eval()
    dense = export_model(compact(net, apply_plan(net, {}, PruningConfig())), tmp_path / "dense", lr_hw=(24, 32))
    plan = {n: ("filter", 0.5) for n, _ in net.prunable()}
    masks = apply_plan(net, plan, PruningConfig(channel_multiple=1))
    small = compact(net, masks)
    files = export_model(small, tmp_path / "small", lr_hw=(24, 32))
    x = torch.rand(1, 3, 30, 22)
    sess = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0] - ref).max() <= 1e-4
    assert conv_weights(files["onnx"]) < 0.75 * conv_weights(dense["onnx"])


def test_bench_and_upscale_take_the_model_file_and_its_exports(tmp_path, capsys):
    """The pruned.pt itself, and what `srnas export` wrote from it, run in `srnas bench` and `srnas upscale`."""
    import imageio.v3 as iio
    from srnas.search.cli import main

    cfg_path, model, _ = _stage3_model(tmp_path)
    out = tmp_path / "X"
    assert main(["export", "-c", str(cfg_path), "--model", str(model), "--out", str(out)]) == 0
    specs = [str(model), str(out / "model.ts"), str(out / "model.onnx")]
    assert main(["bench", "--models", ",".join(specs), "--datasets", "skimage", "--lr-size", "12x16",
                 "--repeats", "1", "--threads", "1", "--out", str(tmp_path / "b")]) == 0
    csv = (tmp_path / "b" / "bench.csv").read_text()
    psnrs = {float(line.split(",")[3]) for line in csv.splitlines()[1:]}
    assert len(csv.splitlines()) == 4 and max(psnrs) - min(psnrs) < 0.01   # three forms of one network
    iio.imwrite(tmp_path / "img.png", (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8))
    for spec in specs[:2]:
        assert main(["upscale", spec, str(tmp_path / "img.png"), "--out", str(tmp_path / "u")]) == 0
        assert iio.imread(tmp_path / "u" / "img.png").shape == (20, 24, 3)


def test_searched_zoo_models_load_from_their_pruned_file_with_precision_and_steps(tmp_path):
    """srnas_abpn / srnas_50ms are stage-3 files in the weights folder: their own precision, their steps."""
    import dataclasses
    from srnas.experiments import zoo
    from srnas.experiments.models import load_model
    from srnas.pruning.stage3 import winner_steps

    import json
    with pytest.raises(UserError, match="ship_winners.py"):
        load_model("srnas_abpn", 2, weights_dir=tmp_path)
    cfg_path, model, pm = _stage3_model(tmp_path)
    assert pm.train_steps == winner_steps(load_config(cfg_path)) > 0
    # a front member and its alias, as experiments/ship_winners.py writes them
    dataclasses.replace(pm, precision="int8").save(tmp_path / "srnas_s_x2.pt")
    (tmp_path / zoo.SEARCHED_FILE).write_text(json.dumps(
        {"cpu": "here", "config": "cpu_x2", "members": {"srnas_s": {"target_ms": 20.0, "x_abpn_int8": 1.0}},
         "aliases": {"srnas_abpn": "srnas_s"}}))
    m = load_model("srnas_abpn", 2, weights_dir=tmp_path)
    assert (m.name, m.precision, m.info["steps"]) == ("srnas_abpn", "int8", pm.train_steps)
    assert "cpu_x2 at 20 ms (1x abpn_int8) on here, as srnas_s" in m.config
    from srnas.experiments.bench import _size_counts
    from srnas.experiments.macs import count_params
    assert _size_counts(m, (8, 8))[0] == count_params(m.module)   # its own size, not ABPN-INT8's
    assert m.run(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    assert load_model("espcn", 2).info["steps"] == zoo.trained_steps("espcn", 2)
    # bench's default list takes it only where the runtime runs its precision
    from srnas.experiments.bench import shipped_models
    said = []
    assert shipped_models(2, None, None, str(tmp_path), say=said.append) == []
    assert said and "srnas_s: left out, it runs in int8" in said[-1]
    assert shipped_models(2, "onnxruntime", None, str(tmp_path)) == ["srnas_s"]   # members only, not the alias


def test_a_damaged_searched_json_names_itself_and_the_fix(tmp_path):
    from srnas.experiments import zoo
    from srnas.experiments.models import load_model
    (tmp_path / zoo.SEARCHED_FILE).write_text('{"members": {"srnas_s": ')   # cut short
    with pytest.raises(UserError, match=r"searched.json is damaged .*ship_winners.py"):
        load_model("srnas_abpn", 2, weights_dir=tmp_path)
