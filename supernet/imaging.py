"""Image IO and MATLAB-style bicubic resizing (the SR literature's degradation model)."""
from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .writes import atomic_write_bytes

IMAGE_EXTS = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"}


class ImageError(UserError, ValueError):
    """An image that cannot be used (unreadable, wrong shape, too small)."""


@dataclass
class HRImage:
    """A ground-truth image: name, HxWx3 uint8 pixels, and whether the file had one channel."""

    name: str
    rgb: np.ndarray
    grey: bool = False


def read_image(path: str | Path) -> HRImage:
    """Read an image file as HxWx3 uint8 RGB (greyscale replicated, alpha dropped)."""
    img = read_pixels(path)
    grey = img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)
    return HRImage(Path(path).stem, to_rgb_uint8(img, str(path)), grey)


def read_pixels(path: str | Path) -> np.ndarray:
    """Read an image file as stored: HxW or HxWxC, at its own bit depth (16-bit PNGs stay 16-bit)."""
    path = Path(path)
    try:
        return _read_any(path)
    except Exception as e:  # imageio raises many types for broken files
        raise ImageError(f"{path} is not a readable image: {_unreadable_reason(path, e)}") from None


def _read_any(path: Path) -> np.ndarray:
    """The pixels of ``path``: 16-bit colour PNGs and other colour spaces decoded here, everything else by imageio."""
    try:
        img = _read_png16(path)
    except Exception as e:  # a broken file fails again just below, with imageio's reason
        img = np.asarray(iio.imread(path))
        warnings.warn(f"{path}: 16-bit PNG read at 8 bits ({e})", stacklevel=4)
        return img
    if img is None:
        img = _read_other_colour_space(path)
    return img if img is not None else np.asarray(iio.imread(path))


# colour spaces imageio hands over as they are stored: CMYK's four channels would pass for RGBA, LAB's three for RGB
OTHER_COLOUR_SPACES = ("CMYK", "YCbCr", "LAB", "HSV")


def _read_other_colour_space(path: Path) -> np.ndarray | None:
    """An image stored in one of OTHER_COLOUR_SPACES (a print JPEG or TIFF in CMYK) as HxWx3 RGB; None for others."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:   # reads the header only
            if im.mode not in OTHER_COLOUR_SPACES:
                return None
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):   # not an image Pillow knows: imageio says why below
        return None


def _unreadable_reason(path: Path, err: Exception) -> str:
    """One line on why ``path`` could not be read, in place of imageio's plugin advice."""
    try:
        if path.is_file() and path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    if isinstance(err, OSError) and err.strerror:  # missing, a folder, no permission
        return err.strerror
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    # imageio says "Could not find a backend ... pip install imageio[pyav]" for any file no plugin
    # accepts, which for a .png/.jpg means the data is not what its name says, not a missing plugin
    if "could not find a backend" in msg.lower():
        return "unrecognised format or corrupt data"
    return f"corrupt data ({msg})"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow has no 16-bit colour modes, so it hands 16-bit RGB / RGBA / grey+alpha PNGs over as 8 bits
# (the high bytes). Its zip decoder unfilters at the true pixel size for any unpacker of the same
# width, so decoding again with the little-endian unpacker (on big-endian PNG data) gives the low
# bytes; grey+alpha has no such unpacker, but 8-bit RGBA is as wide and keeps all four bytes.
_PNG16_RAWMODES = {2: ("RGB;16B", "RGB;16L"), 6: ("RGBA;16B", "RGBA;16L")}
_PNG_GREY_ALPHA = 4


