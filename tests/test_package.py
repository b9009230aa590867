"""srnas as a library: one top-level package, its API, `python -m srnas`, and a wheel that works with no repository."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import srnas
from srnas.api import _override
from srnas.supernet.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ["supernet", "latency", "pruning", "search", "experiments"]


def test_every_source_package_is_in_the_distribution():
    """A new sub-folder with an __init__.py must be listed in pyproject.toml, or the wheel silently lacks it."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = {"srnas"} | {"srnas." + ".".join(p.parent.relative_to(ROOT).parts)
                         for folder in FOLDERS for p in (ROOT / folder).rglob("__init__.py")}
    assert found == listed
    assert {k: v for k, v in tool["package-dir"].items() if k != "srnas"} == {f"srnas.{f}": f for f in FOLDERS}


def test_the_api_is_at_the_top_and_loads_lazily():
    code = "import sys, srnas; print('torch' in sys.modules, sorted(srnas.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False")   # `import srnas` (and so every `import srnas.x`) does not load torch
    for name in ("Upscaler", "LoadedModel", "load_model", "run", "bench", "__version__"):
        assert name in out and hasattr(srnas, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        srnas.nope  # noqa: B018


def test_load_model_gives_the_module_and_what_it_is():
    m = srnas.load_model("espcn")
    assert m.scale == 2 and m.precision == "fp32" and m.module is not None and m.info["steps"] > 0
    member = srnas.load_model("srnas_abpn")
    assert member.info["backend"] and member.info["searched_for"] and member.scale == 2


def test_run_overrides_read_as_config_keys():
    assert _override("latency__target", "50ms") == "latency.target=50ms"
    assert _override("latency.targets", ["1x", "2x"]) == 'latency.targets=["1x", "2x"]'
    assert _override("train__steps", 10) == "train.steps=10"


def test_run_refuses_bad_input_in_one_line(tmp_path):
    with pytest.raises(UserError, match="train.lr"):
        srnas.run(ROOT / "experiments/configs/quick.yaml", out=tmp_path, train__lr=-1)
    assert not any(tmp_path.iterdir())


def test_module_and_version():
    out = subprocess.run([sys.executable, "-m", "srnas", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"srnas {srnas.__version__}" and srnas.__version__ != "0+unknown"


def shadowing_project(where: Path) -> Path:
    """A user's project folder whose own modules have the names of srnas's stages (each fails if imported)."""
    where.mkdir(parents=True)
    for name in ("search", "latency", "pruning", "supernet"):
        (where / f"{name}.py").write_text(f"raise ImportError('the user\\'s own {name}.py was imported')\n")
    (where / "experiments").mkdir()
    (where / "experiments" / "__init__.py").write_text("raise ImportError('the user\\'s experiments/')\n")
    return where


def test_a_users_own_modules_do_not_shadow_srnas(tmp_path):
    project = shadowing_project(tmp_path / "project")
    code = ("import numpy as np, srnas; up = srnas.Upscaler('espcn', 'torch-cpu');"
            "print(up(np.zeros((12, 16, 3), np.uint8)).shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(24, 32, 3)"


@pytest.mark.slow
def test_the_wheel_installs_and_runs_with_no_repository(tmp_path):
    """`pip wheel .` -> a clean venv -> `import srnas` and `python -m srnas upscale` from a shadowing folder."""
    # from a copy: setuptools writes build/ into the source it builds
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "__pycache__",
                                                             "*.egg-info", ".pytest_cache"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dist)],
                   check=True, capture_output=True)
    (wheel,) = dist.glob("srnas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"srnas", f"{wheel.name.split('-py')[0]}.dist-info"}
    for shipped in ("srnas/experiments/weights/abpn_x2.pt", "srnas/experiments/configs/cpu_x2.yaml",
                    "srnas/latency/probe_runner.py", "srnas/api.py"):
        assert shipped in names
    assert any(n.startswith("srnas/experiments/weights/fronts/") and n.endswith(".json") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "srnas = srnas.search.cli:main" in entry

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    # srnas's dependencies from this environment, read as a plain path entry: its editable srnas hook (a .pth
    # there) does not run, so srnas can only come from the wheel
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "srnas_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    project = shadowing_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SRNAS_DATA")}
    code = ("import numpy as np, srnas, sys; assert srnas.__file__.startswith(sys.prefix), srnas.__file__;"
            "print(srnas.Upscaler('srnas_abpn')(np.zeros((24, 32, 3), np.uint8)).shape)")
    out = subprocess.run([str(py), "-c", code], cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "(48, 64, 3)"

    import imageio.v3 as iio
    iio.imwrite(project / "img.png", np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    out = subprocess.run([str(py), "-m", "srnas", "upscale", "srnas_abpn", "img.png", "--out", "up/"], cwd=project,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert iio.imread(project / "up" / "img.png").shape == (40, 60, 3)
    assert "Warning" not in out.stderr + out.stdout
    script = subprocess.run([str(venv / "bin" / "srnas"), "--version"], cwd=project, env=env, capture_output=True,
                            text=True)
    assert script.returncode == 0 and script.stdout.startswith("srnas ")


@pytest.mark.parametrize("call, says", [
    (lambda: srnas.Upscaler(42), "a model is a name .* not a int"),
    (lambda: srnas.load_model("espcn", "2"), r"scale '2': models upscale x2, x3 or x4"),
    (lambda: srnas.load_model("espcn", 5), "scale 5: models upscale x2, x3 or x4"),
    (lambda: srnas.run({"name": "x"}), "config is a YAML file's path or a srnas Config, not a dict"),
    (lambda: srnas.bench(["bicubic"], datasets=["skimage"], scale=7), "scale 7"),
    (lambda: srnas.bench(["bicubic"], datasets=["skimage"], repeats=0), "repeats 0"),
    (lambda: srnas.bench(["bicubic"], datasets=["skimage"], lr_hw=(0, 8)), r"latency input size \(0, 8\)"),
    (lambda: srnas.bench(["bicubic"], datasets=["skimage"], threads=-2), "threads -2: give a number")])
def test_api_arguments_of_the_wrong_kind_are_one_line(tmp_path, monkeypatch, call, says):
    """Each was a traceback from deep inside (espcn multiplied '2' * '2', torch padded a 0-row image) or, for
    bench, a table made at x7 or from no timed run, exit 0."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=says) as e:
        call()
    assert "\n" not in str(e.value) and not (tmp_path / "bench").exists()


def test_bench_takes_one_model_name_as_a_string(tmp_path):
    """`srnas.bench("bicubic")` benched the models 'b', 'i', 'c', ... (unknown model 'b')."""
    t = srnas.bench("bicubic", datasets=["skimage"], out=tmp_path / "b", lr_hw=(8, 8), repeats=1, threads=1)
    assert list(t["model"].unique()) == ["bicubic"]
