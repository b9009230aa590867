"""One YAML file per run, loaded into typed dataclasses and validated at load.

Every package reads its own section (``data``, ``model``, ``train``, ``latency``,
``pruning``, ``search``; the baseline zoo trains with ``train``); the sections live here, in the package every other
one may import, so a single load checks the whole file. Unknown keys and wrong types
raise :class:`ConfigError` naming the dotted key path.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import yaml

from .errors import UserError

if TYPE_CHECKING:
    from .rundir import RunDir


# The runtimes latency.backend may name: latency.runtimes.registry adds each one it registers (supernet does not
# import latency). Empty when no runtime is loaded; resolving the executor then checks the name.
RUNTIME_NAMES: set[str] = set()


class ConfigError(UserError, ValueError):
    """A config file that does not match the schema; the message names the key path."""


PRECISIONS = ("fp32", "bf16", "int8")   # what an executor computes in (latency.precision, a model file)

@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["skimage"])  # HR folders, or "skimage" (embedded)
    val: str = "skimage"                  # HR folder (e.g. ../shared/data/benchmarks/Set5) or "skimage"
    benchmarks: list[str] = field(default_factory=lambda: ["skimage"])  # names under data_root, folders, or skimage
    data_root: str = ""                   # default: $SRNAS_DATA, else ../shared/data/benchmarks
    scale: int = 2
    patch_size: int = 48                  # LR patch side
    batch_size: int = 16
    augment: bool = True                  # random flips and 90-degree rotations


@dataclass
class ModelConfig:
    # cells N and feature width: a number, a list to choose from, or auto; a list or auto is settled by
    # `srnas run` from the LUT before the supernet trains: the largest size whose paths can meet the target
    n_cells: int | list[int] | Literal["auto"] = 4
    blocks: list[str] = field(default_factory=lambda: ["wdsr_a", "wdsr_b"])
    n_feats: int | list[int] | Literal["auto"] = 32
    expansion_a: int = 4                  # WDSR-A wide-activation factor
    expansion_b: int = 6                  # WDSR-B wide-activation factor
    low_rank: float = 0.8                 # WDSR-B linear low-rank ratio
    expansion_dws: int = 2                # dws (inverted residual) expansion of its depthwise channels
    res_scale: float = 1.0
    skip: Literal["bicubic_conv", "bicubic_conv3", "conv", "anchor"] = "bicubic_conv"   # global skip: 5x5
                                          # (or 3x3) conv started at bicubic, 3x3 conv started at nearest, or
                                          # ABPN's anchor (no weights)
    head_act: Literal["none", "relu"] = "none"   # relu after the head conv (ABPN)
    tail: Literal["conv", "abpn"] = "conv"       # conv n -> 3s^2, or ABPN's conv n -> 3s^2, ReLU, conv 3s^2 -> 3s^2
    clamp: bool = False                   # clip the output to [0, 1] (ABPN)
    rep: Literal["none", "ecb"] = "none"  # training-time branches of the plain cells' 3x3 conv (ECBSR's 1x1-3x3,
                                          # Sobel, Laplacian, identity), folded into the conv before QAT and export
    elastic: bool = False                 # true: n_cells and n_feats list the depths and widths of ONE supernet
                                          # (weights at the largest, narrower paths take the first channels), and
                                          # every candidate picks its own depth and width (supernet.elastic)


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
    threads: int = 0                      # torch threads of supernet / zoo training; 0 = the process default
    qat_steps: int = 300                  # quantization-aware fine-tune steps (the zoo's INT8 ABPN)
    sandwich_random: int = 2              # elastic supernet: random paths per step beside the largest and smallest
    max_gmacs: float = 0.0                # elastic supernet: train only members of at most this many GMACs at
                                          # latency.lr_height x lr_width (0 = all); near the largest target's
                                          # size: members no target can take only cost time and pull shared weights
    distill: float = 0.0                  # elastic supernet: weight of the largest path's output (in-place
                                          # distillation) against the HR patch in the other paths' loss; from
                                          # step 0 any weight tried (1, 0.5, 0.2) left every member within 0.05
                                          # dB of bicubic after 300 steps (the shared zero-started tail stays at
                                          # zero when the members must agree); 0: +1.0-1.6 dB (Set5)


@dataclass
class LatencyConfig:
    backend: str = "torch-cpu"            # auto, or a registered runtime's name (torch-cpu, torch-cpu-cl: channels_last,
                                          # onnxruntime, openvino, torch-cuda, or one registered in
                                          # latency.runtimes.registry)
    precision: Literal["fp32", "bf16", "int8", "auto"] = "fp32"   # what the executor computes in
    threads: int = 0                      # threads of every timing (LUT, check, stage 3, bench); 0 = all cores
    lr_height: int = 360                  # input (LR) size the target refers to
    lr_width: int = 640
    target: str = ""                      # latency budget: "50ms" (absolute) or "0.85x" (x the fastest dense
                                          # path by the LUT); "" = none. A run saves the resolved ms.
    targets: list[str] = field(default_factory=list)   # a Pareto front instead: [25ms, 50ms, 0.9x] (each like
                                          # target) from one supernet, LUT and search, stage 3 + export per target
    soft_target: bool = False             # true: a winner that misses the target by measurement only warns
    warmup: int = 1                       # untimed rounds (a round runs each op of a chunk once)
    repeats: int = 5                      # timed rounds; noisy ops get up to repeats // 2 + 1 more
    rates: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75])
    lut: str = ""                         # explicit LUT path; default <run>/latency/lut-<backend>.csv
    allow_foreign_lut: bool = False       # use a LUT of another device/executor (e.g. imported from a phone):
                                          # otherwise such a LUT is refused at load
    calib_samples: int = 6                # whole random candidates timed at build to calibrate the op sum; 0 = none
    granularity: Literal["auto", "op", "block"] = "auto"   # LUT rows per conv/ReLU/add, or per whole block at its
                                          # widths; auto: block for ONNX Runtime and INT8 executors (they fuse
                                          # inside a block), op for the others

    @property
    def lut_granularity(self) -> str:
        """The LUT rows this executor is priced with: granularity as set, or what auto means for the executor."""
        if self.granularity != "auto":
            return self.granularity
        return "block" if self.backend == "onnxruntime" or self.precision == "int8" else "op"

    @property
    def target_ms(self) -> float:
        """The absolute budget in ms; 0 when none is set or it is still relative."""
        value, unit = parse_target(self.target)
        return value if unit == "ms" else 0.0

    @property
    def target_rel(self) -> float:
        """The relative budget (x the fastest dense path); 0 when none is set or it is absolute."""
        value, unit = parse_target(self.target)
        return value if unit == "x" else 0.0


# the smallest budgets taken: no network runs in under 10 microseconds (one framework call costs more), and a
# factor under 0.01 of the fastest dense path is no budget pruning can meet; below these a value is a typo
MIN_TARGET = {"ms": 0.01, "x": 0.01}


def parse_target(text: str, where: str = "latency.target") -> tuple[float, str]:
    """'50ms' -> (50.0, 'ms'), '0.85x' -> (0.85, 'x'), '' -> (0.0, ''); ConfigError (naming ``where``) otherwise."""
    t = str(text).strip().lower().replace(" ", "")
    if not t:
        return 0.0, ""
    for unit in ("ms", "x"):
        if t.endswith(unit):
            try:
                value = float(t[:-len(unit)])
            except ValueError:
                break
            if not math.isfinite(value) or value <= 0:
                break
            if value < MIN_TARGET[unit]:
                raise ConfigError(f"{where}: {text!r} is below {MIN_TARGET[unit]:g}{unit}, faster than any network "
                                  f"runs; check the unit (e.g. 50ms, or 0.85x the fastest dense path)")
            return value, unit
    raise ConfigError(f"{where}: {text!r} is not a budget; write a positive time like 50ms, "
                      f"or a factor of the fastest dense path like 0.85x")


@dataclass
class PruningConfig:
    schemes: list[Literal["none", "unstructured", "filter", "block", "pattern"]] = field(
        default_factory=lambda: ["none", "unstructured", "filter", "block", "pattern"])   # pruning.schemes.SCHEMES
    block_size: list[int] = field(default_factory=lambda: [8, 4])  # (rows, cols) of a GEMM block
    pattern_taps: int = 4                 # taps kept per 3x3 kernel by pattern pruning
    n_patterns: int = 8                   # size of the pattern library
    prune_tail: bool = False              # head, tail and upsampler stay dense unless asked
    channel_multiple: int = 16            # live channels between convs padded up to a multiple (1 = exact):
                                          # conv kernels here run 1.5-2.7x faster at multiples of 16
    reg_lambda: float = 1e-4
    reg_steps: int = 300
    finetune_steps: int = 300
    lr: float = 5e-4                      # Adam lr of stage 3 (regularization, then fine-tune on a cosine to 1 %);
                                          # a winner fine-tuned for most of the budget does better at train.lr
    eps: float = 1e-3


@dataclass
class SearchConfig:
    iterations: int = 5
    init_candidates: int = 8              # evaluated first: up to half anchors (the deepest dense one-block
                                          # chain that fits, at each width; search.generator), the rest random
    top_h: int = 4                        # H: parents per iteration
    pool_c: int = 32                      # C: new candidates generated per iteration
    pick_b: int = 4                       # B: candidates evaluated for real per iteration
    ensemble: int = 5                     # M: predictor members
    acquisition: Literal["ucb", "ei", "ts"] = "ucb"
    ucb_beta: float = 2.0
    eval_steps: int = 50                  # masked fine-tune steps per evaluated candidate
    max_macs: float = 0.0                 # MAC budget at the LR size; 0 = none
    min_ms: float = 0.0                   # LUT latency floor of candidates (ms); 0 = none: a front's top, where the
                                          # short evaluations rank smaller, better-trained members first
    max_params: float = 0.0               # parameter budget; 0 = none
    seed: int = 0
    eval_lr: float = 2e-4                 # learning rate of the short masked fine-tune
    eval_batch: int = 0                   # batch size of that fine-tune; 0 = data.batch_size
    val_crop: int = 0                     # HR centre crop of validation images during the search; 0 = whole
    measure_latency: bool = False         # also time every evaluated candidate (slow; LUT is used to search)
    ablation: bool = True                 # also run random search with the same number of evaluations
    threads: int = 0                      # torch threads of candidate fine-tunes and stage 3; 0 = the process default


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

    @property
    def out_dir(self) -> Path:
        """The run directory every stage writes into."""
        return Path(self.run_dir) / self.name

    def run(self, out: str | Path | None = None) -> "RunDir":
        """The layout of this config's run directory (or of ``out`` where a command was given --out)."""
        from .rundir import RunDir
        return RunDir(Path(out) if out else self.out_dir)


