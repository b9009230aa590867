"""Quantization-aware fine-tuning (torch.ao FX fake quantization) of a pruned path net or any conv net.

Fake quantization goes on every conv (weights per channel) and every activation between them, except
inside the modules named float and on everything computed from their outputs: the deployed INT8 file
keeps the global skip, the sum it joins and what follows float (latency.executors.quantize_onnx), so
training rounds exactly where deployment does. The result is the float net holding the adapted
weights: what an INT8 route (ONNX Runtime's static QDQ) then quantizes.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from srnas.supernet.console import muted

from .masks import Masks
from .resume import Progress
from .reweighted import masked_finetune

QAT = "qat"            # the phase name in a progress file
# the int8 grid fake quantization rounds to, named by what deploys it:
#   qdq:  ONNX Runtime's static QDQ (u8 activations per tensor, s8 weights per channel in [-127, 127])
#   qdq7: the same on a CPU without VNNI, where quantize_onnx keeps weights to 7 bits ([-64, 64])
#   x86:  torch.ao's own x86 QAT defaults (the zoo's ABPN-INT8, converted to torch's int8 kernels)
GRIDS = ("qdq", "qdq7", "x86")


def select_engine() -> str:
    """Select the int8 kernel backend this torch build supports (x86, else fbgemm); returns its name."""
    engines = torch.backends.quantized.supported_engines
    engine = "x86" if "x86" in engines else ("fbgemm" if "fbgemm" in engines else engines[-1])
    torch.backends.quantized.engine = engine
    return engine


def qconfig_mapping(grid: str):
    """The torch.ao QConfigMapping that fake-quantizes onto ``grid`` (one of GRIDS)."""
    from torch.ao.quantization import QConfig, QConfigMapping, get_default_qat_qconfig_mapping
    from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torch.ao.quantization.observer import MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver

    if grid not in GRIDS:
        raise ValueError(f"unknown QAT grid {grid!r}; one of {GRIDS}")
    if grid == "x86":
        return get_default_qat_qconfig_mapping("x86")
    w_max = 64 if grid == "qdq7" else 127
    # activations: u8 per tensor over a moving average of the batches' ranges (the file is calibrated on
    # real LR crops; on the zoo's WDSR-B, freezing ranges calibrated like it gave the same PSNR)
    act = FusedMovingAvgObsFakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
        qscheme=torch.per_tensor_affine)
    # weights: each step's own per-channel scale (averaging 1), as quantize_onnx takes it from the final weights
    weight = FusedMovingAvgObsFakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0, quant_min=-w_max, quant_max=w_max,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    return QConfigMapping().set_global(QConfig(activation=act, weight=weight))


def prepare_qat(net: nn.Module, grid: str = "qdq", keep_float: Sequence[str] = ("skip",),
                example_inputs: tuple = ()) -> nn.Module:
    """``net`` traced with fake quantization on ``grid`` (a GraphModule in train mode), modules in ``keep_float`` float.

    The traced copy shares ``net``'s parameters (pass a deep copy to keep the float net apart) and
    keeps its module names (a conv is still ``body.0.body.0``, fused with its ReLU where one follows).
    """
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    select_engine()
    mapping = qconfig_mapping(grid)
    for name in keep_float:
        mapping.set_module_name(name, None)
    with muted():   # torch.ao's deprecation notice and observer chatter, on every call
        gm = prepare_qat_fx(net.train(), mapping, example_inputs=example_inputs or (torch.rand(1, 3, 16, 16),))
    if keep_float:
        _float_downstream(gm, keep_float)
    return gm


def _under(path: str, names: Iterable[str]) -> bool:
    """Whether module path ``path`` is one of ``names`` or inside one."""
    return any(path == n or path.startswith(n + ".") for n in names)


def _float_downstream(gm, keep_float: Sequence[str]) -> None:
    """Drop the activation fake quantization FX put on a float module's output and on all computed from it.

    FX observes both inputs of the sum a float skip joins (and the sum, the shuffle, the clamp), so it
    would round the skip's output; the deployed file keeps that whole path float.
    """
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    region: set = set()
    for node in gm.graph.nodes:
        scopes = list(node.meta.get("nn_module_stack", {})) + ([node.target] if node.op == "call_module" else [])
        if any(_under(s, keep_float) for s in scopes) or any(a in region for a in node.all_input_nodes):
            region.add(node)
    for node in list(gm.graph.nodes):
        if node in region and node.op == "call_module" and isinstance(gm.get_submodule(node.target), FakeQuantizeBase):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
            gm.delete_submodule(node.target)
    gm.graph.lint()
    gm.recompile()


def fake_quantized(gm: nn.Module) -> list[str]:
    """Names of the fake-quantization modules of a prepared net (weights: ``<conv>.weight_fake_quant``)."""
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase

    return [n for n, m in gm.named_modules() if isinstance(m, FakeQuantizeBase)]


def load_float_weights(net: nn.Module, prepared: nn.Module) -> nn.Module:
    """Load a prepared copy's weights into float ``net`` by name (its fake-quant state is left out); returns ``net``."""
    theirs = prepared.state_dict()
    mine = net.state_dict()
    missing = [k for k in mine if k not in theirs]
    if missing:
        raise ValueError(f"the prepared net lacks {missing[:3]}: it was not traced from this net")
    net.load_state_dict({k: theirs[k] for k in mine})
    return net


