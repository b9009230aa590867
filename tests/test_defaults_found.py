"""Defaults that find each other: `srnas latency import` writes where `run` / `latency check` look, and the LUT
granularity follows the executor when it is not set (block for ONNX Runtime and INT8)."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import tiny_config
from srnas.latency.build import default_lut_path, load_lut, lut_keys
from srnas.latency.lut import LUT, LUTFingerprintWarning, Row
from srnas.latency.catalogue import OpKey
from srnas.search.cli import main
from srnas.supernet.config import config_from_dict, load_config

PHONE = "op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,2.5\nconv,8,16,3,4,4,filter,0.5,1.5\n"


@pytest.mark.parametrize("backend, precision, rows", [("torch-cpu", "fp32", "op"), ("torch-cpu", "bf16", "op"),
                                                      ("onnxruntime", "fp32", "block"),
                                                      ("onnxruntime", "int8", "block"),
                                                      ("openvino", "int8", "block"), ("openvino", "fp32", "op")])
def test_granularity_follows_the_executor_when_not_set(backend, precision, rows):
    lat = config_from_dict({"latency": {"backend": backend, "precision": precision}}).latency
    assert lat.granularity == "auto" and lat.lut_granularity == rows


@pytest.mark.parametrize("given", ["op", "block"])
def test_an_explicit_granularity_is_kept(given):
    for backend, precision in (("torch-cpu", "fp32"), ("onnxruntime", "int8")):
        lat = config_from_dict({"latency": {"backend": backend, "precision": precision, "granularity": given}}).latency
        assert lat.lut_granularity == given


def test_an_auto_executor_gets_the_granularity_of_what_it_chose(tmp_path):
    cfg = load_config(tiny_config(tmp_path, latency={"backend": "auto", "precision": "auto"}))
    chosen = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, backend="openvino", precision="int8"))
    assert chosen.latency.lut_granularity == "block"
    assert any(k.op.startswith("block_") for k in lut_keys(chosen))
    torch_cfg = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, backend="torch-cpu", precision="fp32"))
    assert not any(k.op.startswith("block_") for k in lut_keys(torch_cfg))


def test_import_without_out_goes_where_run_and_check_look(tmp_path, capsys):
    src = tmp_path / "phone.csv"
    src.write_text(PHONE)
    cfg_file = tiny_config(tmp_path, latency={"backend": "onnxruntime"})
    assert main(["latency", "import", "-c", str(cfg_file), str(src), "--backend", "onnxruntime",
                 "--cpu-model", "Snapdragon 888"]) == 0
    out = capsys.readouterr().out
    cfg = load_config(cfg_file)
    path = default_lut_path(cfg)
    assert path.is_file() and f"into {path}" in out and "--allow-foreign-lut" in out
    with pytest.warns(LUTFingerprintWarning, match="Snapdragon 888"):
        lut = load_lut(dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, allow_foreign_lut=True)))
    assert lut.ms(OpKey("conv", 8, 16, 3, 4, 4)) == pytest.approx(2.5)
    # importing it again (a re-measurement of that device) replaces it
    assert main(["latency", "import", "-c", str(cfg_file), str(src), "--backend", "onnxruntime",
                 "--cpu-model", "Snapdragon 888"]) == 0


def test_import_for_another_executor_says_what_to_set(tmp_path, capsys):
    src = tmp_path / "phone.csv"
    src.write_text(PHONE)
    cfg_file = tiny_config(tmp_path)      # torch-cpu fp32
    assert main(["latency", "import", "-c", str(cfg_file), str(src), "--backend", "openvino",
                 "--cpu-model", "Board"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "tiny" / "latency" / "lut-openvino.csv").is_file()
    assert "does not read this file" in out and "latency.backend: openvino" in out


def test_import_does_not_overwrite_a_lut_of_another_device(tmp_path, capsys):
    src = tmp_path / "phone.csv"
    src.write_text(PHONE)
    cfg_file = tiny_config(tmp_path)
    cfg = load_config(cfg_file)
    here = LUT.create(default_lut_path(cfg), {"backend": "torch-cpu", "cpu_model": "this machine"})
    here.add(Row(OpKey("conv", 8, 16, 3, 4, 4), 1.0))
    before = here.path.read_text()
    assert main(["latency", "import", "-c", str(cfg_file), str(src), "--backend", "torch-cpu",
                 "--cpu-model", "Phone"]) == 2
    err = capsys.readouterr().err
    assert "holds a LUT of 'this machine'" in err and "--out" in err
    assert here.path.read_text() == before