def describe(tp: Any) -> str:
    """A config type in words, for error messages: 'an integer, a list of integers, or one of ['auto']'."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in typing.get_args(tp)]
        return ", ".join(parts[:-1]) + f", or {parts[-1]}" if len(parts) > 1 else parts[0]
    if origin is Literal:
        return f"one of {list(typing.get_args(tp))}"
    if origin is list:
        inner = describe(typing.get_args(tp)[0])
        return f"a list of {inner.split(' ', 1)[1]}s" if inner.startswith(("a ", "an ")) else f"a list of {inner}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


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
        raise ConfigError(f"{where}: {value!r} is not {describe(tp)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} ({value!r})")
        (item,) = typing.get_args(tp)
        return [_check(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} ({value!r})")
        if not math.isfinite(value):   # YAML's .inf / .nan: a run would train on NaN and export garbage
            raise ConfigError(f"{where}: {value!r} is not a finite number; give a value like the default")
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


# keys that moved: the old name gets an error that says where it went
RENAMED = {"latency.target_ms": "latency.target (e.g. target: 50ms)",
           "search.target_rel": "latency.target (e.g. target: 0.85x)",
           "latency.strict": "latency.allow_foreign_lut (a LUT of another device is now refused unless allowed)",
           "zoo": "the train section (the zoo trains with the one recipe of train: steps, epoch_steps, lr, lr_min, "
                  "qat_steps)"}


def _build(cls: type, data: dict, prefix: str = "", problems: list[str] | None = None) -> Any:
    """The dataclass from ``data``; with ``problems`` given, bad keys are listed there and left at default."""
    collect = problems is not None
    problems = [] if problems is None else problems
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            hint = (f"renamed to {RENAMED[where]}" if where in RENAMED
                    else f"unknown config key; allowed here: {sorted(names)}")
            problems.append(f"{where}: {hint}")
            continue
        try:
            kwargs[key] = (_build(hints[key], value, where, problems)
                           if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict)
                           else _check(hints[key], value, where))
        except ConfigError as e:
            problems.append(str(e))
    if problems and not collect:
        raise ConfigError("\n".join(problems))
    return cls(**kwargs)


def build_section(cls: type, data: dict, prefix: str = "") -> Any:
    """Build one config dataclass (e.g. ModelConfig saved with a checkpoint) from a mapping."""
    return _build(cls, data, prefix)


def _positive(problems: list[str], cfg: Config, keys: str, minimum: float = 0.0, strict: bool = True) -> None:
    """Append a problem for each dotted key whose value is not above (or at least) ``minimum``."""
    for key in keys.split():
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name)
        if (v <= minimum) if strict else (v < minimum):
            need = f"above {minimum:g}" if strict else f"at least {minimum:g}"
            problems.append(f"{key}: {v!r} must be {need}")


AUTO_CELLS = list(range(1, 17))            # what n_cells: auto chooses among
AUTO_FEATS = [16, 24, 28, 32, 48, 64]      # what n_feats: auto chooses among
# far past any network srnas searches (pruning/model_checks.py bounds a model file's sizes alike): a typo such as
# n_feats 100000 would otherwise try to allocate hundreds of GB before the first step
MAX_SIZE = {"n_cells": 64, "n_feats": 1024, "expansion_a": 64, "expansion_b": 64, "expansion_dws": 64}


def size_choices(value: int | list[int] | str, auto: list[int]) -> list[int]:
    """The sizes a model.n_cells / n_feats value allows, ascending."""
    return sorted(set(auto if value == "auto" else value if isinstance(value, list) else [value]))


def depths(m: ModelConfig) -> list[int]:
    """The cell counts a model section allows, ascending (one for a fixed-size supernet)."""
    return size_choices(m.n_cells, AUTO_CELLS)


def widths(m: ModelConfig) -> list[int]:
    """The feature widths a model section allows, ascending (one for a fixed-size supernet)."""
    return size_choices(m.n_feats, AUTO_FEATS)


def at_size(m: ModelConfig, n_cells: int, n_feats: int) -> ModelConfig:
    """The model section of one fixed-size network (not elastic): what a path net of that depth and width is."""
    return dataclasses.replace(m, n_cells=int(n_cells), n_feats=int(n_feats), elastic=False)


def size_problems(cfg: Config) -> list[str]:
    """n_cells / n_feats: positive numbers; a list or auto needs an absolute target to size against, unless the
    supernet is elastic (then the lists are its space: no auto, the search picks per candidate)."""
    out = []
    for key, auto in (("n_cells", AUTO_CELLS), ("n_feats", AUTO_FEATS)):
        value = getattr(cfg.model, key)
        choices = size_choices(value, auto)
        if cfg.model.elastic and value == "auto":
            out.append(f"model.{key}: an elastic supernet needs its {key[2:]} listed (e.g. "
                       f"{'[1, 2, 4, 6, 8, 10]' if key == 'n_cells' else '[8, 16, 24, 32, 48]'}), not auto")
        elif not choices or min(choices) < 1:
            out.append(f"model.{key}: {value!r} must be a positive number, a list of them, or auto")
        elif max(choices) > MAX_SIZE[key]:
            out.append(f"model.{key}: {max(choices)} is far past any searched network; use at most {MAX_SIZE[key]}")
        elif cfg.model.elastic:
            continue
        elif not isinstance(value, int) and cfg.latency.target_ms <= 0:
            out.append(f"model.{key}: {value!r} is chosen from the LUT against the latency target, so it needs an "
                       f"absolute latency.target (e.g. 50ms), not {cfg.latency.target or 'none'}")
    return out


def range_problems(cfg: Config) -> list[str]:
    """Cross-field and range checks that types alone cannot express, one line per problem."""
    out: list[str] = []
    if cfg.data.scale not in (2, 3, 4):
        out.append(f"data.scale: {cfg.data.scale} is not supported; use 2, 3 or 4")
    if cfg.data.patch_size < 8:
        out.append(f"data.patch_size: {cfg.data.patch_size} is too small; use at least 8")
    out += size_problems(cfg)
    for key in ("expansion_a", "expansion_b", "expansion_dws"):
        if getattr(cfg.model, key) > MAX_SIZE[key]:
            out.append(f"model.{key}: {getattr(cfg.model, key)} is far past any searched network; use at most "
                       f"{MAX_SIZE[key]}")
    name = cfg.name.strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        out.append(f"name: {cfg.name!r} must be one folder name (the run is written to <run_dir>/<name>/); "
                   f"give a folder through run_dir or --out")
    schemes = cfg.pruning.schemes
    if not schemes or len(set(schemes)) < len(schemes):
        out.append(f"pruning.schemes: {schemes} must list distinct schemes, at least one (e.g. [none, filter])")
    _positive(out, cfg, "data.batch_size model.expansion_a model.expansion_b "
                        "model.expansion_dws model.low_rank model.res_scale train.steps train.epoch_steps train.lr "
                        "search.ensemble search.top_h search.pool_c search.init_candidates search.eval_lr "
                        "pruning.eps pruning.lr latency.repeats latency.lr_height latency.lr_width")
    _positive(out, cfg, "train.lr_min train.weight_decay train.threads train.val_paths latency.threads "
                        "latency.warmup latency.calib_samples pruning.reg_lambda pruning.reg_steps "
                        "pruning.finetune_steps search.iterations search.eval_steps search.eval_batch "
                        "search.val_crop search.max_macs search.min_ms search.max_params search.threads "
                        "search.ucb_beta train.qat_steps train.sandwich_random train.max_gmacs", 0.0, strict=False)
    _positive(out, cfg, "pruning.channel_multiple", 1, strict=False)
    if not 0.0 <= cfg.train.distill <= 1.0:
        out.append(f"train.distill: {cfg.train.distill:g} must be in [0, 1] (1: the smaller paths learn the largest "
                   f"path's output only, 0: the HR patch only)")
    if 0 < cfg.train.lr < cfg.train.lr_min:
        out.append(f"train.lr_min ({cfg.train.lr_min:g}) must not exceed train.lr ({cfg.train.lr:g})")
    if not cfg.model.blocks:
        out.append("model.blocks: list at least one block type (e.g. [wdsr_a, wdsr_b])")
    from .blocks import BLOCKS   # here, not at the top: the blocks need torch, the schema does not
    unknown = [b for b in cfg.model.blocks if b not in BLOCKS]
    if unknown or len(set(cfg.model.blocks)) < len(cfg.model.blocks):
        out.append(f"model.blocks: {cfg.model.blocks} must name distinct registered block types; "
                   f"unknown: {unknown}; registered: {sorted(BLOCKS)}")
    probs = cfg.train.block_probs
    if probs and (len(probs) != len(cfg.model.blocks) or min(probs) < 0 or sum(probs) <= 0):
        out.append(f"train.block_probs: {probs} must hold one non-negative weight per entry of model.blocks "
                   f"{cfg.model.blocks}, not all zero")
    if RUNTIME_NAMES and cfg.latency.backend not in RUNTIME_NAMES | {"auto"}:
        out.append(f"latency.backend: {cfg.latency.backend!r} is not one of {['auto', *sorted(RUNTIME_NAMES)]}")
    rates = cfg.latency.rates
    if not rates or any(not 0 <= r < 1 for r in rates) or 0.0 not in rates:
        out.append(f"latency.rates: {rates} must include 0 and hold rates in [0, 1), e.g. [0, 0.25, 0.5, 0.75]")
    if any(not str(t).strip() for t in cfg.latency.targets):
        out.append(f"latency.targets: {cfg.latency.targets} holds an empty entry; write each like 50ms or 0.9x")
    seen: dict[tuple[float, str], str] = {}
    for where, t in [("latency.target", cfg.latency.target),
                     *((f"latency.targets[{i}]", t) for i, t in enumerate(cfg.latency.targets))]:
        try:
            parsed = parse_target(t, where)
        except ConfigError as e:
            out.append(str(e))
            continue
        if where != "latency.target" and parsed in seen:
            out.append(f"{where}: {t!r} is the same target as {seen[parsed]}; list each target once")
        seen.setdefault(parsed, f"{where} ({t!r})")
    if cfg.latency.target and cfg.latency.targets:
        out.append(f"latency.target ({cfg.latency.target}) and latency.targets ({cfg.latency.targets}) are both set: "
                   f"give one target, or the list of a front (on the command line `--set latency.target=` clears a "
                   f"config's target)")
    s = cfg.search
    try:
        target_ms = cfg.latency.target_ms
    except ConfigError:   # reported above
        target_ms = 0.0
    if 0 < target_ms <= s.min_ms:
        out.append(f"search.min_ms ({s.min_ms:g}) must be under latency.target ({cfg.latency.target}): candidates "
                   f"are searched between the two")
    if not 0 < s.pick_b <= s.pool_c:
        out.append(f"search.pick_b ({s.pick_b}) must be in 1..search.pool_c ({s.pool_c})")
    return out


def validate(cfg: Config) -> Config:
    """Raise one ConfigError listing every range or cross-field problem of ``cfg``."""
    problems = range_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
    return cfg


def config_from_dict(data: dict | None, source: str = "<dict>") -> Config:
    """Build and validate a Config from a plain mapping (e.g. parsed YAML): every problem, one line each."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(data).__name__}")
    problems: list[str] = []
    cfg = _build(Config, data, "", problems)
    problems += range_problems(cfg)   # keys with bad values were left at their (valid) defaults
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n{lines}")
    return cfg


