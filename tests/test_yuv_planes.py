"""The model's own 8-bit output in OpenVINO: YUV 4:2:0 planes (issue 34), converted before the pixel shuffle so
no RGB -> YUV pass over the upscaled frame is left to swscale, and RGB pixels, also made before the shuffle."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from srnas.latency.onnx_export import export_onnx
from srnas.latency.runtimes.openvino_runtime import YuvOut, openvino_compile

pytest.importorskip("openvino")

torch.manual_seed(0)


class _Shuffle(nn.Module):
    """A conv to 3 s^2 channels, the pixel shuffle and a clamp: how searched members and ABPN end."""

    def __init__(self, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 3 * scale * scale, 3, padding=1)
        nn.init.uniform_(self.conv.weight, -0.2, 0.2)
        nn.init.uniform_(self.conv.bias, 0.0, 0.6)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.shuffle(self.conv(x)).clamp(0, 1)


class _Deconv(nn.Module):
    """A transposed conv (FSRCNN's tail): no shuffle to convert before."""

    def __init__(self, scale: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(3, 3, scale, stride=scale)

    def forward(self, x):
        return self.up(x).clamp(0, 1)


def _onnx(model: nn.Module, path, hw=(12, 16)):
    return export_onnx(model, [torch.rand(1, 3, *hw)], path)


def _reference(rgb: np.ndarray, yuv: YuvOut) -> tuple[np.ndarray, np.ndarray]:
    """Y and UV of a float HxWx3 RGB frame in [0, 1] by the standard: rounded half up, chroma the 2x2 mean."""
    m, off = yuv.rgb_to_yuv()
    planes = np.einsum("pc,hwc->phw", m, rgb) + off[:, None, None]
    h, w = rgb.shape[:2]
    uv = planes[1:].reshape(2, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    return np.floor(planes[0] + 0.5), np.floor(uv + 0.5)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("yuv", [YuvOut(0.299, 0.114, False), YuvOut(0.2126, 0.0722, True)],
                         ids=["bt601-limited", "bt709-full"])
def test_planes_are_the_standards_yuv_of_the_models_rgb(tmp_path, scale, yuv):
    """At every scale and matrix / range, the planes are the model's RGB output converted by the standard:
    Y and each chroma sample within one level (float rounding), never biased."""
    model = _Shuffle(scale)
    path = _onnx(model, tmp_path / "m.onnx")
    frame = np.random.default_rng(scale).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    compiled = openvino_compile(path, "fp32", 1, [(1, 3, 12, 16)], pixels=True, yuv=yuv)
    y, uv = (o[0] for o in compiled.create_infer_request().infer([frame[None]]).values())
    with torch.no_grad():
        rgb = model(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    want_y, want_uv = _reference(rgb.astype(np.float64), yuv)
    assert y.shape == (1, 12 * scale, 16 * scale) and uv.shape == (2, 6 * scale, 8 * scale)
    assert y.dtype == uv.dtype == np.uint8
    for got, want in ((y[0], want_y), (uv, want_uv)):
        err = got.astype(float) - want
        assert np.abs(err).max() <= 1 and abs(err.mean()) < 0.05


def test_a_model_without_a_final_shuffle_keeps_rgb(tmp_path):
    """A graph that does not end in a depth-to-space has no YUV form: the route says so, and RGB stays."""
    from srnas.latency.runtimes.openvino_runtime import OpenVINORuntime
    path = _onnx(_Deconv(2), tmp_path / "d.onnx")
    yuv = YuvOut(0.299, 0.114, False)
    assert OpenVINORuntime().load_pixels_async(path, "fp32", 1, (12, 16), 1, yuv) is None
    assert OpenVINORuntime().load_pixels_async(path, "fp32", 1, (12, 16), 1) is not None
    with pytest.raises(ValueError, match="depth-to-space"):
        openvino_compile(path, "fp32", 1, [(1, 3, 12, 16)], pixels=True, yuv=yuv)


@pytest.mark.parametrize("model", [_Shuffle(3), _Deconv(2)], ids=["shuffle", "deconv"])
def test_rgb_pixels_are_the_models_output_rounded_and_made_before_a_final_shuffle(tmp_path, model):
    """8-bit RGB out is the float output rounded half up and clipped; where the graph ends in a depth-to-space,
    the shuffle moves the 8-bit values (a quarter of the bytes), not floats."""
    import openvino as ov
    from srnas.latency.runtimes.openvino_runtime import pixel_io

    path = _onnx(model, tmp_path / "m.onnx")
    frame = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    compiled = openvino_compile(path, "fp32", 1, [(1, 3, 12, 16)], pixels=True)
    got = next(iter(compiled.create_infer_request().infer([frame[None]]).values()))[0]
    with torch.no_grad():
        rgb = model(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)[0].permute(1, 2, 0).numpy()
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.abs(got.astype(float) - np.floor(rgb.astype(np.float64) * 255 + 0.5)).max() <= 1
    shuffles = [n for n in pixel_io(ov.Core().read_model(str(path))).get_ordered_ops()
                if n.get_type_name() == "DepthToSpace"]
    assert [n.get_output_element_type(0) for n in shuffles] == ([ov.Type.u8] if isinstance(model, _Shuffle) else [])
