"""Every zoo model in its INT8 form too (``<name>_int8``): the trained fp32 weights fine-tuned through fake
quantization onto the grid the INT8 executors run (pruning.quant, as stage 3 does for INT8 winners), saved as
float weights that an INT8 route (ONNX Runtime / OpenVINO QDQ) then quantizes with calibration.

So the searched front is compared with each baseline in the fastest form the executor runs it in. ABPN keeps
its own ``abpn_int8`` (torch.ao's x86 form, experiments/quantize.py), which torch's int8 kernels also run.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pruning.quant import qat_finetune
from supernet import checkpoint
from supernet.config import Config
from supernet.data import PatchSampler
from supernet.distributed import init_distributed
from supernet.train import load_train_images, stage_done

from . import INT8, YOnly, export_state, load, trainable_core, trained_steps, weights_path
from .training import Offset, YSampler


def qdq_grid() -> str:
    """The grid the INT8 QDQ file of this CPU runs (pruning.quant.GRIDS): 7-bit weights without VNNI."""
    from latency.executors import int8_weight_bits  # heavy (onnx, openvino): only when training

    return "qdq" if int8_weight_bits() == 8 else "qdq7"


def float_skips(core: torch.nn.Module) -> tuple[str, ...]:
    """Modules the deployed QDQ file keeps float (the global skip), so QAT leaves them float too."""
    return tuple(n for n in ("skip",) if hasattr(core, n))


def train_zoo_int8(cfg: Config, name: str, out_dir: Path | None = None, resume: bool = False, redo: bool = False,
                   fp32_weights: str | Path | None = None, sampler: PatchSampler | None = None) -> Path:
    """QAT of the trained fp32 ``INT8[name]`` for ``cfg.train.qat_steps``; returns <run>/zoo/<name>_x<s>.pt."""
    base = INT8[name]
    init_distributed(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    d, t = cfg.data, cfg.train
    zoo_dir = cfg.run(out_dir).zoo_dir
    stage_dir, final = zoo_dir / f"{name}_x{d.scale}", zoo_dir / f"{name}_x{d.scale}.pt"
    if stage_done(f"zoo {name}", stage_dir, final, redo):
        return final
    if redo:
        (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
    if fp32_weights is None:
        local = zoo_dir / f"{base}_x{d.scale}.pt"
        fp32_weights = local if local.exists() else weights_path(base, d.scale)
    model = load(base, d.scale, weights=fp32_weights)
    if sampler is None:
        sampler = PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size, d.augment, t.seed, 0)
    core = trainable_core(model)
    feed = Offset(YSampler(sampler) if isinstance(model, YOnly) else sampler)
    grid = qdq_grid()
    stage_dir.mkdir(parents=True, exist_ok=True)
    # a short, low-lr fine-tune, as abpn_int8's: QAT only adapts the trained weights to the int8 grid
    qat_finetune(core.train(), feed, t.qat_steps, t.lr * 0.1, keep_float=float_skips(core),
                 checkpoint=stage_dir / "checkpoint.pt", grid=grid, log=print)
    steps = trained_steps(base, d.scale, weights=fp32_weights) + t.qat_steps
    checkpoint.atomic_save({"name": name, "scale": d.scale, "state": export_state(model.eval()), "steps": steps,
                            "qat_grid": grid}, final)
    (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
    return final