def load_config(path: str | Path, overrides: dict | list[str] | None = None, check_data: bool = True) -> Config:
    """Load a YAML config file; ``overrides`` (nested dict, or ``key.path=value`` strings) win over the file.

    With ``check_data`` every dataset the config names must exist, so a run fails before any work.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; -c takes a YAML config file (e.g. experiments/configs/quick.yaml, "
                          f"or a run's own config.yaml)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see experiments/configs/ for examples")
    try:
        data = yaml.load(path.read_bytes().decode("utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); a config is "
                          f"a YAML text file, e.g. experiments/configs/quick.yaml") from None
    except DuplicateKey as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML{yaml_problem(e)}") from None
    if data is None:   # an empty file would silently start a long run of every default
        raise ConfigError(f"{path} is empty (or holds only comments); start from a config in experiments/configs/ "
                          f"(e.g. quick.yaml)")
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
        data = _merge(data, overrides)
    cfg = config_from_dict(data, str(path))
    if check_data:
        from .data import dataset_problems
        d = cfg.data
        problems = dataset_problems(d.train, d.val, d.benchmarks, d.data_root)
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise ConfigError(f"{path}: {len(problems)} problem(s) with the data:\n{lines}")
    return cfg


def yaml_problem(e: yaml.YAMLError) -> str:
    """Where and what a YAML parse error is, on one line: ' at line 2, column 1: found character '\\t' ...'."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    context = getattr(e, "context", None)
    return f"{where}: {what}" + (f" ({context})" if context else "")


