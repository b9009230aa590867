"""`srnas upscale`: apply a zoo or exported model to images or folders of frames, tiling large inputs."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import torch
import torch.nn.functional as F
from tqdm import tqdm

from supernet.errors import UserError
from supernet.imaging import list_images, read_rgb, to_tensor, to_uint8

from .models import LoadedModel, load_model

Runner = Callable[[torch.Tensor], torch.Tensor]


def tiled_upscale(run: Runner, x: torch.Tensor, scale: int, tile: int = 0, margin: int = 16,
                  fixed_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Upscale 1x3xHxW ``x`` tile by tile; each tile is run with ``margin`` LR pixels of real context.

    With a margin at least the model's receptive-field radius the result equals the
    untiled one (up to float rounding); tile <= 0 runs the whole image at once.
    A model that accepts only ``fixed_hw`` inputs is fed tiles of exactly that size.
    """
    if fixed_hw is not None and tuple(x.shape[-2:]) == tuple(fixed_hw):
        return run(x)
    if fixed_hw is not None:
        fh, fw = fixed_hw
        if fh <= 2 * margin or fw <= 2 * margin:
            margin = min(fh, fw) // 4
        core_h, core_w = fh - 2 * margin, fw - 2 * margin
    elif tile <= 0:
        return run(x)
    else:
        core_h = core_w = tile
    h, w = x.shape[-2:]
    s = scale
    out = x.new_zeros(x.shape[0], 3, h * s, w * s)
    for y0 in range(0, h, core_h):
        for x0 in range(0, w, core_w):
            y1, x1 = min(y0 + core_h, h), min(x0 + core_w, w)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb = min(h, y1 + margin), min(w, x1 + margin)
            patch = x[..., ya:yb, xa:xb]
            if fixed_hw is not None:  # pad bottom/right up to the only size the model takes
                ph, pw = fixed_hw[0] - patch.shape[-2], fixed_hw[1] - patch.shape[-1]
                patch = F.pad(patch, (0, pw, 0, ph), mode="replicate")
            sr = run(patch)
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = sr[..., (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
    return out


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Image files given directly, plus every image of each folder (frames, in name order)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise UserError(f"folder {p} holds no images (png, jpg, bmp, ...)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"input {p} is neither an image file nor a folder")
    return files


def upscale_files(model: LoadedModel, inputs: list[str], out_dir: str | Path, tile: int = 0,
                  margin: int = 16) -> dict:
    """Upscale every input image into ``out_dir`` (PNG, same stem); returns counts and frames per second."""
    files = collect_inputs(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_s, t0, written = 0.0, time.perf_counter(), []
    for f in tqdm(files, desc=f"upscale {model.name}", dynamic_ncols=True):
        x = to_tensor(read_rgb(f))
        t1 = time.perf_counter()
        with torch.inference_mode():
            y = tiled_upscale(model.run, x, model.scale, tile, margin, model.fixed_hw)
        model_s += time.perf_counter() - t1
        dst = out_dir / f"{f.stem}.png"
        iio.imwrite(dst, to_uint8(y))
        written.append(str(dst))
    total_s = time.perf_counter() - t0
    n = len(files)
    return {"model": model.name, "frames": n, "model_s": model_s, "total_s": total_s,
            "fps": n / model_s if model_s else float("inf"), "fps_with_io": n / total_s if total_s else float("inf"),
            "outputs": written}


def upscale_command(spec: str, inputs: list[str], out_dir: str, scale: int = 2, tile: int = 0, margin: int = 16,
                    weights_dir: str | None = None, threads: int = 0) -> dict:
    """What `srnas upscale` runs: load the model, upscale, print the speed."""
    if threads > 0:
        torch.set_num_threads(threads)
    if tile < 0 or margin < 0:
        raise UserError("--tile and --margin must be >= 0")
    model = load_model(spec, scale, weights_dir, threads)
    res = upscale_files(model, inputs, out_dir, tile, margin)
    print(f"{res['frames']} frame(s) -> {out_dir}: {res['fps']:.3f} fps (model), "
          f"{res['fps_with_io']:.3f} fps (with image I/O), tile={tile or 'none'} margin={margin}")
    return res
