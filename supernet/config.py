"""One YAML file per run, loaded into typed dataclasses and validated at load.

Every package reads its own section (``data``, ``model``, ``train``, ``latency``,
``pruning``, ``search``, ``zoo``); the sections live here, in the package every other
one may import, so a single load checks the whole file. Unknown keys and wrong types
raise :class:`ConfigError` naming the dotted key path.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import UserError


class ConfigError(UserError, ValueError):
    """A config file that does not match the schema; the message names the key path."""


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["skimage"])  # HR folders, or "skimage" (embedded)
    val: str = "skimage"                  # HR folder (e.g. ../shared/data/benchmarks/Set5) or "skimage"
    benchmarks: list[str] = field(default_factory=lambda: ["Set5"])  # names under data_root, or folders
    data_root: str = ""                   # default: $SRNAS_DATA, else ../shared/data/benchmarks
    scale: int = 2
    patch_size: int = 48                  # LR patch side
    batch_size: int = 16
    augment: bool = True                  # random flips and 90-degree rotations


@dataclass
class ModelConfig:
    n_cells: int = 4
    blocks: list[str] = field(default_factory=lambda: ["wdsr_a", "wdsr_b"])
    n_feats: int = 32
    expansion_a: int = 4                  # WDSR-A wide-activation factor
    expansion_b: int = 6                  # WDSR-B wide-activation factor
    low_rank: float = 0.8                 # WDSR-B linear low-rank ratio
    res_scale: float = 1.0
    skip: Literal["bicubic_conv", "anchor"] = "bicubic_conv"


@dataclass
class TrainConfig:
    steps: int = 1000
    epoch_steps: int = 100               # checkpoint + validation every this many steps
    lr: float = 1e-3
    lr_min: float = 1e-5                  # cosine schedule floor
    weight_decay: float = 0.0
    seed: int = 0
    sampling: Literal["uniform"] = "uniform"
    block_probs: list[float] = field(default_factory=list)  # per-block sampling weights; empty = uniform
    val_paths: int = 4                    # fixed paths validated every epoch
    threads: int = 0                      # torch threads per process; 0 = torch default


@dataclass
class LatencyConfig:
    backend: Literal["torch-cpu", "torch-cpu-cl", "onnxruntime", "torch-cuda"] = "torch-cpu"
    threads: int = 0                      # 0 = all cores of this machine
    lr_height: int = 360                  # input (LR) size the target refers to
    lr_width: int = 640
    target_ms: float = 0.0                # latency budget; 0 = none
    warmup: int = 1                       # untimed rounds (a round runs each op of a chunk once)
    repeats: int = 5                      # timed rounds; noisy ops get up to repeats // 2 + 1 more
    rates: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])
    lut: str = ""                         # explicit LUT path; default <run>/latency/lut-<backend>.csv
    strict: bool = False                  # refuse a LUT from another device
    calib_samples: int = 6                # whole random candidates timed at build to calibrate the op sum; 0 = none
    granularity: Literal["op", "block"] = "op"   # LUT rows per conv/ReLU/add, or per whole block at its widths


@dataclass
class PruningConfig:
    schemes: list[str] = field(default_factory=lambda: ["none", "unstructured", "filter", "block", "pattern"])
    block_size: list[int] = field(default_factory=lambda: [8, 4])  # (rows, cols) of a GEMM block
    pattern_taps: int = 4                 # taps kept per 3x3 kernel by pattern pruning
    n_patterns: int = 8                   # size of the pattern library
    prune_tail: bool = False              # head, tail and upsampler stay dense unless asked
    channel_multiple: int = 16            # live channels between convs padded up to a multiple (1 = exact):
                                          # conv kernels here run 1.5-2.7x faster at multiples of 16
    reg_lambda: float = 1e-4
    reg_steps: int = 300
    finetune_steps: int = 300
    eps: float = 1e-3


@dataclass
class SearchConfig:
    iterations: int = 5
    init_candidates: int = 8              # random valid candidates evaluated first
    top_h: int = 4                        # H: parents per iteration
    pool_c: int = 32                      # C: new candidates generated per iteration
    pick_b: int = 4                       # B: candidates evaluated for real per iteration
    ensemble: int = 5                     # M: predictor members
    acquisition: Literal["ucb", "ei", "ts"] = "ucb"
    ucb_beta: float = 2.0
    eval_steps: int = 50                  # masked fine-tune steps per evaluated candidate
    max_macs: float = 0.0                 # MAC budget at the LR size; 0 = none
    max_params: float = 0.0               # parameter budget; 0 = none
    seed: int = 0
    eval_lr: float = 2e-4                 # learning rate of the short masked fine-tune
    eval_batch: int = 0                   # batch size of that fine-tune; 0 = data.batch_size
    val_crop: int = 0                     # HR centre crop of validation images during the search; 0 = whole
    measure_latency: bool = False         # also time every evaluated candidate (slow; LUT is used to search)
    ablation: bool = True                 # also run random search with the same number of evaluations
    target_rel: float = 0.0               # if latency.target_ms is 0: target = this x LUT ms of the fastest dense path
    threads: int = 0                      # torch threads per process; 0 = torch default


@dataclass
class ZooConfig:
    steps: int = 2000
    lr: float = 1e-3
    lr_min: float = 1e-5
    epoch_steps: int = 200
    qat_steps: int = 300


@dataclass
class Config:
    name: str = "quick"
    run_dir: str = "runs"                 # outputs go to <run_dir>/<name>/
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)

    @property
    def out_dir(self) -> Path:
        """The run directory every stage writes into."""
        return Path(self.run_dir) / self.name


def _check(tp: Any, value: Any, where: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _check(arg, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        (item,) = typing.get_args(tp)
        return [_check(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} ({value!r})")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} ({value!r})")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} ({value!r})")
        return value
    raise TypeError(f"unsupported config type {tp} at {where}")


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = ", ".join(f"{prefix}{k}" if not prefix else f"{prefix}.{k}" for k in unknown)
        raise ConfigError(f"unknown config key(s): {where}; allowed here: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _check(hints[key], value, where)
    return cls(**kwargs)


def build_section(cls: type, data: dict, prefix: str = "") -> Any:
    """Build one config dataclass (e.g. ModelConfig saved with a checkpoint) from a mapping."""
    return _build(cls, data, prefix)


def validate(cfg: Config) -> Config:
    """Cross-field checks that types alone cannot express."""
    if cfg.data.scale not in (2, 3, 4):
        raise ConfigError(f"data.scale: {cfg.data.scale} is not supported; use 2, 3 or 4")
    if cfg.data.patch_size < 8:
        raise ConfigError(f"data.patch_size: {cfg.data.patch_size} is too small; use at least 8")
    for key in ("n_cells", "n_feats"):
        if getattr(cfg.model, key) < 1:
            raise ConfigError(f"model.{key}: must be positive")
    if not cfg.model.blocks:
        raise ConfigError("model.blocks: list at least one block type (e.g. [wdsr_a, wdsr_b])")
    probs = cfg.train.block_probs
    if probs and (len(probs) != len(cfg.model.blocks) or min(probs) < 0 or sum(probs) <= 0):
        raise ConfigError(
            f"train.block_probs: {probs} must hold one non-negative weight per entry of model.blocks "
            f"{cfg.model.blocks}, not all zero")
    if cfg.train.epoch_steps < 1 or cfg.train.steps < 1:
        raise ConfigError("train.steps and train.epoch_steps must be positive")
    if cfg.pruning.channel_multiple < 1:
        raise ConfigError(f"pruning.channel_multiple: {cfg.pruning.channel_multiple} must be at least 1 (1 = exact)")
    s = cfg.search
    if not 0 < s.pick_b <= s.pool_c:
        raise ConfigError(f"search.pick_b ({s.pick_b}) must be in 1..search.pool_c ({s.pool_c})")
    return cfg


def config_from_dict(data: dict | None, source: str = "<dict>") -> Config:
    """Build and validate a Config from a plain mapping (e.g. parsed YAML)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return validate(_build(Config, data))
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    """Load a YAML config file; ``overrides`` (nested dict) wins over the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see experiments/configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if overrides:
        data = _merge(data, overrides)
    return config_from_dict(data, str(path))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def config_to_dict(cfg: Config) -> dict:
    """Plain-dict view of a config (for saving the resolved config of a run)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