class _ByName:
    """A prepared net as Masks.apply sees a net: the masked convs under their names (FX keeps them)."""

    def __init__(self, gm: nn.Module, names: Iterable[str]):
        self.gm, self.names = gm, list(names)

    def prunable(self) -> list[tuple[str, nn.Module]]:
        return [(n, self.gm.get_submodule(n)) for n in self.names]


class _MasksOnPrepared:
    """Masks re-applied to the prepared copy after every step, so pruned weights stay zero through QAT."""

    def __init__(self, masks: Masks):
        self.masks = masks

    def apply(self, gm: nn.Module) -> None:
        self.masks.apply(_ByName(gm, self.masks.weight))


def qat_finetune(net: nn.Module, sampler, steps: int, lr: float, masks: Masks | None = None,
                 keep_float: Sequence[str] = ("skip",), checkpoint: str | Path | None = None, grid: str = "qdq",
                 lr_floor: float = 0.01, save_every: int | None = None, log: Callable[[str], None] = print,
                 progress: bool = True) -> nn.Module:
    """Quantization-aware fine-tune of ``net`` for ``steps`` L1/Adam steps, cosine lr from ``lr`` to lr * lr_floor.

    Every conv but those in ``keep_float`` (the global skip, kept float as the deployed QDQ file
    keeps it) trains through fake quantization onto ``grid``; ``masks`` are re-applied after each
    step. ``checkpoint`` (optional) is a progress file saved as pruning's are (every ``save_every``
    steps, 30 s, and after the last step): a run restarted on it continues where it stopped and
    ends as an uninterrupted one would; the caller removes it once the result is kept. Returns
    ``net`` (in place, eval mode) holding the QAT-adapted float weights, fake quantization removed.
    """
    if steps <= 0:
        return net.eval()
    prepared = prepare_qat(copy.deepcopy(net), grid, keep_float)
    phase = None
    if checkpoint is not None:
        settings = {"qat_steps": steps, "lr": lr, "lr_floor": lr_floor, "grid": grid, "keep_float": list(keep_float),
                    "masked": sorted(masks.weight) if masks is not None else []}
        prog = Progress(checkpoint, settings, save_every, log=log)
        phase = prog.phase(QAT, prog.load())
    masked_finetune(prepared, sampler, steps, lr, _MasksOnPrepared(masks) if masks is not None else None,
                    lr_floor=lr_floor, desc=f"QAT ({grid})", progress=progress, resume=phase)
    return load_float_weights(net, prepared).eval()