class DuplicateKey(yaml.YAMLError):
    """A mapping of a YAML file names one key twice (YAML would silently keep the last)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping, naming it and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise DuplicateKey(f"key {key!r} appears twice in the same mapping (lines {seen[key]} and {line}); "
                                   f"YAML would keep only the last one: remove one of them")
            if isinstance(key, typing.Hashable):
                seen[key] = line
        return super().construct_mapping(node, deep)


def config_of(args) -> Config:
    """The config a command line names: ``-c FILE`` plus every ``--set KEY=VALUE``."""
    return load_config(args.config, list(getattr(args, "set", None) or []))


def parse_overrides(items: list[str]) -> dict:
    """``["latency.target=50ms", "name=q50"]`` -> a nested dict; values are read as YAML (``[a, b]``, ``3``)."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE with a dotted key, e.g. --set latency.target=50ms")
        try:
            value = yaml.load(text, Loader=UniqueKeyLoader) if text.strip() else ""
        except DuplicateKey as e:
            raise ConfigError(f"--set {item!r}: {e}") from None
        except yaml.YAMLError:
            value = text
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} was already set to a value")
        node[leaf] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def config_to_dict(cfg: Config) -> dict:
    """Plain-dict view of a config (for saving the resolved config of a run)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically: a full disk leaves the earlier one whole)."""
    from .writes import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