def _png_depth_and_type(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's header, or None when ``path`` is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_png16(path: Path) -> np.ndarray | None:
    """A 16-bit colour PNG as HxWxC uint16, or None for any other file (imageio reads those right)."""
    header = _png_depth_and_type(path)
    if header is None or header[0] != 16 or header[1] not in (*_PNG16_RAWMODES, _PNG_GREY_ALPHA):
        return None
    if header[1] == _PNG_GREY_ALPHA:
        b = _pillow_decode(path, "RGBA").astype(np.uint16)  # bytes L_hi, L_lo, A_hi, A_lo
        return np.stack([b[..., 0] << 8 | b[..., 1], b[..., 2] << 8 | b[..., 3]], axis=-1)
    hi, lo = _PNG16_RAWMODES[header[1]]
    return _pillow_decode(path, hi).astype(np.uint16) << 8 | _pillow_decode(path, lo)


def _pillow_decode(path: Path, rawmode: str) -> np.ndarray:
    """Decode a PNG with Pillow's zip decoder and unpacker ``rawmode`` in place of its own choice."""
    from PIL import Image  # imageio's own reader; imported here as only 16-bit PNGs need it directly

    with Image.open(path) as im:
        tile = im.tile[0]
        args = (rawmode, *tile.args[1:]) if isinstance(tile.args, tuple) else rawmode
        im.tile = [tile._replace(args=args)]
        im.load()
        return np.asarray(im)


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write HxW or HxWxC (C = 1..4: grey, grey+alpha, RGB, RGBA) uint8 or uint16 pixels as a PNG.

    Encoded in memory, written beside ``path`` and renamed over it: a full disk (DiskFull) or a kill leaves no
    partial or empty PNG under the final name.
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.dtype == np.uint16:
        data = _png16(img)
    elif img.dtype == np.uint8:
        data = iio.imwrite("<bytes>", img, extension=".png")
    else:
        raise ValueError(f"write_png takes uint8 or uint16 pixels, not {img.dtype}")
    atomic_write_bytes(path, data)


def _png16(img: np.ndarray) -> bytes:
    """Encode a 16-bit PNG directly (Pillow writes 16 bits for grey only)."""
    a = np.ascontiguousarray(img, dtype=">u2")  # PNG stores samples big-endian
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    colour_type = {1: 0, 2: _PNG_GREY_ALPHA, 3: 2, 4: 6}[channels]
    rows = a.reshape(h, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter byte 0 (none) per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB."""
    return read_image(path).rgb


def to_rgb_uint8(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Normalise an array from any reader to HxWx3 uint8."""
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max() <= 1.0:
            img = img * 255.0
        elif img.dtype == np.uint16:
            img = img / 257.0
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: expected a greyscale or colour image, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ImageError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in {folder}")
    return files


def load_folder(folder: str | Path, min_side: int = 1) -> list[HRImage]:
    """Read every image of a folder; unreadable or too-small ones are skipped with a warning."""
    return keep_usable([_try_read(p) for p in list_images(folder)], min_side, str(folder))


def _try_read(path: Path) -> HRImage | None:
    try:
        return read_image(path)
    except ImageError as e:
        warnings.warn(f"skipping {e}", stacklevel=3)
        return None


def keep_usable(images: list[HRImage | None], min_side: int, source: str) -> list[HRImage]:
    """Drop unreadable (None) and too-small images with a warning; fail when none remain."""
    out = []
    for img in images:
        if img is None:
            continue
        h, w = img.rgb.shape[:2]
        if min(h, w) < min_side:
            warnings.warn(f"skipping {img.name} in {source}: {w}x{h} is smaller than {min_side} px a side",
                          stacklevel=2)
            continue
        out.append(img)
    if not out:
        raise ImageError(f"no usable images in {source} (each must be readable and at least {min_side} px "
                         "a side); point the config's data section at a folder of larger images")
    return out


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) float in [0, 1] -> HxWx3 uint8, rounded like MATLAB's im2uint8."""
    if x.dim() == 4:
        x = x[0]
    return x.detach().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop HxW to multiples of ``scale`` (as the SR benchmarks do before downscaling)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def imresize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of an NxCxHxW float tensor, antialiased when shrinking.

    PyTorch's antialiased bicubic uses the a=-0.5 kernel, the one MATLAB's imresize
    uses, with the kernel widened by the factor on downscaling; that reproduces the
    literature's bicubic baselines (Set5 x2 33.66 dB) within a few hundredths of a dB.
    """
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """HR uint8 image -> LR uint8 image, 1/scale the size (HR must be modcropped)."""
    h, w = hr.shape[:2]
    return to_uint8(imresize(to_tensor(hr), (h // scale, w // scale)))


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """LR uint8 image -> bicubic-upscaled uint8 image (the bicubic baseline)."""
    h, w = lr.shape[:2]
    return to_uint8(imresize(to_tensor(lr), (h * scale, w * scale)))
