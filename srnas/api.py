"""The Python API behind `import srnas`: the same work as the command line, with typed results instead of exit codes."""
from __future__ import annotations

import json
import sys
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from srnas.experiments.models import LoadedModel
from srnas.experiments.models import load_model as _load_model
from srnas.supernet.config import Config, load_config
from srnas.supernet.errors import UserError

__all__ = ["load_model", "run", "bench"]


def load_model(name_or_path: str | Path, scale: int | None = None, *, weights_dir: str | Path | None = None,
               threads: int = 0) -> LoadedModel:
    """A shipped member (``srnas_abpn``, ``srnas_s``), a zoo name or a model file, with its metadata.

    ``.module`` is the torch module (None for an ONNX file), ``.scale`` its scale (a file's own; for a name,
    ``scale`` chooses among the scales it ships at), ``.precision`` the precision it runs in, ``.info`` the
    executor it was searched for (``backend``), the budget it was searched at (``searched_for``) and its steps.
    """
    return _load_model(str(name_or_path), scale, weights_dir, threads)


def _override(key: str, value: Any) -> str:
    """One ``--set`` item from a keyword: ``latency__target="50ms"`` or ``**{"latency.target": "50ms"}``."""
    text = value if isinstance(value, str) else json.dumps(value)   # JSON is YAML: lists, numbers, booleans
    return f"{key.replace('__', '.')}={text}"


def run(config: str | Path | Config, out: str | Path | None = None, **overrides: Any):
    """Every stage of ``srnas run`` (skipping finished ones) on ``config``; returns its typed result.

    ``overrides`` are config keys, dotted or with ``__``: ``srnas.run("cfg.yaml", name="q50",
    latency__target="50ms")``. Returns a ``RunResult`` (winner, stage-3 measurement, report path, stage times),
    or for ``latency.targets`` a ``FrontResult``. A winner that misses its target by measurement is returned
    with ``final.meets_target`` False (the command line exits 3 on it); bad input raises ``UserError``.
    """
    from srnas.search.front import run_front
    from srnas.search.pipeline import run_all
    from srnas.supernet.runlock import run_lock

    if not isinstance(config, (str, PathLike, Config)):
        raise UserError(f"config is a YAML file's path or a srnas Config, not a {type(config).__name__}: write it to "
                        f"a file, or build one with srnas.supernet.config.config_from_dict")
    if isinstance(config, Config):
        if overrides:
            raise UserError("pass overrides with a config file, or set them on the Config yourself")
        cfg = config
    else:
        cfg = load_config(config, [_override(k, v) for k, v in overrides.items()])
    rundir = cfg.run(str(out) if out else None)
    with run_lock(rundir.root):
        return run_front(cfg, rundir) if cfg.latency.targets else run_all(cfg, rundir)


def bench(models: list[str] | None = None, *, datasets: list[str] | None = None, scale: int = 2,
          out: str | Path = "bench", backend: str | None = None, precision: str | None = None,
          lr_hw: tuple[int, int] = (360, 640), repeats: int = 7, threads: int = 0,
          weights_dir: str | Path | None = None, data_root: str | None = None) -> pd.DataFrame:
    """``srnas bench``: PSNR / SSIM (Y) and latency of ``models`` (default: the zoo and this CPU's front) on
    ``datasets`` (default: Set5, Set14, B100 where found, else the embedded images); writes bench.csv,
    bench.md and bench.png into ``out`` and returns the table."""
    from srnas.experiments.bench import check_bench_args, default_models, run_bench
    from srnas.supernet.data import default_benchmarks

    check_bench_args(scale, lr_hw, repeats, threads)
    if isinstance(models, (str, Path)):   # one model, not its letters
        models = [str(models)]
    if models is None:
        models = default_models(scale, backend, precision, None if weights_dir is None else str(weights_dir),
                                say=_stderr)
    datasets = datasets or default_benchmarks(data_root)
    return run_bench(list(models), list(datasets), scale, out, data_root, lr_hw, threads,
                     None if weights_dir is None else str(weights_dir), repeats, backend, precision)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
