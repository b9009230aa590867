"""The device probe kit: probes -> run_probes.py in a clean process (no torch, no srnas) -> import -> a LUT
that prices every candidate the built LUT prices."""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srnas.latency.build import build_lut, executor_fingerprint, lut_keys
from srnas.latency.catalogue import block_templates, catalogue
from srnas.latency.check import random_candidate
from srnas.latency.executors import is_quantized
from srnas.latency.fingerprint import fingerprint_diff
from srnas.latency.lut import LUT
from srnas.latency.model import LatencyModel
from srnas.latency.probes import write_probes
from srnas.search.cli import main
from srnas.supernet.config import load_config
from srnas.supernet.errors import UserError
from srnas.supernet.widths import WidthRule

from conftest import tiny_config

PROJECT = {"supernet", "latency", "pruning", "search", "experiments", "torch"}

# runs the kit's script as `python run_probes.py ...` would, then says which modules it needed
CLEAN_CLIENT = """
import runpy, sys
sys.argv = ["run_probes.py"] + sys.argv[1:]
try:
    runpy.run_path("kit/run_probes.py", run_name="__main__")
except SystemExit as e:
    code = e.code
else:
    code = 0
loaded = sorted({m.split(".")[0] for m in sys.modules} & %r)
print("LOADED", loaded)
sys.exit(code if code else (3 if loaded else 0))
""" % (PROJECT,)


def _config(tmp_path: Path, schemes: tuple[str, ...] = ("none", "filter"), **latency) -> Path:
    """A tiny onnxruntime config at 12x16 with none/filter pruning (``latency`` overrides)."""
    lat = {"backend": "onnxruntime", "lr_height": 12, "lr_width": 16, "threads": 1, "repeats": 3, **latency}
    return tiny_config(tmp_path, latency=lat, pruning={"schemes": list(schemes)})


def _on_device(kit: Path, device: Path, *args: str) -> subprocess.CompletedProcess:
    """Copy the kit to a 'device' folder outside the repo and run its script there in an isolated Python."""
    shutil.copytree(kit, device / "kit", dirs_exist_ok=True)
    return subprocess.run([sys.executable, "-I", "-c", CLEAN_CLIENT, *args], cwd=device, capture_output=True,
                          text=True, timeout=120)


