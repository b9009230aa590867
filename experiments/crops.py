"""Look, not only read: zoomed crops of bicubic and models side by side, labelled, as one PNG.

The crop is taken where the first model differs most from bicubic (or the HR image, when given), i.e.
where the model has detail to show.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from srnas.supernet.imaging import imresize


def crop_sheet(lr: torch.Tensor, outputs: dict[str, torch.Tensor], side: int = 96, zoom: int = 4) -> np.ndarray:
    """Bicubic | each of ``outputs`` (1x3xHxW in [0, 1], e.g. models and 'HR'): the same crop, zoomed, labelled."""
    first = next(iter(outputs.values()))
    h, w = first.shape[-2:]
    side = min(side, h, w)
    bic = imresize(lr.float(), (h, w)).clamp(0, 1)
    ref = outputs.get("HR", first).float().clamp(0, 1)
    stride = max(1, side // 4)
    energy = F.avg_pool2d((bic - ref).abs().mean(1, keepdim=True), side, stride=stride)
    iy, ix = divmod(int(energy.flatten().argmax()), energy.shape[-1])
    y0, x0 = min(iy * stride, h - side), min(ix * stride, w - side)

    def crop(t: torch.Tensor) -> np.ndarray:
        c = t.float().clamp(0, 1)[0, :, y0:y0 + side, x0:x0 + side]
        c = c.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)   # nearest: each pixel a block, no smoothing
        return (c.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    panels = [("bicubic", crop(bic))] + [(name, crop(t)) for name, t in outputs.items()]
    gap = np.full((side * zoom, 4, 3), 255, np.uint8)
    row, labels, x = [], [], 0
    for i, (name, p) in enumerate(panels):
        if i:
            row.append(gap)
            x += gap.shape[1]
        labels.append((name if i else f"bicubic (x{zoom}, crop at {x0},{y0})", x + 8))
        row.append(p)
        x += p.shape[1]
    return draw_labels(np.concatenate(row, axis=1), labels)


def draw_labels(img: np.ndarray, labels: list[tuple[str, int]]) -> np.ndarray:
    """Write each (text, x) at the top of ``img`` in white on a dark box (8-bit frames; deeper ones unlabelled)."""
    if img.dtype != np.uint8:
        return img
    from PIL import Image, ImageDraw, ImageFont
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = ImageFont.load_default(size=max(10, img.shape[0] // 30))
    for text, x in labels:
        box = draw.textbbox((x, 6), text, font=font)
        draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
        draw.text((x, 6), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)
