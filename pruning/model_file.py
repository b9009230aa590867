"""The pruned-model file (``pruned.pt``) that stage 3 and `srnas prune` write and `srnas export` reads.

One format for both writers: the file alone rebuilds the network (model config, path, scale,
state, masks) and says what it is (plan, pruning config, candidate, whether its weights were
adapted to an INT8 grid by quantization-aware training) and how fast it ran on which executor
(backend, precision, input layout, LR size, threads). Saved as a plain dict with a format tag,
so a later srnas can tell an old file from a damaged one.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srnas.supernet import checkpoint
from srnas.supernet.blocks import BLOCKS, fuse_weight_norm
from srnas.supernet.config import PRECISIONS, ModelConfig, build_section
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

from .compaction import compact
from .masks import Masks, Plan, check_plan

FORMAT = "srnas-pruned/3"   # /3: masks saved as a plain dict, so the file loads weights-only
FIX = "write it anew (stage 3 of `srnas run`, or `srnas prune`), or use an unedited copy"
REQUIRED = ("model_cfg", "path", "scale", "plan", "masks", "state", "pruning_cfg", "backend", "precision", "layout",
            "lr_hw", "threads")
# far past any network srnas searches: checked before the network is built, since a file edited to n_feats
# 100000 would otherwise allocate hundreds of GB before its weights were found not to fit
SIZE_BOUNDS = {"n_feats": 1024, "expansion_a": 64, "expansion_b": 64, "expansion_dws": 64}
MAX_CELLS = 64
MAX_LOW_RANK = 16.0
# a network surely below this many parameters is built on the CPU to check a file against (milliseconds); any
# other on the meta device, which allocates nothing but costs a one-time second of imports
CPU_CHECK_PARAMS = 16_000_000
SIZED_BLOCKS = ("plain", "wdsr_a", "wdsr_b", "dws")   # blocks _param_bound knows: at most three convs as wide


@dataclass(frozen=True)
class Executor:
    """What a model is measured (and exported) for: backend, precision, input layout, LR size, threads."""

    backend: str
    precision: str
    layout: str           # "nchw" or "nhwc" (channels_last, as the torch-cpu-cl backend runs)
    lr_hw: tuple[int, int]
    threads: int


@dataclass
class PrunedModel:
    """A masked path network with everything needed to rebuild, describe and export it."""

    model_cfg: dict
    path: list[str]
    scale: int
    plan: Plan
    masks: Masks
    state: dict[str, torch.Tensor]
    pruning_cfg: dict
    backend: str
    precision: str
    layout: str
    lr_hw: tuple[int, int]
    threads: int
    measured_ms: float | None = None      # median on that executor at lr_hw (None: not measured)
    measured_iqr_ms: float | None = None
    predicted_ms: float | None = None     # the latency estimate (LUT) of the plan, when one was used
    target_ms: float = 0.0
    candidate: dict | None = None         # the search candidate it was pruned from, if any
    # quantization-aware fine-tune steps the weights had after pruning (0: float-trained only); > 0: the
    # state holds float weights adapted to the INT8 grid ``qat_grid`` (pruning.quant.GRIDS), which the
    # executor's INT8 route then quantizes. A file without these keys (older srnas) is float-trained.
    qat_steps: int = 0
    qat_grid: str | None = None
    train_steps: int = 0                  # every optimizer step its weights saw (supernet, pruning, QAT); 0: unknown

    @property
    def executor(self) -> Executor:
        """The executor it was measured with."""
        return Executor(self.backend, self.precision, self.layout, tuple(self.lr_hw), self.threads)

    @property
    def qat_adapted(self) -> bool:
        """Whether the weights were fine-tuned through fake quantization (for an INT8 executor)."""
        return self.qat_steps > 0

    def net(self) -> nn.Module:
        """The masked path network (weight norm fused), in eval mode."""
        # the state holds plain convs: training-time branches were folded before it was saved
        mcfg = dataclasses.replace(build_section(ModelConfig, self.model_cfg), rep="none")
        net = fuse_weight_norm(build_path_net(mcfg, self.scale, self.path))
        net.load_state_dict(self.state)
        self.masks.apply(net)
        return net.eval()

    def compact(self) -> nn.Module:
        """The network with the pruned work removed: what is exported and measured."""
        return compact(self.net(), self.masks)

    def save(self, path: str | Path) -> None:
        """Write the file atomically (a plain dict: state dicts, not modules, which weight norm makes unpicklable)."""
        blob = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        checkpoint.atomic_save(checkpoint.plain(blob), path)

    @classmethod
    def load(cls, path: str | Path) -> "PrunedModel":
        """Read a pruned-model file; UserError naming the fix when it is missing, old or not one."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no pruned model at {path}: run stage 3 (`srnas run -c CONFIG`, or "
                            f"`srnas prune -c CONFIG ...`) first, or pass --model")
        blob = checkpoint.load(path, fix=FIX)
        if not isinstance(blob, dict) or "masks" not in blob:
            raise UserError(f"{path} is not a pruned model written by `srnas prune` or stage 3 of `srnas run` "
                            f"(it holds no masks); {FIX}")
        if blob.get("format") != FORMAT:
            raise UserError(f"{path} is a pruned model in an older format ({blob.get('format', 'untagged')}), "
                            f"without the model config, path and measurement needed to rebuild it: re-run stage 3 "
                            f"to write it anew with --redo (`srnas prune -c CONFIG --reweighted --redo ...`; for "
                            f"the stage3/pruned.pt of a run, remove that stage3 folder and run `srnas run -c CONFIG` "
                            f"again)")
        _refuse(path, field_problems(blob))
        known = {f.name for f in fields(cls)}
        pm = cls(**{**{k: v for k, v in blob.items() if k in known}, "masks": Masks.from_dict(blob["masks"])})
        _refuse(path, pm.structure_problems() or weight_problems(pm))
        return pm

    def structure_problems(self) -> list[str]:
        """State and masks against the network the file describes (built where _check_device says)."""
        mcfg = dataclasses.replace(build_section(ModelConfig, self.model_cfg), rep="none")
        try:
            with torch.device(_check_device(mcfg, self.scale, self.path)):
                net = fuse_weight_norm(build_path_net(mcfg, self.scale, self.path))
        except (ValueError, RuntimeError, KeyError, ZeroDivisionError) as e:   # e.g. a low_rank that leaves 0 channels
            return [f"model_cfg and path build no network ({checkpoint.first_line(e)})"]
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        out = _key_problems("state", want, self.state)
        out += [f"state[{k!r}] has shape {list(self.state[k].shape)}, the network needs {list(s)}"
                for k, s in want.items() if k in self.state and tuple(self.state[k].shape) != s]
        try:
            check_plan(net, self.plan)
            check_plan(net, self.masks.plan)
        except UserError as e:
            out.append(str(e))
        layers = {n: tuple(c.weight.shape) for n, c in net.prunable()}
        for kind, masks in (("weight", self.masks.weight), ("bias", self.masks.bias)):
            for name, m in masks.items():
                need = layers.get(name)
                need = need if kind == "weight" or need is None else need[:1]
                if need is None or tuple(m.shape) != need:
                    out.append(f"masks.{kind}[{name!r}] has shape {list(m.shape)}, "
                               + (f"the layer needs {list(need)}" if need else "and names no prunable layer"))
        return out


