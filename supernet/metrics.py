"""PSNR and SSIM on the Y channel (ITU-R BT.601) with ``scale`` pixels of border cropped."""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float64 Y in [16, 235], as MATLAB's rgb2ycbcr."""
    x = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _crop(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def _luma_pair(sr: np.ndarray, hr: np.ndarray, border: int, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cropped Y planes; for a ground truth stored as greyscale, on its raw 0..255 scale.

    The literature's MATLAB scripts convert only 3-channel files to Y and score a
    one-channel file (Set14's bridge) on its raw values; BT.601 Y's [16, 235] range
    would lift that image by 1.32 dB. Mapping Y back to full range reproduces them.
    """
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: {sr.shape} vs {hr.shape}")
    a, b = rgb_to_y(sr), rgb_to_y(hr)
    if grey:
        a, b = (a - 16.0) * (255.0 / 219.0), (b - 16.0) * (255.0 / 219.0)
    return _crop(a, border), _crop(b, border)


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int, grey: bool = False) -> float:
    """PSNR (dB) between two uint8 RGB images on Y with ``border`` pixels cropped.

    ``grey``: the ground truth was stored as a one-channel file (see _luma_pair).
    """
    a, b = _luma_pair(sr, hr, border, grey)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int, grey: bool = False) -> float:
    """SSIM on Y, border cropped, with the Gaussian window of Wang et al. (scikit-image)."""
    a, b = _luma_pair(sr, hr, border, grey)
    return float(structural_similarity(a, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))
