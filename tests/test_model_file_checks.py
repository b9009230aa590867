"""Odd model files end in one line naming the file and what to do (exit 2), never in a traceback, an attempt to
allocate a network of an edited size, or a run that exits 0 with a wrong result: one validating loader per kind
(pruned .pt, TorchScript .ts, .onnx) and for model names."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from srnas.experiments import zoo
from srnas.experiments.models import load_model
from srnas.experiments.sweep_bad_input import external_data_at
from srnas.pruning.model_file import PrunedModel
from srnas.supernet.errors import UserError

from test_safe_model_files import run_cli

PRUNED_FIX = "write it anew"
EXPORT_FIX = "srnas export"


def one_line(msg: str, path: Path | str, *needles: str) -> None:
    """``msg`` is one line, names ``path`` and says each of ``needles`` (what was wrong, what to do)."""
    assert "\n" not in msg.strip() and "Traceback" not in msg, msg
    assert str(path) in msg, msg
    for n in needles:
        assert n in msg, f"{n!r} not in: {msg}"


def refused(path: Path, *needles: str, load: Callable = load_model) -> str:
    """The UserError message of loading ``path``, checked by one_line."""
    with pytest.raises(UserError) as e:
        load(str(path))
    one_line(str(e.value), path, *needles)
    return str(e.value)


def cli_refuses(path: Path, tmp_path: Path, capsys, *needles: str) -> None:
    """`srnas upscale MODEL img` exits 2 with one line naming the file, and writes no image."""
    import imageio.v3 as iio
    img = tmp_path / "in.png"
    iio.imwrite(img, np.zeros((16, 16, 3), np.uint8))
    out = tmp_path / "out"
    code, err = run_cli(["upscale", str(path), str(img), "--out", str(out)], capsys)
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("srnas upscale: error:"), err
    one_line(lines[0], path, *needles)
    assert not out.is_dir() or not any(out.iterdir())


def shipped_blob() -> dict:
    """A shipped searched model's dict with pruning masks (which member srnas_abpn names depends on the CPU, and
    an unpruned one has none to edit)."""
    for path in sorted((zoo.WEIGHTS_DIR / zoo.FRONTS).glob("*/srnas_*_x2.pt")):
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("masks", {}).get("weight"):
            return blob
    pytest.skip("no pruned searched model shipped here")


def edited(tmp_path: Path, edit: Callable[[dict], object], name: str = "edited.pt") -> tuple[Path, object]:
    """A copy of the shipped pruned model with ``edit`` applied to its dict, and what ``edit`` returned."""
    blob = shipped_blob()
    said = edit(blob)
    path = tmp_path / name
    torch.save(blob, path)
    return path, said


def _first(d: dict) -> str:
    return next(iter(d))


def _wrong_shape(b: dict) -> str:
    k = _first(b["state"])
    t = b["state"][k]
    b["state"][k] = torch.zeros(t.shape[0] + 1, *t.shape[1:])
    return f"state[{k!r}] has shape"


def _missing_key(b: dict) -> str:
    k = _first(b["state"])
    del b["state"][k]
    return f"state lacks [{k!r}]"


def _mask(b: dict, value: Callable[[torch.Tensor], torch.Tensor]) -> str:
    k = _first(b["masks"]["weight"])
    b["masks"]["weight"][k] = value(b["masks"]["weight"][k])
    return k


def _nonfinite(value: float) -> Callable[[dict], str]:
    def edit(b: dict) -> str:
        k = _first(b["state"])
        b["state"][k] = b["state"][k].flatten().index_fill(0, torch.tensor([0]), value).view_as(b["state"][k])
        return f"NaN / inf weights in [{k!r}]"
    return edit


def _set(key: str, value, says: str) -> Callable[[dict], str]:
    """An edit setting a top-level (or model_cfg.) key to ``value`` (a function: of the old value)."""
    def edit(b: dict) -> str:
        d, k = (b["model_cfg"], key[10:]) if key.startswith("model_cfg.") else (b, key)
        d[k] = value(d[k]) if callable(value) else value
        return says
    return edit


# each edit of the dict -> what the one line must say about it (the fix, PRUNED_FIX, is checked for all)
PRUNED_EDITS: dict[str, Callable[[dict], str]] = {
    "wrong_shape": _wrong_shape,
    "missing_key": _missing_key,
    "extra_key": lambda b: b["state"].update({"stray.weight": torch.zeros(3)}) or "unexpected ['stray.weight']",
    "scale_as_string": _set("scale", "3", "scale: '3' is not 2, 3 or 4"),
    "scale_out_of_range": _set("scale", 7, "scale: 7"),
    "precision_unknown": _set("precision", "int9", "precision: 'int9'"),
    "lr_hw_as_string": _set("lr_hw", "360x640", "lr_hw: '360x640'"),
    "threads_negative": _set("threads", -1, "threads: -1"),
    "measured_nan": _set("measured_ms", float("nan"), "measured_ms: nan"),
    "path_unknown_block": _set("path", lambda p: p[:-1] + ["resnet"], "path:"),
    "path_not_a_list": _set("path", "wdsr_b", "path: 'wdsr_b'"),
    "model_cfg_not_a_mapping": _set("model_cfg", [1, 2], "model_cfg: expected a mapping"),
    "model_cfg_bad_type": _set("model_cfg.expansion_b", "6", "model_cfg.expansion_b"),
    "scale_missing": lambda b: b.pop("scale") and "it lacks 'scale'",
    "plan_unknown_layer": lambda b: b["plan"].update({"body.99.body.0": ("filter", 0.5)}) or "'body.99.body.0'",
    "plan_bad_rate": lambda b: b["plan"].update({_first(b["masks"]["weight"]): ("filter", 2.0)}) or "pruning rate 2.0",
    "mask_wrong_shape": lambda b: f"masks.weight[{_mask(b, lambda m: torch.ones(3, 3))!r}] has shape [3, 3]",
    "mask_not_binary": lambda b: _mask(b, lambda m: m * 0.5) and "values other than 0 and 1",
    "state_int_tensor": lambda b: b["state"].update({k: t.long() for k, t in list(b["state"].items())[:1]})
    or "not a floating-point tensor",
    "state_not_a_mapping": _set("state", [1, 2], "state: expected parameter name -> tensor"),
}


@pytest.mark.parametrize("case", sorted(PRUNED_EDITS))
def test_edited_pruned_model_is_one_line(tmp_path: Path, case: str):
    f, says = edited(tmp_path, PRUNED_EDITS[case])
    refused(f, says, PRUNED_FIX, "is not a usable pruned model")


@pytest.mark.parametrize("key", ["n_feats", "expansion_a", "expansion_b", "expansion_dws"])
def test_huge_size_refused_before_the_network_is_built(tmp_path: Path, monkeypatch, key: str):
    """n_feats 100000 would ask for ~240 GB: refused from the numbers alone, nothing built."""
    import srnas.pruning.model_checks as mf
    built = []
    monkeypatch.setattr(mf, "build_path_net", lambda *a: built.append(a) or pytest.fail("network built"))
    f, _ = edited(tmp_path, _set(f"model_cfg.{key}", 100000, ""))
    t0 = time.time()
    refused(f, f"model_cfg.{key}: 100000 is not a whole number from 1 to", PRUNED_FIX)
    assert not built and time.time() - t0 < 10


def test_large_size_within_bounds_is_checked_on_the_meta_device(tmp_path: Path, monkeypatch):
    """A size under the bound but far from the weights (n_feats 1000: ~500 MB of float weights) is compared
    against the network built on the meta device: refused in one line, with no CPU network allocated."""
    import srnas.pruning.model_checks as mf
    devices = []
    real = mf._check_device
    monkeypatch.setattr(mf, "_check_device", lambda *a: devices.append(real(*a)) or devices[-1])
    f, _ = edited(tmp_path, _set("model_cfg.n_feats", 1000, ""))
    refused(f, "has shape", "the network needs", PRUNED_FIX)
    assert devices == ["meta"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_refused_at_load(tmp_path: Path, value: float):
    """Today such a file upscales to an all-black image and exits 0."""
    f, says = edited(tmp_path, _nonfinite(value))
    refused(f, says, PRUNED_FIX)


def test_text_file_named_pt(tmp_path: Path):
    f = tmp_path / "model.pt"
    f.write_text("this is a note, not a model\n")
    refused(f, "is not a torch file", PRUNED_FIX)


def test_pruned_model_load_itself_refuses(tmp_path: Path):
    """The loader export and bench use (PrunedModel.load) says the same, not only load_model; every shipped
    searched model passes every check."""
    refused(edited(tmp_path, _set("scale", "3", ""))[0], "scale: '3'", PRUNED_FIX, load=PrunedModel.load)
    files = sorted((zoo.WEIGHTS_DIR / zoo.FRONTS).glob("*/*.pt"))
    assert files
    for f in files:
        assert PrunedModel.load(f).compact()(torch.rand(1, 3, 8, 8)).isfinite().all()


@pytest.mark.parametrize("case", ["scale_as_string", "wrong_shape", "missing_key"])
def test_cli_pruned_model_exits_2(tmp_path: Path, capsys, case: str):
    f, says = edited(tmp_path, PRUNED_EDITS[case])
    cli_refuses(f, tmp_path, capsys, says, PRUNED_FIX)


def test_cli_huge_n_feats_and_nan_exit_2(tmp_path: Path, capsys):
    cli_refuses(edited(tmp_path, _set("model_cfg.n_feats", 100000, ""), "big.pt")[0], tmp_path, capsys, "n_feats")
    cli_refuses(edited(tmp_path, _nonfinite(float("nan")), "nan.pt")[0], tmp_path, capsys, "NaN / inf")


def test_cli_text_pt_exits_2(tmp_path: Path, capsys):
    f = tmp_path / "model.pt"
    f.write_text("not a model")
    cli_refuses(f, tmp_path, capsys, "is not a torch file", PRUNED_FIX)


# ---- exported files: TorchScript and ONNX ----

@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """A small exported model as .ts and .onnx (dynamic H, W), and its bytes."""
    from srnas.latency.executors import export_onnx
    d = tmp_path_factory.mktemp("exported")
    net = zoo.build("espcn", 2).eval()
    ts = d / "m.ts"
    torch.jit.trace(net, torch.rand(1, 3, 16, 16)).save(str(ts))
    onnx_path = export_onnx(net, [torch.rand(1, 3, 16, 16)], d / "m.onnx", dynamic=True)
    return {"ts": ts, "onnx": Path(onnx_path)}


def _damaged(src: Path, dst: Path, how: str) -> Path:
    """``src`` written to ``dst`` as text, or cut to half its bytes."""
    data = src.read_bytes()
    dst.write_bytes(b"not a model, just some text\n" if how == "text" else data[: len(data) // 2])
    return dst


@pytest.mark.parametrize("how", ["text", "cut"])
def test_torchscript_text_or_cut(tmp_path: Path, exported, how: str):
    assert load_model(str(exported["ts"])).scale == 2   # the whole file loads
    f = _damaged(exported["ts"], tmp_path / "model.ts", how)
    refused(f, "is not a TorchScript model", EXPORT_FIX)


def test_torchscript_of_no_image_model(tmp_path: Path):
    class Sum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum()
    f = tmp_path / "sum.ts"
    torch.jit.script(Sum()).save(str(f))
    refused(f, "not to 1x3x(sH)x(sW)", EXPORT_FIX)


@pytest.mark.parametrize("how", ["text", "cut"])
def test_onnx_text_or_cut(tmp_path: Path, exported, how: str):
    assert load_model(str(exported["onnx"])).scale == 2
    f = _damaged(exported["onnx"], tmp_path / "model.onnx", how)
    refused(f, "is not an ONNX model", EXPORT_FIX)


def test_empty_onnx(tmp_path: Path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"")
    refused(f, "is not an ONNX model", EXPORT_FIX)


def test_onnx_external_data_outside_its_folder(tmp_path: Path, exported):
    d = tmp_path / "model"
    d.mkdir()
    ok = external_data_at(exported["onnx"], d / "ok.onnx", "ok.onnx.data")
    assert load_model(str(ok)).scale == 2                     # data beside it: loads
    (tmp_path / "outside.data").write_bytes((d / "ok.onnx.data").read_bytes())
    f = external_data_at(exported["onnx"], d / "evil.onnx", "../outside.data")
    refused(f, "'../outside.data', outside its folder", EXPORT_FIX)


def test_onnx_external_data_missing(tmp_path: Path, exported):
    f = external_data_at(exported["onnx"], tmp_path / "m.onnx", "gone.data")
    refused(f, "'gone.data', which is missing", "srnas export")


@pytest.mark.parametrize("how", ["text", "cut", "outside"])
def test_cli_onnx_exits_2(tmp_path: Path, capsys, exported, how: str):
    if how == "outside":
        (tmp_path / "sub").mkdir()
        (tmp_path / "outside.data").write_bytes(b"\0" * 64)
        f = external_data_at(exported["onnx"], tmp_path / "sub" / "model.onnx", "../outside.data")
    else:
        f = _damaged(exported["onnx"], tmp_path / "model.onnx", how)
    cli_refuses(f, tmp_path, capsys, EXPORT_FIX)


def test_cli_torchscript_exits_2(tmp_path: Path, capsys, exported):
    cli_refuses(_damaged(exported["ts"], tmp_path / "model.ts", "cut"), tmp_path, capsys, EXPORT_FIX)


# ---- model names ----

def _names() -> tuple[list[str], dict[str, str]]:
    """The searched members and every searched name (aliases too) this machine gets."""
    return zoo.search_members(), zoo.searched()


@pytest.mark.parametrize("typo,near", [("srnas_abpm", "srnas_abpn"), ("fsrcn", "fsrcnn"),
                                       ("espcn_in8", "espcn_int8")])
def test_unknown_name_suggests_the_nearest(typo: str, near: str):
    members, searched = _names()
    if near not in searched and near.startswith("srnas_"):
        pytest.skip(f"no {near} shipped here")
    with pytest.raises(UserError) as e:
        load_model(typo, 2)
    one_line(str(e.value), repr(typo), f"did you mean {near}?", *members, *searched, "fsrcnn", "abpn_int8",
             ".pt", ".onnx")


def test_unknown_name_far_from_all_lists_them(tmp_path: Path, capsys):
    members, _ = _names()
    with pytest.raises(UserError) as e:
        load_model("zzzzzz", 2)
    one_line(str(e.value), "'zzzzzz'", *members, "wdsr_b", ".pt")
    assert "did you mean" not in str(e.value)
    cli_refuses("srnas_abpm", tmp_path, capsys, "did you mean srnas_", ".onnx")


def test_missing_model_file_says_so(tmp_path: Path):
    """A .pt path that does not exist is a missing file, not an unknown zoo name."""
    with pytest.raises(UserError, match=r"model file .*nothere\.pt does not exist: check the path"):
        load_model(str(tmp_path / "nothere.pt"))


# ---- zoo weights (--weights-dir) ----

def _zoo_weights(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    """A --weights-dir whose espcn_x2.pt is the shipped one with ``edit`` applied to its state."""
    blob = torch.load(zoo.weights_path("espcn", 2), map_location="cpu", weights_only=True)
    state = blob.get("state", blob)
    edit(state)
    (tmp_path / "w").mkdir()
    torch.save(blob, tmp_path / "w" / "espcn_x2.pt")
    return tmp_path / "w"


def _conv(state: dict) -> str:
    return next(k for k, v in state.items() if v.ndim == 4)


@pytest.mark.parametrize("edit, says", [
    (lambda s: s.update({_conv(s): torch.zeros(s[_conv(s)].shape[0] + 1, *s[_conv(s)].shape[1:])}), "has shape"),
    (lambda s: s.update({_conv(s): torch.full_like(s[_conv(s)], float("nan"))}), "NaN / inf weights"),
    (lambda s: s.pop(_conv(s)), "it lacks"),
    (lambda s: s.update({"stray": torch.zeros(2)}), "unexpected ['stray']")])
def test_zoo_weights_of_the_wrong_shape_or_nan_are_one_line(tmp_path: Path, capsys, edit, says):
    """A wrong shape ended in a load_state_dict traceback; NaN weights upscaled to a black image, exit 0."""
    wdir = _zoo_weights(tmp_path, edit)
    with pytest.raises(UserError) as e:
        load_model("espcn", 2, wdir)
    one_line(str(e.value), wdir / "espcn_x2.pt", says, "no usable weights of espcn x2", "srnas zoo train espcn")
    import imageio.v3 as iio
    iio.imwrite(tmp_path / "in.png", np.zeros((16, 16, 3), np.uint8))
    code, err = run_cli(["upscale", "espcn", str(tmp_path / "in.png"), "--out", str(tmp_path / "out"),
                         "--weights-dir", str(wdir)], capsys)
    assert code == 2 and "Traceback" not in err and not any((tmp_path / "out").glob("*"))