def _param_bound(mcfg: ModelConfig, scale: int, path: list[str]) -> int:
    """An upper bound of a path net's parameters: each block at most three 3x3 convs at its widest width."""
    n, c = mcfg.n_feats, 3 * scale * scale
    wide = n * max(mcfg.expansion_a, mcfg.expansion_b, mcfg.expansion_dws, 1) * max(math.ceil(mcfg.low_rank), 1)
    return len(path) * 3 * 9 * (n + 1) * wide + 9 * (n + c + 1) * (3 + n + 2 * c)


def _check_device(mcfg: ModelConfig, scale: int, path: list[str]) -> str:
    """'cpu' for a network surely small enough to build there, else 'meta'."""
    small = all(b in SIZED_BLOCKS for b in path) and _param_bound(mcfg, scale, path) <= CPU_CHECK_PARAMS
    return "cpu" if small else "meta"


def _refuse(path: Path, problems: list[str]) -> None:
    """One UserError line naming the file, its first problems and the fix; nothing when there are none."""
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{path} is not a usable pruned model: {'; '.join(problems[:3])}{more}; {FIX}")


def _short(v: Any) -> str:
    """``repr(v)``, cut to fit in a one-line error."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _is_int(v: Any) -> bool:
    """An int that is no bool (True would pass for 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite int or float that is no bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _key_problems(what: str, want: Any, got: dict) -> list[str]:
    """Keys ``want`` has that ``got`` lacks, and the other way round (a few named)."""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    return ([f"{what} lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}"] if missing else []) + \
        ([f"{what} has unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}"] if extra else [])


def field_problems(blob: dict) -> list[str]:
    """Every metadata field of a loaded pruned-model dict of the wrong type or out of range, one line each."""
    out = [f"it lacks {k!r}" for k in REQUIRED if k not in blob]
    if out:
        return out
    out += _model_cfg_problems(blob["model_cfg"])
    path = blob["path"]
    blocks_ok = isinstance(path, list) and all(isinstance(b, str) and b in BLOCKS for b in path)
    if not blocks_ok or not 1 <= len(path) <= MAX_CELLS:
        out.append(f"path: {_short(path)} is not a list of 1 to {MAX_CELLS} block names of {sorted(BLOCKS)}")
    if not _is_int(blob["scale"]) or blob["scale"] not in (2, 3, 4):
        out.append(f"scale: {_short(blob['scale'])} is not 2, 3 or 4")
    out += _plan_problems("plan", blob["plan"]) + _masks_problems(blob["masks"]) + _state_problems(blob["state"])
    out += _executor_problems(blob)
    for key in ("pruning_cfg", "candidate"):
        if not isinstance(blob.get(key), dict) and not (key == "candidate" and blob.get(key) is None):
            out.append(f"{key}: expected a mapping, got {type(blob.get(key)).__name__}")
    for key in ("measured_ms", "measured_iqr_ms", "predicted_ms", "target_ms"):
        v = blob.get(key)
        if not (v is None and key != "target_ms") and not (_is_number(v) and v >= 0):
            out.append(f"{key}: {_short(v)} is not a finite number >= 0")
    for key in ("qat_steps", "train_steps"):
        if not _is_int(blob.get(key, 0)) or blob.get(key, 0) < 0:
            out.append(f"{key}: {_short(blob[key])} is not a whole number >= 0")
    from .quant import GRIDS   # quant pulls in the fine-tune machinery: only once the file got this far
    if blob.get("qat_grid") is not None and blob["qat_grid"] not in GRIDS:
        out.append(f"qat_grid: {_short(blob['qat_grid'])} is not one of {list(GRIDS)}")
    return out


def _model_cfg_problems(cfg: Any) -> list[str]:
    """model_cfg: a valid model section of one fixed size within SIZE_BOUNDS."""
    if not isinstance(cfg, dict):
        return [f"model_cfg: expected a mapping, got {type(cfg).__name__}"]
    try:
        build_section(ModelConfig, cfg, "model_cfg")
    except UserError as e:
        return [" / ".join(str(e).splitlines())]
    out = [f"model_cfg.{k}: {_short(cfg.get(k))} is not a whole number from 1 to {top}"
           for k, top in SIZE_BOUNDS.items() if k in cfg and not (_is_int(cfg[k]) and 1 <= cfg[k] <= top)]
    if not 0 < cfg.get("low_rank", 0.8) <= MAX_LOW_RANK:
        out.append(f"model_cfg.low_rank: {_short(cfg['low_rank'])} is not in (0, {MAX_LOW_RANK:g}]")
    return out


def _plan_problems(where: str, plan: Any) -> list[str]:
    """A plan: layer name -> (scheme, rate) pairs (their values check_plan judges against the network)."""
    ok = isinstance(plan, dict) and all(
        isinstance(k, str) and isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[0], str)
        and _is_number(v[1]) for k, v in plan.items())
    return [] if ok else [f"{where}: expected layer name -> (scheme, rate) pairs"]


