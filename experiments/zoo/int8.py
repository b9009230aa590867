"""Every zoo model in its INT8 form too (``<name>_int8``): the trained fp32 weights fine-tuned through fake
quantization onto the grid the INT8 executors run (pruning.quant, as stage 3 does for INT8 winners), saved as
float weights that an INT8 route (ONNX Runtime / OpenVINO QDQ) then quantizes with calibration.
So the searched front is compared with each baseline in the fastest form the executor runs it in. ABPN keeps
its own ``abpn_int8`` (torch.ao's x86 form, experiments/quantize.py), which torch's int8 kernels also run.

The baseline at its best: QAT does not help every model (on a 2-core Xeon with AVX-512 VNNI, 300 QAT steps
left eSR-CNN's INT8 file at 32.0 dB on Set5 where quantizing its fp32 weights directly gave 34.2), so the
weights that score higher in the INT8 route on the held-out validation images are kept, QAT's or the fp32
ones (post-training quantization), and the file says which.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from srnas.latency.deploy import make_infer
from srnas.pruning.quant import qat_finetune
from srnas.search.stage3 import qat_grid
from srnas.supernet import checkpoint
from srnas.supernet.config import Config
from srnas.supernet.data import PatchSampler, load_images, make_pairs
from srnas.supernet.distributed import init_distributed
from srnas.supernet.evaluate import evaluate
from srnas.supernet.train import load_train_images, stage_done

from . import INT8, YOnly, export_state, load, trainable_core, trained_steps, weights_path
from .training import Offset, YSampler


def int8_psnr(model: torch.nn.Module, pairs, scale: int, workdir: Path) -> float:
    """PSNR (Y) of ``model`` as the INT8 route runs it: ONNX Runtime's QDQ file, calibrated as bench calibrates."""
    from ..precision import calibration_inputs   # precision imports the zoo (models): resolved when training

    infer = make_infer(model, [torch.rand(1, 3, 32, 32)], "onnxruntime", 0, "int8", calibration_inputs(scale),
                       dynamic=True, workdir=workdir)
    return float(evaluate(infer, pairs, scale, ssim=False)["psnr"])


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
    grid = qat_grid()   # the grid INT8 winners' stage 3 trains for, on this CPU
    stage_dir.mkdir(parents=True, exist_ok=True)
    fp32 = copy.deepcopy(model).eval()
    # a short, low-lr fine-tune, as abpn_int8's: QAT only adapts the trained weights to the int8 grid
    qat_finetune(core.train(), feed, t.qat_steps, t.lr * 0.1, keep_float=float_skips(core),
                 checkpoint=stage_dir / "checkpoint.pt", grid=grid, log=print)
    pairs = make_pairs(load_images(d.val, "val", data_root=d.data_root), d.scale)
    scores = {k: int8_psnr(m, pairs, d.scale, stage_dir / k) for k, m in (("qat", model.eval()), ("ptq", fp32))}
    print(f"zoo {name}: INT8 PSNR on {d.val}: QAT {scores['qat']:.3f} dB, fp32 weights {scores['ptq']:.3f} dB")
    qat = scores["qat"] >= scores["ptq"]
    steps = trained_steps(base, d.scale, weights=fp32_weights) + (t.qat_steps if qat else 0)
    checkpoint.atomic_save({"name": name, "scale": d.scale, "state": export_state(model if qat else fp32),
                            "steps": steps, "qat_grid": grid if qat else None, "int8_val_psnr": scores}, final)
    (stage_dir / "checkpoint.pt").unlink(missing_ok=True)
    return final

