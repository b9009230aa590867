"""What a pruned-model file must be before srnas builds or runs it: every metadata field of the right type and
within bounds (checked before any network is built: a file edited to n_feats 100000 would otherwise allocate
hundreds of GB), state and masks that fit the network the file describes, and finite weights. Each check
returns its problems, one line each; ``refuse`` turns them into one UserError naming the file and the fix."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from srnas.supernet import checkpoint
from srnas.supernet.blocks import BLOCKS, fuse_weight_norm
from srnas.supernet.config import PRECISIONS, ModelConfig, build_section
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

from .masks import check_plan

if TYPE_CHECKING:
    from .model_file import PrunedModel

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


def structure_problems(pm: PrunedModel) -> list[str]:
    """State and masks against the network the file describes (built where _check_device says)."""
    mcfg = dataclasses.replace(build_section(ModelConfig, pm.model_cfg), rep="none")
    try:
        with torch.device(_check_device(mcfg, pm.scale, pm.path)):
            net = fuse_weight_norm(build_path_net(mcfg, pm.scale, pm.path))
    except (ValueError, RuntimeError, KeyError, ZeroDivisionError) as e:   # e.g. a low_rank that leaves 0 channels
        return [f"model_cfg and path build no network ({checkpoint.first_line(e)})"]
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    out = _key_problems("state", want, pm.state)
    out += [f"state[{k!r}] has shape {list(pm.state[k].shape)}, the network needs {list(s)}"
            for k, s in want.items() if k in pm.state and tuple(pm.state[k].shape) != s]
    try:
        check_plan(net, pm.plan)
        check_plan(net, pm.masks.plan)
    except UserError as e:
        out.append(str(e))
    layers = {n: tuple(c.weight.shape) for n, c in net.prunable()}
    for kind, masks in (("weight", pm.masks.weight), ("bias", pm.masks.bias)):
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


def refuse(path: Path, problems: list[str], fix: str) -> None:
    """One UserError line naming the file, its first problems and the fix; nothing when there are none."""
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{path} is not a usable pruned model: {'; '.join(problems[:3])}{more}; {fix}")


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