def _tensor_map(v: Any) -> bool:
    """A dict of str -> tensor (a state dict, a mask dict)."""
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())


def _masks_problems(masks: Any) -> list[str]:
    """masks: the plain dict Masks.to_dict writes."""
    if not isinstance(masks, dict) or "plan" not in masks:
        return ["masks: expected a mapping with plan, weight, bias"]
    out = _plan_problems("masks.plan", masks["plan"])
    out += [f"masks.{k}: expected layer name -> tensor" for k in ("weight", "bias") if not _tensor_map(masks.get(k))]
    if not _is_int(masks.get("channel_multiple", 1)) or masks.get("channel_multiple", 1) < 1:
        out.append(f"masks.channel_multiple: {_short(masks['channel_multiple'])} is not a whole number >= 1")
    return out


def _state_problems(state: Any) -> list[str]:
    """state: parameter name -> floating-point tensor."""
    if not _tensor_map(state) or not state:
        return ["state: expected parameter name -> tensor"]
    return [f"state[{k!r}]: {t.dtype} is not a floating-point tensor" for k, t in state.items()
            if not t.is_floating_point()][:1]


def _executor_problems(blob: dict) -> list[str]:
    """backend, precision, layout, lr_hw, threads: what the model was measured on."""
    out = []
    if not isinstance(blob["backend"], str) or not blob["backend"]:
        out.append(f"backend: {_short(blob['backend'])} is not a backend name")
    if blob["precision"] not in PRECISIONS:
        out.append(f"precision: {_short(blob['precision'])} is not one of {list(PRECISIONS)}")
    if blob["layout"] not in ("nchw", "nhwc"):
        out.append(f"layout: {_short(blob['layout'])} is not 'nchw' or 'nhwc'")
    hw = blob["lr_hw"]
    if not isinstance(hw, (list, tuple)) or len(hw) != 2 or not all(_is_int(v) and 1 <= v <= 16384 for v in hw):
        out.append(f"lr_hw: {_short(hw)} is not two sizes from 1 to 16384")
    if not _is_int(blob["threads"]) or not 0 <= blob["threads"] <= 4096:
        out.append(f"threads: {_short(blob['threads'])} is not a whole number from 0 to 4096")
    return out


def weight_problems(pm: PrunedModel) -> list[str]:
    """NaN / inf in the weights or masks: such a model runs and writes black or garbage frames."""
    bad = [k for k, t in pm.state.items() if not torch.isfinite(t).all()]
    if bad:
        return [f"NaN / inf weights in {bad[:3]} (a training that diverged?): it would upscale to garbage"]
    masks = {**pm.masks.weight, **{f"{k} (bias)": m for k, m in pm.masks.bias.items()}}
    odd = [k for k, m in masks.items() if not ((m == 0) | (m == 1)).all()]
    return [f"masks of {odd[:3]} hold values other than 0 and 1"] if odd else []
