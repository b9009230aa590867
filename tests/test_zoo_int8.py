"""Every zoo model has an INT8 form (`<name>_int8`): QAT of its fp32 weights onto the INT8 executors' grid, loaded
with precision int8, and run by an INT8 executor as a QDQ file whose quality stays near the fp32 model's."""
from __future__ import annotations

import pytest
import torch

from srnas.experiments import zoo
from srnas.experiments.models import load_model
from srnas.experiments.zoo.int8 import train_zoo_int8
from srnas.search.stage3 import qat_grid
from srnas.experiments.zoo.training import train_zoo_model
from srnas.search.cli import main
from srnas.supernet.errors import UserError

from test_zoo_train import tiny_cfg


def test_every_trainable_zoo_model_but_abpn_has_an_int8_form():
    trainable = {n for n in zoo.names() if zoo.entry(n).trainable and n not in ("abpn", "wdsr_a")}
    assert set(zoo.INT8.values()) == trainable
    for name, base in zoo.INT8.items():
        assert zoo.entry(name) is zoo.entry(base)


@pytest.mark.parametrize("name", ["esr_cnn_int8", "wdsr_b_int8"])   # a Y-only model and an RGB one with a skip
def test_qat_writes_int8_weights_that_load_as_int8(tmp_path, name):
    cfg = tiny_cfg(tmp_path)
    base = zoo.INT8[name]
    fp32_path = train_zoo_model(cfg, base)
    path = train_zoo_int8(cfg, name)
    assert path.name == f"{name}_x2.pt" and not (path.parent / f"{name}_x2" / "checkpoint.pt").exists()
    blob = torch.load(path, weights_only=True)
    # the weights that scored higher in the INT8 route on the validation images are kept, and said which
    qat = blob["int8_val_psnr"]["qat"] >= blob["int8_val_psnr"]["ptq"]
    assert blob["qat_grid"] == (qat_grid() if qat else None)
    assert zoo.trained_steps(name, 2, weights=path) == zoo.trained_steps(base, 2, weights=fp32_path) + 2 * qat
    fp32 = zoo.load(base, 2, weights=fp32_path)
    m = load_model(name, 2, weights_dir=path.parent)
    assert (m.name, m.precision) == (name, "int8") and m.config.endswith("QAT" if qat else "PTQ")
    changed = [k for k, v in m.module.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, fp32.state_dict()[k])]
    assert bool(changed) == qat, "QAT weights differ from the fp32 ones; PTQ keeps them"
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert (m.run(x) - fp32(x)).abs().mean() < 0.05


def test_int8_form_runs_as_int8_in_an_int8_executor_and_is_listed(tmp_path):
    """bench deploys it in its own precision: a quantized QDQ file in ONNX Runtime."""
    from srnas.experiments.bench import deploy

    m = load_model("esr_max_int8", 2)   # the shipped weights
    d = deploy(m, "onnxruntime", None, 2, 1, (16, 16), tmp_path / "w")
    assert d.precision == "int8" and (tmp_path / "w" / "model_int8.onnx").is_file()
    y = d.run(torch.rand(1, 3, 16, 16))
    assert y.shape == (1, 3, 32, 32)
    from srnas.experiments.bench import shipped_models
    assert set(zoo.INT8) <= set(shipped_models(2, "onnxruntime"))
    # torch eager runs no INT8 QDQ file: left out, and said so
    assert not set(zoo.INT8) & set(shipped_models(2, None, say=lambda line: None))


def test_unknown_int8_name_lists_the_forms(tmp_path):
    with pytest.raises(UserError, match="espcn_int8"):
        load_model("nosuch_int8", 2)
    assert main(["zoo", "list"]) == 0


def test_bench_leaves_out_a_model_the_runtime_runs_in_another_precision(tmp_path, monkeypatch, capsys):
    """OpenVINO keeps some INT8 graphs in f32 (eSR's 1-channel convs on some CPUs): that model is left out and
    said so, the others are benched."""
    from srnas.experiments import bench
    from srnas.latency.runtimes.base import PrecisionFallback

    real = bench.deploy

    def deploy(m, backend, *a, **kw):
        if m.name == "esr_max_int8":
            raise PrecisionFallback("openvino int8: the compiled model runs its convolutions as {'f32': 2}")
        return real(m, "onnxruntime", *a, **kw)
    monkeypatch.setattr(bench, "deploy", deploy)
    df = bench.run_bench(["esr_max_int8", "espcn_int8"], ["skimage"], 2, tmp_path, lr_hw=(16, 16), repeats=1,
                         backend="onnxruntime")
    assert list(df.model) == ["espcn_int8"] and "esr_max_int8: left out" in capsys.readouterr().out
