"""The Upscaler API: numpy frames in and out, the executor recorded in a searched model, one compile per size."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from srnas.experiments import upscaler as upscaler_mod
from srnas.experiments import zoo
from srnas.experiments.upscaler import Upscaler
from srnas.supernet.errors import UserError

torch.set_num_threads(1)


def _frame(h=24, w=32, dtype=np.uint8, seed=0):
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top + 1, size=(h, w, 3)).astype(dtype)


def test_frame_in_frame_out_matches_the_torch_model():
    f = _frame()
    with Upscaler("abpn", "torch-cpu", threads=1) as up:
        hr = up(f)
    assert hr.shape == (48, 64, 3) and hr.dtype == np.uint8
    x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        want = zoo.load("abpn", 2).eval()(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(hr.astype(float) - want).max() <= 0.51   # rounded, nothing else


def test_sixteen_bit_frames_stay_sixteen_bit():
    with Upscaler("bicubic", threads=1) as up:
        hr = up(_frame(dtype=np.uint16))
    assert hr.dtype == np.uint16 and (hr % 257 != 0).mean() > 0.9


def test_repr_says_the_model_its_scale_and_executor():
    up = Upscaler("abpn", "torch-cpu", threads=1)
    assert repr(up) == "Upscaler('abpn', scale=2, executor='torch-cpu/fp32')"
    up.close()
    assert repr(up).endswith(", closed)")


def test_wrong_frame_shape_is_a_user_error():
    with Upscaler("bicubic", threads=1) as up:
        with pytest.raises(UserError, match="HxWx3"):
            up(np.zeros((8, 8), np.uint8))
        with pytest.raises(UserError, match="uint8 or uint16"):
            up(np.zeros((8, 8, 3), np.float32))


def _count_compiles(monkeypatch) -> list:
    calls = []
    real = upscaler_mod._compile

    def counting(source, backend, precision, threads, hw, *rest):
        calls.append(hw)
        return real(source, backend, precision, threads, hw, *rest)
    monkeypatch.setattr(upscaler_mod, "_compile", counting)
    return calls


def test_openvino_compiled_once_per_size_then_once_for_any(monkeypatch):
    calls = _count_compiles(monkeypatch)
    monkeypatch.setattr(upscaler_mod, "MAX_STATIC", 2)
    with Upscaler("abpn", "openvino", threads=1) as up:
        run = lambda f: up.infer(up.to_input(f))   # noqa: E731  the float route (uint16 frames, tiles)
        for _ in range(3):
            run(_frame())
        run(_frame(20, 30))
        run(_frame())
        assert run(_frame(16, 18)).shape == (1, 3, 32, 36) and run(_frame(18, 16)).shape == (1, 3, 36, 32)
    assert calls == [(24, 32), (20, 30), None]   # past two sizes: one dynamic-shape compile serves the rest


def test_openvino_takes_8_bit_frames_itself(monkeypatch):
    """uint8 frames go through OpenVINO's own 8-bit route (scaling, rounding, layout in its graph), compiled once
    per size, and give what the float route gives to within a level."""
    calls = []
    real = upscaler_mod.pixel_infer
    monkeypatch.setattr(upscaler_mod, "pixel_infer", lambda *a: calls.append(a[-1]) or real(*a))
    frames = [_frame(seed=s) for s in range(3)] + [_frame(20, 30, seed=4)]
    with Upscaler("abpn", "openvino", threads=1) as up:
        got = [up(f) for f in frames]
        want = [up.to_pixels(up.infer(up.to_input(f))) for f in frames]
        assert up.pixel_route(_frame(dtype=np.uint16)) is None
    assert calls == [(24, 32), (20, 30)]
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == np.uint8 and np.abs(g.astype(int) - w).max() <= 1


def test_shape_free_runtime_compiled_once(monkeypatch):
    calls = _count_compiles(monkeypatch)
    with Upscaler("abpn", "onnxruntime", threads=1) as up:
        up(_frame())
        assert up(_frame(20, 30)).shape == (40, 60, 3)
    assert calls == [None]


def test_file_executor_agrees_with_torch():
    f = _frame(seed=3)
    with Upscaler("abpn", "torch-cpu", threads=1) as a, Upscaler("abpn", "onnxruntime", threads=1) as b:
        assert np.abs(a(f).astype(int) - b(f)).max() <= 1


def test_searched_model_runs_in_its_recorded_executor():
    from pathlib import Path

    from srnas.pruning.model_file import PrunedModel
    path = zoo.weights_path("srnas_abpn", 2)
    if not Path(path).is_file():
        pytest.skip("srnas_abpn weights not shipped here")
    pm = PrunedModel.load(path)
    try:
        up = Upscaler("srnas_abpn", threads=1)
    except UserError as e:   # e.g. OpenVINO cannot run INT8 on this CPU: said, not crashed
        assert pm.backend in str(e) or pm.precision in str(e)
        return
    with up:
        assert (up.backend, up.precision) == (pm.backend, pm.precision)
        assert up.chosen_by == "recorded in the model file"
        hr = up(_frame(36, 64, seed=1))
    assert hr.shape == (72, 128, 3)


def test_onnx_file_refuses_torch_backend(tmp_path):
    from srnas.latency.executors import export_onnx
    path = export_onnx(zoo.build("abpn", 2).eval(), [torch.rand(1, 3, 16, 16)], tmp_path / "m.onnx", dynamic=True)
    with pytest.raises(UserError, match="ONNX file"):
        Upscaler(str(path), "torch-cpu")
    with Upscaler(str(path), threads=1) as up:
        assert up.backend == "onnxruntime" and up(_frame()).shape == (48, 64, 3)


def test_recorded_executor_missing_here_is_said(monkeypatch):
    import srnas.experiments.upscaler as upscaler
    if not zoo.weights_path("srnas_abpn", 2).is_file():
        pytest.skip("srnas_abpn weights not shipped here")

    def no_openvino(backend, precision):
        if backend == "openvino":
            raise UserError("backend openvino needs the openvino package: pip install openvino")
    monkeypatch.setattr(upscaler, "check_executor", no_openvino)
    with pytest.raises(UserError, match=r"srnas_abpn was searched for openvino/int8, which cannot run here .*"
                                        r"pip install openvino.*pass --backend / --precision"):
        Upscaler("srnas_abpn", threads=1)


@pytest.fixture(scope="module")
def openvino_up():
    """One OpenVINO Upscaler: uint8 frames take its own 8-bit route (Upscaler.pixel_route)."""
    with Upscaler("abpn", "openvino", threads=1) as up:
        yield up


@pytest.mark.parametrize("shape", [(24, 32, 1), (24, 32, 4), (3, 24, 32), (0, 0, 3), (24, 0, 3)])
def test_odd_8_bit_frames_are_refused_before_the_runtime(openvino_up, monkeypatch, shape):
    """The 8-bit route checks frames as the 16-bit one does: one UserError naming the shape, OpenVINO never
    sees them (it raised its own internal errors)."""
    calls = []
    real = upscaler_mod.pixel_infer
    monkeypatch.setattr(upscaler_mod, "pixel_infer", lambda *a: calls.append(a[-1]) or real(*a))
    with pytest.raises(UserError) as e:
        openvino_up(np.zeros(shape, np.uint8))
    msg = str(e.value)
    assert "HxWx3" in msg and f"{shape} uint8" in msg and "H, W >= 1" in msg and "\n" not in msg
    assert not calls
    assert openvino_up(_frame()).shape == (48, 64, 3)   # and the Upscaler still works


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_empty_frames_are_refused_on_every_route(dtype):
    with Upscaler("abpn", "torch-cpu", threads=1) as up:
        for shape in [(0, 0, 3), (0, 8, 3), (8, 0, 3)]:
            with pytest.raises(UserError, match=r"H, W >= 1, got shape \(\d+, \d+, 3\)"):
                up(np.zeros(shape, dtype))


def test_channels_first_grey_and_rgba_frames_say_how_to_fix():
    with Upscaler("bicubic", threads=1) as up:
        for shape, hint in [((3, 8, 8), "transpose(1, 2, 0)"), ((8, 8, 1), "grey?"), ((8, 8, 4), "RGBA?")]:
            with pytest.raises(UserError, match=re.escape(hint)):
                up(np.zeros(shape, np.uint8))


def test_a_list_is_refused_in_one_line():
    with Upscaler("bicubic", threads=1) as up:
        with pytest.raises(UserError, match=r"numpy HxWx3 .* got a list: pass np\.asarray"):
            up(_frame().tolist())


def test_use_after_close_is_refused():
    up = Upscaler("bicubic", threads=1)
    assert up(_frame()).shape == (48, 64, 3)
    up.close()
    with pytest.raises(UserError, match=r"this Upscaler \(bicubic\) was closed: make a new one"):
        up(_frame())
    with Upscaler("bicubic", threads=1) as up:
        pass
    with pytest.raises(UserError, match="was closed"):
        up(_frame())
