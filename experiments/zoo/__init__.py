"""The baseline zoo: every model registered by name with its published configuration.

Every built model maps 1x3xhxw RGB in [0,1] to 1x3xHxW; Y-only models wrap their
Y->Y network in :class:`YOnly`. ``trainable_core(model)`` is the part training sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from srnas.supernet import checkpoint
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.errors import UserError

from .abpn import ABPN
from .bicubic import Bicubic
from .common import YOnly, rgb_to_y
from .edgesr import ESRCNN, ESRTM, ESRTR, ESRMax
from .espcn import ESPCN
from .front import (CPU_CLASSES, FRONTS, SEARCHED_FILE, WEIGHTS_DIR, cpu_class, front_dir, machine_front,
                    searched_name)
from .fsrcnn import FSRCNN
from .wdsr import wdsr


@dataclass(frozen=True)
class ZooEntry:
    """One registered model: how to build it and what it is."""

    build: Callable[[int], nn.Module]   # scale -> RGB model
    y_only: bool
    trainable: bool
    config: str                          # the published configuration, for tables


ZOO: dict[str, ZooEntry] = {
    "bicubic": ZooEntry(Bicubic, False, False, "Keys a=-0.5"),
    "fsrcnn": ZooEntry(lambda s: YOnly(FSRCNN(s), s), True, True, "d56 s12 m4"),
    "espcn": ZooEntry(lambda s: YOnly(ESPCN(s), s), True, True, "64-32 tanh"),
    "esr_max": ZooEntry(lambda s: YOnly(ESRMax(s), s), True, True, "K3 C4"),
    "esr_tm": ZooEntry(lambda s: YOnly(ESRTM(s), s), True, True, "K7 C16"),
    "esr_tr": ZooEntry(lambda s: YOnly(ESRTR(s), s), True, True, "K7 C16"),
    "esr_cnn": ZooEntry(lambda s: YOnly(ESRCNN(s), s), True, True, "C4 D3 S6"),
    "abpn": ZooEntry(ABPN, False, True, "28ch 7 convs"),
    "wdsr_a": ZooEntry(lambda s: wdsr(s, "wdsr_a", 4), False, True, "4 blocks n32 e4"),
    "wdsr_b": ZooEntry(lambda s: wdsr(s, "wdsr_b", 4, 16), False, True, "4 blocks n16 e6 r0.8"),
}


# INT8 forms of the zoo (experiments/zoo/int8.py): the fp32 weights QAT-adapted to the INT8 executors' grid, run as
# INT8 QDQ files; ABPN's is abpn_int8 (experiments/quantize.py), which torch's own int8 kernels run too
INT8: dict[str, str] = {f"{n}_int8": n for n in ("fsrcnn", "espcn", "esr_max", "esr_tm", "esr_tr", "esr_cnn", "wdsr_b")}


# the searched models shipped in a weights folder: written with their files by experiments/ship_winners.py, one
# front per CPU class under fronts/<class>/ (searched_x<scale>.json + <member>_x<scale>.pt). The names a machine gets
# (srnas_xs, ..., the aliases srnas_abpn / srnas_50ms) come from every class's members timed on it (front.py).


def searched(weights_dir: str | Path | None = None, scale: int = 2) -> dict[str, str]:
    """Searched model names this machine gets at ``scale``, aliases included -> what each was searched for."""
    return machine_front(scale, weights_dir).describe()


def search_members(weights_dir: str | Path | None = None, scale: int = 2) -> list[str]:
    """The searched models this machine gets at ``scale`` without their aliases, fastest (tightest budget) first."""
    return list(machine_front(scale, weights_dir).names)


def names() -> list[str]:
    """Registered model names, in table order."""
    return list(ZOO)


def entry(name: str) -> ZooEntry:
    """The registry entry of ``name`` (an INT8 form: its fp32 model's); unknown names list the registered ones."""
    name = INT8.get(name, name)
    if name not in ZOO:
        raise UserError(f"unknown zoo model {name!r}; choose from {names()} or pass a .ts/.onnx file")
    return ZOO[name]


def build(name: str, scale: int) -> nn.Module:
    """A freshly initialised zoo model (RGB interface)."""
    return entry(name).build(scale)


def trainable_core(model: nn.Module) -> nn.Module:
    """The network training updates: the Y->Y core of a Y-only model, else the model itself."""
    return model.core if isinstance(model, YOnly) else model


def weights_path(name: str, scale: int, weights_dir: str | Path | None = None) -> Path:
    """Where the shipped (or given) weights of ``name`` at ``scale`` live (a searched name or alias: the file of the
    member this machine gets by it)."""
    if name.startswith("srnas_"):
        return machine_front(scale, weights_dir).path(name)
    return Path(weights_dir or WEIGHTS_DIR) / f"{name}_x{scale}.pt"


def export_state(model: nn.Module) -> dict:
    """A small (fp16) state dict of the weight-norm-fused model, as shipped."""
    fused = fuse_weight_norm(model)
    return {k: v.half() if v.is_floating_point() else v for k, v in fused.state_dict().items()}


def trained_steps(name: str, scale: int, weights: str | Path | None = None,
                  weights_dir: str | Path | None = None) -> int:
    """Optimizer steps the weights of ``name`` saw (0: untrained, or a file from before steps were saved)."""
    if name != "abpn_int8" and not entry(name).trainable:
        return 0
    path = Path(weights) if weights else weights_path(name, scale, weights_dir)
    if not path.exists():
        return 0
    return int(checkpoint.load(path).get("steps", 0))


def int8_method(name: str, scale: int, weights_dir: str | Path | None = None) -> str:
    """How the shipped INT8 form of ``name`` got its weights: 'QAT', or 'PTQ' where its fp32 weights quantized
    better (experiments/zoo/int8.py)."""
    path = weights_path(name, scale, weights_dir)
    return "QAT" if not path.exists() or checkpoint.load(path).get("qat_grid") else "PTQ"


def load(name: str, scale: int, weights: str | Path | None = None, weights_dir: str | Path | None = None) -> nn.Module:
    """A zoo model with trained weights, in eval mode; bicubic needs none."""
    e = entry(name)
    model = fuse_weight_norm(e.build(scale))
    if not e.trainable:
        return model.eval()
    path = Path(weights) if weights else weights_path(name, scale, weights_dir)
    if not path.exists():
        raise UserError(f"no trained weights for {name!r} x{scale} at {path}: train them with "
                        f"`srnas zoo train {name} -c experiments/configs/zoo.yaml` (then pass --weights-dir "
                        f"<run>/zoo) or `python experiments/train_zoo.py` to rebuild the shipped set")
    blob = checkpoint.load(path)
    state = blob.get("state", blob) if isinstance(blob, dict) else blob
    problems = state_problems(model, state)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{path} holds no usable weights of {name} x{scale}: {problems[0]}{more}; remove it, or "
                        f"train it again (`srnas zoo train {name}`)")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


def state_problems(model: nn.Module, state: object) -> list[str]:
    """What keeps ``state`` from being ``model``'s weights: its form, names, shapes, NaN / inf; one line each."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return ["not a mapping of parameter names to tensors"]
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    out = [f"it lacks {sorted(set(want) - set(state))[:3]}"] if set(want) - set(state) else []
    out += [f"unexpected {sorted(set(state) - set(want))[:3]}"] if set(state) - set(want) else []
    out += [f"[{k!r}] has shape {list(state[k].shape)}, the network needs {list(s)}"
            for k, s in want.items() if k in state and tuple(state[k].shape) != s]
    out += [f"NaN / inf weights in [{k!r}]" for k, v in state.items()
            if k in want and v.is_floating_point() and not torch.isfinite(v).all()]
    return out


__all__ = ["ZOO", "INT8", "SEARCHED_FILE", "FRONTS", "CPU_CLASSES", "searched_name", "cpu_class", "front_dir",
           "machine_front", "searched", "search_members", "ZooEntry", "YOnly",
           "rgb_to_y", "names", "entry", "build", "load", "trainable_core", "weights_path", "export_state",
           "trained_steps", "int8_method", "WEIGHTS_DIR"]
