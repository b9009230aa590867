"""Resolve a model spec (zoo name, 'abpn_int8', an exported .ts / .onnx file, or a pruned-model .pt) to
something runnable."""
from __future__ import annotations

import difflib
import numbers
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from srnas.supernet.checkpoint import first_line
from srnas.supernet.console import muted
from srnas.supernet.errors import UserError, clip

from . import zoo

MODEL_FILES = (".pt", ".ts", ".onnx")
REEXPORT = "write it anew with `srnas export`, or copy it again whole"


@dataclass
class LoadedModel:
    """A runnable model: ``run`` maps 1x3xhxw [0,1] to 1x3x(sh)x(sw); ``module`` is set for torch models."""

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    scale: int
    module: nn.Module | None = None
    y_only: bool | None = None           # None: unknown (exported files)
    precision: str = "fp32"
    config: str = ""
    fixed_hw: tuple[int, int] | None = None   # an exported model that only accepts this input size
    info: dict = field(default_factory=dict)


def _torch_runner(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return module(x)
    return run


def _infer_scale(run: Callable, hw: tuple[int, int], path: Path) -> int:
    """The scale of an exported model, from one run on a random image; UserError when it is no image model."""
    try:
        y = run(torch.rand(1, 3, *hw))
    except Exception as e:   # the runtime's own error, of whatever class: the file is what is wrong
        raise UserError(f"{path} does not run on a 1x3x{hw[0]}x{hw[1]} image ({first_line(e)}): it is no srnas "
                        f"export; {REEXPORT}") from None
    s = int(round(y.shape[-1] / hw[1])) if isinstance(y, torch.Tensor) and y.ndim == 4 else 0
    if s < 1 or tuple(y.shape) != (1, 3, s * hw[0], s * hw[1]):
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise UserError(f"{path} maps a 1x3x{hw[0]}x{hw[1]} image to {got}, not to 1x3x(sH)x(sW): it is no "
                        f"srnas export; {REEXPORT}")
    return s


def file_label(path: Path) -> str:
    """A model file's name in tables: its stem, or for the names a run writes (export/model.onnx,
    stage3/pruned.pt) the path from the run folder on, so the targets of a front stay apart."""
    if path.stem not in ("model", "model_int8", "pruned"):
        return path.stem
    return "/".join(path.parts[-3:]) if path.parent.name in ("stage3", "export", "deploy") else \
        f"{path.parent.name}/{path.name}"


def check_onnx(path: Path) -> None:
    """UserError naming ``path`` when it is no ONNX model, or its external data is missing or outside its folder."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as e:
        raise UserError(f"{path} is not an ONNX model (cut short, damaged, or another kind of file: "
                        f"{first_line(e)}); {REEXPORT}") from None
    if not model.graph.node:
        raise UserError(f"{path} is not an ONNX model (no graph in it: empty, or another kind of file); {REEXPORT}")
    folder = path.resolve().parent
    for t in _tensors(model.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        where = {e.key: e.value for e in t.external_data}.get("location", "")
        data = (folder / where).resolve()
        if not where or Path(where).is_absolute() or not data.is_relative_to(folder):
            raise UserError(f"{path} reads its weights from {where!r}, outside its folder (ONNX Runtime refuses "
                            f"that, rightly): keep the data file beside the .onnx and name it there, or {REEXPORT}")
        if not data.is_file():
            raise UserError(f"{path} reads its weights from {where!r}, which is missing: copy it beside the .onnx, "
                            f"or write both anew with `srnas export`")


def _tensors(graph) -> list:
    """Every tensor of an ONNX graph: initializers and node attributes, subgraphs included."""
    out = list(graph.initializer)
    for node in graph.node:
        for a in node.attribute:
            out += ([a.t] if a.HasField("t") else []) + list(a.tensors)
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out += _tensors(g)
    return out


def load_onnx(path: Path, threads: int = 0) -> LoadedModel:
    """An ONNX file run by onnxruntime (CPU)."""
    import onnxruntime as ort

    check_onnx(path)
    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:   # onnxruntime's errors (Fail, InvalidGraph, ...) share no base class but Exception
        raise UserError(f"{path}: ONNX Runtime cannot load it ({first_line(e)}); {REEXPORT}") from None
    inp = sess.get_inputs()[0]
    dims = inp.shape
    fixed = tuple(dims[2:4]) if all(isinstance(d, int) for d in dims[2:4]) else None

    def run(x: torch.Tensor) -> torch.Tensor:
        out = sess.run(None, {inp.name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)

    scale = _infer_scale(run, fixed or (32, 32), path)
    return LoadedModel(file_label(path), run, scale,
                       precision="onnx", fixed_hw=fixed, info={"path": str(path)})


def load_torchscript(path: Path) -> LoadedModel:
    """A TorchScript file (from `srnas export` or the INT8 export)."""
    try:
        with muted():   # torch's note on its own API: nothing a user of the file can act on
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a TorchScript model (cut short, damaged, or another kind of file: "
                        f"{first_line(e).split('. ')[0]}); {REEXPORT}") from None
    run = _torch_runner(module)
    scale = _infer_scale(run, (32, 32), path)
    name = file_label(path)
    return LoadedModel(name, run, scale, module=module, precision="torchscript", info={"path": str(path)})


def is_torchscript(path: Path) -> bool:
    """Whether a .pt file is a TorchScript archive (rather than a torch.save'd dict, e.g. a pruned model)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):   # not a whole zip: the pruned loader says what
        return False


def load_pruned(path: Path) -> LoadedModel:
    """A pruned-model file (stage 3 of `srnas run`, `srnas prune`): its compact network, as it was measured."""
    from srnas.pruning.model_file import PrunedModel

    pm = PrunedModel.load(path)
    module = pm.compact().eval()
    name = file_label(path)
    # its own precision is the one it was searched and fine-tuned for (an INT8 executor: QAT weights)
    return LoadedModel(name, _torch_runner(module), pm.scale, module, False, pm.precision,
                       f"{'-'.join(pm.path)}, searched {pm.backend}/{pm.precision}",
                       info={"path": str(path), "steps": pm.train_steps, "backend": pm.backend})


SCALES = (2, 3, 4)


def name_scale(spec: str, weights_dir: str | Path | None = None) -> int:
    """The scale a name loads at when none is asked for: x2 where it ships at x2, else the first it ships at."""
    # in order, stopping at the first: a member name resolves through the front measured at that scale
    shipped = (s for s in SCALES if spec != "bicubic" and zoo.weights_path(spec, s, weights_dir).is_file())
    return next(shipped, 2)


def load_model(spec: str, scale: int | None = None, weights_dir: str | Path | None = None,
               threads: int = 0) -> LoadedModel:
    """A zoo name ('fsrcnn', 'abpn_int8', ...), a .ts TorchScript or .onnx file, or a .pt (TorchScript or pruned).

    A file upscales at its own scale (``scale``, where given, must agree); a name loads at ``scale``, or where
    None at x2 (the first scale it ships at where it has no x2)."""
    if not isinstance(spec, (str, os.PathLike)):
        raise UserError(f"a model is a name (srnas_abpn, espcn, ...) or a model file's path, not a "
                        f"{type(spec).__name__} ({clip(repr(spec), 60)})")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Integral)
                              or scale not in (2, 3, 4)):
        raise UserError(f"scale {clip(repr(scale), 40)}: models upscale x2, x3 or x4; give one of 2, 3, 4 (or None: "
                        f"a file's own scale, a name's first)")
    spec = os.fspath(spec)
    p = Path(spec)
    if p.suffix in MODEL_FILES:
        if not p.is_file():
            raise UserError(f"model file {p} does not exist: check the path")
        if p.suffix == ".onnx":
            m = load_onnx(p, threads)
        else:
            m = load_torchscript(p) if p.suffix == ".ts" or is_torchscript(p) else load_pruned(p)
        if scale is not None and m.scale != scale:
            raise UserError(f"{p} upscales x{m.scale}, but --scale {scale} was asked for: leave --scale out (a model "
                            f"file says its scale) or pass a model of x{scale}")
        return m
    scale = scale or name_scale(spec, weights_dir)
    found = zoo.searched(weights_dir, scale) if spec.startswith("srnas_") else {}
    if spec in found or spec in ("srnas_abpn", "srnas_50ms"):
        path = zoo.weights_path(spec, scale, weights_dir)
        if not path.is_file():
            raise UserError(f"no {spec} x{scale} at {path}: `python experiments/ship_winners.py` searches and "
                            f"writes it (experiments/weights/README.md)")
        m = load_pruned(path)
        m.name, m.config = spec, f"{found.get(spec, 'searched')}: {m.config}"
        m.info["searched_for"] = found.get(spec, "")
        return m
    if spec == "abpn_int8":
        from .quantize import load_abpn_int8
        module = load_abpn_int8(scale, weights_dir=weights_dir)
        return LoadedModel(spec, _torch_runner(module), scale, module, False, "int8", "28ch 7 convs, QAT",
                           info={"steps": zoo.trained_steps(spec, scale, weights_dir=weights_dir)})
    if spec not in zoo.ZOO and spec not in zoo.INT8:
        raise UserError(f"unknown model {spec!r}: {_suggest(spec, weights_dir)}")
    e = zoo.entry(spec)
    module = zoo.load(spec, scale, weights_dir=weights_dir)
    # an INT8 form holds float weights meant for INT8 (QAT's, or the fp32 ones where plain quantization scored
    # higher): its own precision is int8, and an INT8 executor quantizes it
    int8 = spec in zoo.INT8
    return LoadedModel(spec, _torch_runner(module), scale, module, e.y_only, "int8" if int8 else "fp32",
                       f"{e.config}, {zoo.int8_method(spec, scale, weights_dir)}" if int8 else e.config,
                       info={"steps": zoo.trained_steps(spec, scale, weights_dir=weights_dir)})


def model_names(weights_dir: str | Path | None = None) -> list[str]:
    """Every model name load_model takes: the zoo, its INT8 forms, and the searched models of the weights folder."""
    searched = zoo.search_members(weights_dir)
    aliases = [n for n in zoo.searched(weights_dir) if n not in searched]
    return list(dict.fromkeys(zoo.names() + ["abpn_int8"] + list(zoo.INT8) + searched + aliases))


def _suggest(spec: str, weights_dir: str | Path | None = None) -> str:
    """The nearest valid name (difflib) where one is near, then every valid name and the files accepted."""
    names = model_names(weights_dir)
    near = difflib.get_close_matches(spec, names, n=1)
    return (f"did you mean {near[0]}? " if near else "") + f"models: {', '.join(names)}; or a model file " \
        f"(a pruned .pt from stage 3 or `srnas prune`, a TorchScript .ts / .pt or an .onnx from `srnas export`)"
