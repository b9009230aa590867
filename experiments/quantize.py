"""INT8 ABPN: quantization-aware training (torch.ao FX, fake quantization) and conversion to int8.

The conv stack (``ABPN.body``, all the MACs) runs in int8 (x86/fbgemm kernels); the
anchor add, PixelShuffle and clip stay float, around one dequantize. The QAT weights
are saved as the prepared model's state dict (weights + fake-quant scales), so loading
rebuilds the same graph and converts it; export is TorchScript of the converted model.
Fake quantization is pruning.quant's, the one QAT of srnas (stage 3 of INT8 winners uses it
too), on torch's own x86 grid, which the shipped state and the conversion to int8 kernels need.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from srnas.pruning import quant
from srnas.supernet import checkpoint
from srnas.supernet.config import Config
from srnas.supernet.console import muted
from srnas.supernet.data import PatchSampler, load_images, make_pairs
from srnas.supernet.distributed import init_distributed
from srnas.supernet.errors import UserError
from srnas.supernet.evaluate import evaluate
from srnas.supernet.train import Recipe, load_train_images, stage_done, train_loop

from . import zoo
from .zoo.abpn import ABPN
from .zoo.training import Offset

GRID = "x86"   # torch.ao's x86 defaults: what torch's int8 kernels run, and what the shipped state holds


def prepare_qat(model: ABPN) -> ABPN:
    """Insert fake quantization (and fuse conv+ReLU) into ``model.body``, in place; returns the model.

    Only the body is traced: the anchor, its add, PixelShuffle and clip are outside it and stay float.
    """
    model.train()
    model.body = quant.prepare_qat(model.body, GRID, keep_float=())
    return model


def convert_int8(qat_model: ABPN) -> ABPN:
    """An int8 copy of a QAT-prepared ABPN (body converted to quantized kernels), in eval mode."""
    from torch.ao.quantization.quantize_fx import convert_fx

    quant.select_engine()
    m = copy.deepcopy(qat_model).eval()
    with muted():   # torch.ao on torch's int8 tensors, which its int8 kernels run
        m.body = convert_fx(m.body)
    return m


def int8_weights_path(scale: int, weights_dir: str | Path | None = None) -> Path:
    """Shipped (or given) QAT weights of the INT8 ABPN."""
    return zoo.weights_path("abpn_int8", scale, weights_dir)


def load_abpn_int8(scale: int, weights: str | Path | None = None, weights_dir: str | Path | None = None) -> nn.Module:
    """The INT8 ABPN from saved QAT weights, converted and ready to run."""
    path = Path(weights) if weights else int8_weights_path(scale, weights_dir)
    if not path.exists():
        raise UserError(f"no INT8 ABPN weights at {path}: run `srnas zoo train abpn_int8 -c "
                        f"experiments/configs/zoo.yaml` (needs the FP32 ABPN weights) or "
                        f"`python experiments/train_zoo.py --models abpn_int8`")
    model = prepare_qat(ABPN(scale))
    state = checkpoint.load(path)["state"]
    model.load_state_dict(state)
    return convert_int8(model)


def train_abpn_int8(cfg: Config, out_dir: Path | None = None, resume: bool = False, redo: bool = False,
                    fp32_weights: str | Path | None = None, sampler: PatchSampler | None = None) -> Path:
    """QAT fine-tune of the trained FP32 ABPN for ``cfg.train.qat_steps``; returns <run>/zoo/abpn_int8_x<s>.pt."""
    init_distributed(cfg.train.threads)
    d = cfg.data
    zoo_dir = cfg.run(out_dir).zoo_dir
    stage_dir, final = zoo_dir / f"abpn_int8_x{d.scale}", zoo_dir / f"abpn_int8_x{d.scale}.pt"
    if stage_done("zoo abpn_int8", stage_dir, final, redo):
        return final
    if fp32_weights is None:
        local = zoo_dir / f"abpn_x{d.scale}.pt"
        fp32_weights = local if local.exists() else None
    fp32 = zoo.load("abpn", d.scale, weights=fp32_weights)
    model = prepare_qat(fp32)
    if sampler is None:
        sampler = PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size, d.augment,
                               cfg.train.seed, 0)
    pairs = make_pairs(load_images(d.val, "val", data_root=d.data_root), d.scale)
    t = cfg.train
    # a short, low-lr fine-tune: QAT only has to adapt the trained weights to the int8 grid
    recipe = Recipe(t.qat_steps, t.qat_steps, t.lr * 0.1, t.lr_min * 0.1, t.weight_decay)

    def validate(m: nn.Module) -> list[dict]:
        return [{"name": "abpn_int8", **evaluate(convert_int8(m), pairs, d.scale, ssim=False)}]

    train_loop(model, Offset(sampler), recipe, stage_dir, lambda m, x, step: m(x), validate,
               init_distributed(cfg.train.threads), resume, desc="zoo abpn_int8 (QAT)")
    steps = zoo.trained_steps("abpn", d.scale, weights=fp32_weights) + t.qat_steps
    checkpoint.atomic_save({"name": "abpn_int8", "scale": d.scale, "state": model.state_dict(), "steps": steps}, final)
    return final


def export_torchscript(model: nn.Module, path: str | Path, lr_hw: tuple[int, int] = (64, 64)) -> Path:
    """Trace ``model`` (e.g. the int8 ABPN) to a TorchScript file that loads without srnas."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        ts = torch.jit.trace(model.eval(), torch.rand(1, 3, *lr_hw), check_trace=False)
    ts = torch.jit.freeze(ts) if hasattr(torch.jit, "freeze") else ts
    # made in memory and written atomically: TorchScript's own file writer aborts the process on a full disk
    import io
    from srnas.supernet.writes import atomic_write_bytes
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def abpn_float_from_qat(scale: int, weights_dir: str | Path | None = None) -> nn.Module:
    """The float ABPN holding abpn_int8's QAT-trained weights (what the ONNX INT8 route quantizes)."""
    state = checkpoint.load(int8_weights_path(scale, weights_dir))["state"]
    # prepare_qat_fx keeps the body's module names (body.<i>); the fake-quant entries beside them are dropped
    net = ABPN(scale)
    net.load_state_dict({k: v for k, v in state.items() if re.fullmatch(r"body\.\d+\.(weight|bias)", k)})
    return net.eval()