def test_round_trip_prices_what_the_build_prices(tmp_path):
    cfg_file = _config(tmp_path)
    cfg = load_config(cfg_file)
    kit = tmp_path / "kit"
    assert main(["latency", "probes", "-c", str(cfg_file), "--out", str(kit)]) == 0
    manifest = json.loads((kit / "manifest.json").read_text())
    lat = cfg.latency
    keys = catalogue(cfg.model, cfg.data.scale, (lat.lr_height, lat.lr_width), list(cfg.pruning.schemes), lat.rates,
                     WidthRule.of(cfg.pruning), lat.lut_granularity)
    assert len(manifest["probes"]) == len(lut_keys(cfg)) and set(keys) <= set(lut_keys(cfg))
    assert all((kit / p["file"]).is_file() for p in manifest["probes"] + [manifest["anchor"]])

    device = tmp_path / "device"
    device.mkdir()
    run = _on_device(kit, device, "--out", "lut.csv")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "LOADED []" in run.stdout          # numpy and onnxruntime only
    again = _on_device(kit, device, "--out", "lut.csv")      # a second run resumes: nothing left to time
    assert again.returncode == 0 and f"0 of {len(manifest['probes'])} probes" in again.stdout
    other = _on_device(kit, device, "--out", "lut.csv", "--cpu-model", "another board")
    assert other.returncode == 2 and "another device" in other.stderr

    imported = tmp_path / "imported.csv"
    assert main(["latency", "import", "-c", str(cfg_file), str(device / "lut.csv"), "--out", str(imported)]) == 0
    lut = LUT.load(imported, expected=executor_fingerprint(cfg))    # this machine's: not foreign
    assert not fingerprint_diff(lut.fingerprint, executor_fingerprint(cfg))
    assert set(keys) <= set(lut.rows)
    # the whole networks the build's calibration would time were timed on the device too: import fitted it
    assert lut.calibration is not None and lut.calibration["n"] == cfg.latency.calib_samples == 6

    built = build_lut(cfg, out=tmp_path / "built.csv", progress=False)
    assert set(built.rows) == set(lut.rows)
    probe_model = LatencyModel.for_config(lut, cfg, calibrate=False)
    build_model = LatencyModel.for_config(built, cfg, calibrate=False)
    rng = np.random.default_rng(0)
    templates = block_templates(cfg.model, cfg.data.scale)
    cands = [(path, {}) for path in itertools.product(sorted(templates), repeat=cfg.model.n_cells)]
    cands += [random_candidate(rng, templates, cfg.model.n_cells, cfg.pruning.schemes, lat.rates) for _ in range(12)]
    ratios = [probe_model.predict(p, plan) / build_model.predict(p, plan) for p, plan in cands]
    # the same ops timed by two harnesses on a shared machine: the same order, not the same figure
    assert 0.33 < float(np.median(ratios)) < 3.0, ratios


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_kit_holds_quantized_probes_and_imports_as_int8(tmp_path, backend):
    cfg_file = _config(tmp_path, backend=backend, precision="int8", granularity="block", schemes=("none",))
    kit = tmp_path / "kit"
    assert main(["latency", "probes", "-c", str(cfg_file), "--out", str(kit)]) == 0
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["precision"] == "int8"
    weighted = [p for p in manifest["probes"] if p["key"]["op"].startswith(("conv", "block"))]
    assert weighted and all(is_quantized(kit / p["file"]) for p in weighted)
    blocks = [p for p in manifest["probes"] if p["key"]["op"].startswith("block_")]
    # a block's row is its share of a chain, timed as the build times it
    assert blocks and all(p["chain"]["extra"] >= 1 and is_quantized(kit / p["chain"]["file"]) for p in blocks)
    assert not list(kit.glob("*-fp32.onnx")) and not list(kit.glob("*_pre.onnx"))
    device = tmp_path / "device"
    device.mkdir()
    run = _on_device(kit, device, "--out", "lut.csv", "--repeats", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "LOADED []" in run.stdout
    imported = tmp_path / "imported.csv"
    assert main(["latency", "import", "-c", str(cfg_file), str(device / "lut.csv"), "--out", str(imported)]) == 0
    lut = LUT.load(imported, allow_foreign=True)
    assert (lut.backend, lut.fingerprint["precision"]) == (backend, "int8") and len(lut) == len(manifest["probes"])


def test_torch_and_auto_executors_are_refused(tmp_path, capsys):
    cfg_file = _config(tmp_path, backend="torch-cpu")
    with pytest.raises(UserError, match="onnxruntime or openvino"):
        write_probes(load_config(cfg_file), tmp_path / "kit", progress=False)
    assert main(["latency", "probes", "-c", str(cfg_file), "--out", str(tmp_path / "kit")]) == 2
    assert "onnxruntime or openvino" in capsys.readouterr().err
    auto = _config(tmp_path / "auto", backend="auto")
    assert main(["latency", "probes", "-c", str(auto), "--out", str(tmp_path / "kit")]) == 2
    assert "name the executor you deploy with" in capsys.readouterr().err
    assert not (tmp_path / "kit").exists()


def test_a_folder_of_other_files_is_not_overwritten(tmp_path, capsys):
    cfg_file = _config(tmp_path)
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    assert main(["latency", "probes", "-c", str(cfg_file), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "holiday.jpg").exists()


def test_a_new_kit_in_an_old_kits_folder_leaves_none_of_its_files(tmp_path):
    """Rewriting a kit removes every file the old manifest lists, the chain probes of block rows too."""
    cfg_file = _config(tmp_path, backend="onnxruntime", precision="fp32", granularity="block", schemes=("none",))
    kit = tmp_path / "kit"
    write_probes(load_config(cfg_file), kit, progress=False)
    stale = kit / "0000-stale_chain.onnx"
    manifest = json.loads((kit / "manifest.json").read_text())
    block = next(p for p in manifest["probes"] if p.get("chain"))
    (kit / block["chain"]["file"]).rename(stale)
    block["chain"]["file"] = stale.name
    (kit / "manifest.json").write_text(json.dumps(manifest))
    write_probes(load_config(cfg_file), kit, progress=False)
    assert not stale.exists()
