"""HR image sets -> LR/HR training patches and validation pairs (bicubic degradation)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .imaging import HRImage, ImageError, downscale, keep_usable, list_images, load_folder, modcrop, read_image

# Colour photographs bundled inside scikit-image's wheel (no download): the demo's data.
SKIMAGE_TRAIN = ["chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "motorcycle_left.png",
                 "retina.jpg", "rocket.jpg"]
SKIMAGE_VAL = ["astronaut.png", "motorcycle_right.png"]
EMBEDDED = "skimage"


def skimage_images(names: list[str]) -> list[HRImage]:
    """Read images shipped inside the scikit-image package."""
    import skimage.data

    root = Path(skimage.data.__file__).parent
    return [read_image(root / n) for n in names]


def default_data_root() -> Path:
    """Benchmark folder root: $SRNAS_DATA, else ../shared/data/benchmarks, else ./data."""
    env = os.environ.get("SRNAS_DATA")
    if env:
        return Path(env)
    for cand in (Path("../shared/data/benchmarks"), Path("data/benchmarks")):
        if cand.is_dir():
            return cand
    return Path("../shared/data/benchmarks")


def resolve_dataset(name: str, data_root: str | Path | None = None) -> Path:
    """A benchmark name (Set5, ...) under the data root, or a folder path as given."""
    p = Path(name)
    if p.is_dir():
        return p
    root = Path(data_root) if data_root else default_data_root()
    if (root / name).is_dir():
        return root / name
    raise UserError(f"dataset {name!r} is neither a folder nor found under {root}; pass a folder path, "
                    f"set data.data_root (--data-root) or $SRNAS_DATA, or use '{EMBEDDED}' (the embedded images)")


STANDARD_BENCHMARKS = ["Set5", "Set14", "B100"]


def default_benchmarks(data_root: str | None = None) -> list[str]:
    """The standard benchmark sets found under the data root; the embedded images where there are none."""
    root = Path(data_root) if data_root else default_data_root()
    found = [n for n in STANDARD_BENCHMARKS if (root / n).is_dir()]
    return found or [EMBEDDED]


def dataset_problems(train: list[str], val: str, benchmarks: list[str], data_root: str = "") -> list[str]:
    """One line per data source of a config that cannot be found or holds no image (checked before any work)."""
    named = [(f"data.train[{i}]", s) for i, s in enumerate(train)] + [("data.val", val)]
    named += [(f"data.benchmarks[{i}]", s) for i, s in enumerate(benchmarks)]
    out = []
    for where, source in named:
        if source == EMBEDDED:
            continue
        try:
            _one_readable(list_images(resolve_dataset(source, data_root or None)))
        except (UserError, ImageError) as e:
            out.append(f"{where}: {e}")
    if not train:
        out.append(f"data.train: list at least one HR folder, or '{EMBEDDED}' for the embedded images")
    return out


def _one_readable(files: list[Path]) -> None:
    """ImageError unless one of ``files`` reads as an image (the loader skips the others, warned); reads up to the
    first that does: one file for a sound folder."""
    for f in files:
        try:
            read_image(f)
            return
        except ImageError:
            continue
    raise ImageError(f"none of the {len(files)} image files in {files[0].parent} is readable (corrupt, or not an "
                     f"image); point the config at a folder of images")


def load_images(source: str, split: str = "train", min_side: int = 1, data_root: str | None = None) -> list[HRImage]:
    """Images of a source: 'skimage' (embedded, train/val split), a benchmark name or a folder."""
    if source == EMBEDDED:
        imgs = skimage_images(SKIMAGE_TRAIN if split == "train" else SKIMAGE_VAL)
        return keep_usable(imgs, min_side, "skimage.data")
    return load_folder(resolve_dataset(source, data_root), min_side=min_side)


def lr_crops(images: list[HRImage], scale: int, n: int = 8, size: int = 96) -> list[torch.Tensor]:
    """Up to ``n`` centre crops (1x3xSxS in [0, 1]) of the images' bicubic LR: real inputs for INT8 calibration.
    S is ``size``, or less where fewer than ``n`` images hold that square: the side n of them hold (x4 of T91 and
    BSD200: 80)."""
    crops, pairs = [], make_pairs(images, scale)
    sides = sorted((min(p.lr.shape[:2]) for p in pairs), reverse=True)
    size = min(size, sides[min(n, len(sides)) - 1]) if sides else size
    for p in pairs:
        h, w = p.lr.shape[:2]
        if min(h, w) >= size:
            top, left = (h - size) // 2, (w - size) // 2
            crop = np.ascontiguousarray(p.lr[top:top + size, left:left + size])
            crops.append(torch.from_numpy(crop).permute(2, 0, 1).float().div(255.0).unsqueeze(0))
        if len(crops) == n:
            break
    return crops


@dataclass
class Pair:
    """A validation pair: LR input and modcropped HR, uint8."""

    name: str
    lr: np.ndarray
    hr: np.ndarray
    grey: bool = False


def make_pairs(images: list[HRImage], scale: int) -> list[Pair]:
    """Modcrop each HR image and make its bicubic LR input."""
    out = []
    for im in images:
        hr = modcrop(im.rgb, scale)
        out.append(Pair(im.name, downscale(hr, scale), hr, im.grey))
    return out


class PatchSampler:
    """Random aligned LR/HR patch batches from in-memory images.

    LR images are made once per image (like DIV2K's shipped LR set); each batch is
    drawn from its own generator seeded by (seed, rank, step), so a resumed or
    distributed run draws the same batches without saving any sampler state.
    """

    def __init__(self, images: list[HRImage], scale: int, patch: int, batch: int, augment: bool = True,
                 seed: int = 0, rank: int = 0):
        usable = keep_usable(list(images), patch * scale, "the training images")
        self.pairs = make_pairs(usable, scale)
        self.scale, self.patch, self.batch, self.augment = scale, patch, batch, augment
        self.seed, self.rank = seed, rank

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch for training step ``step``: LR (Bx3xPxP) and HR (Bx3xsPxsP) in [0, 1]."""
        rng = np.random.default_rng([self.seed, self.rank, step])
        s, p = self.scale, self.patch
        lrs, hrs = [], []
        for i in rng.integers(len(self.pairs), size=self.batch):
            pair = self.pairs[i]
            h, w = pair.lr.shape[:2]
            y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            lr = pair.lr[y:y + p, x:x + p]
            hr = pair.hr[y * s:(y + p) * s, x * s:(x + p) * s]
            if self.augment:
                k, flip = int(rng.integers(4)), bool(rng.integers(2))
                lr, hr = np.rot90(lr, k), np.rot90(hr, k)
                if flip:
                    lr, hr = lr[:, ::-1], hr[:, ::-1]
            lrs.append(np.ascontiguousarray(lr))
            hrs.append(np.ascontiguousarray(hr))
        to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)
        return to(lrs), to(hrs)
