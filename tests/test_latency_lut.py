"""LUT file, fingerprint checks, missing-row errors, interpolation and import."""
from __future__ import annotations

import warnings

import pytest

from srnas.latency.catalogue import OpKey
from srnas.latency.fingerprint import fingerprint
from srnas.latency.importer import import_csv
from srnas.latency.lut import LUT, FingerprintMismatch, LUTFingerprintWarning, MissingRow, Row
from srnas.supernet.config import load_config
from srnas.supernet.errors import UserError

from conftest import tiny_config


def _lut(tmp_path, fp=None):
    lut = LUT.create(tmp_path / "lut.csv", fp or fingerprint("torch-cpu", 1))
    lut.add(Row(OpKey("conv", 8, 16, 3, 4, 4), 10.0, 1.0, 5))
    lut.add(Row(OpKey("conv", 8, 16, 3, 4, 4, "unstructured", 0.5), 6.0, 1.0, 5))
    lut.add(Row(OpKey("conv", 8, 32, 3, 4, 4), 20.0, 1.0, 5))
    return lut


def test_roundtrip_and_same_device_is_quiet(tmp_path):
    _lut(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lut = LUT.load(tmp_path / "lut.csv", expected=fingerprint("torch-cpu", 1))
    assert len(lut) == 3
    assert lut.ms(OpKey("conv", 8, 16, 3, 4, 4)) == pytest.approx(10.0)


def test_other_device_is_refused_unless_allowed(tmp_path):
    fp = dict(fingerprint("torch-cpu", 1), cpu_model="Snapdragon 888", torch="1.9.0")
    _lut(tmp_path, fp)
    with pytest.raises(FingerprintMismatch) as e:
        LUT.load(tmp_path / "lut.csv", expected=fingerprint("torch-cpu", 1))
    msg = str(e.value)
    assert "cpu_model" in msg and "Snapdragon 888" in msg and "torch:" in msg and "--allow-foreign-lut" in msg
    assert "threads" not in msg  # only the fields that differ are named
    with pytest.warns(LUTFingerprintWarning, match="cpu_model"):
        LUT.load(tmp_path / "lut.csv", expected=fingerprint("torch-cpu", 1), allow_foreign=True)


def test_same_model_name_other_isa_is_refused(tmp_path):
    # a VM names a Zen 3 (AVX2 only) and a Zen 5 (AVX-512 VNNI) alike, "AMD EPYC": the ISA tells them apart
    here = dict(fingerprint("openvino", 1, "int8"), cpu_model="AMD EPYC", isa="avx2")
    _lut(tmp_path, dict(here, isa="avx2 avx512_vnni avx512f"))
    with pytest.raises(FingerprintMismatch, match="another device.*isa: lut='avx2 avx512_vnni avx512f', here='avx2'"):
        LUT.load(tmp_path / "lut.csv", expected=here)


def test_lut_that_predates_the_isa_field_still_loads(tmp_path):
    old = {k: v for k, v in fingerprint("torch-cpu", 1).items() if k != "isa"}
    _lut(tmp_path, old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(LUT.load(tmp_path / "lut.csv", expected=fingerprint("torch-cpu", 1))) == 3


@pytest.mark.parametrize("have, want, field", [(("torch-cpu", "fp32"), ("onnxruntime", "fp32"), "backend"),
                                               (("onnxruntime", "fp32"), ("onnxruntime", "int8"), "precision"),
                                               (("torch-cpu", "fp32"), ("torch-cpu-cl", "fp32"), "layout")])
def test_lut_of_another_executor_is_refused(tmp_path, have, want, field):
    _lut(tmp_path, fingerprint(have[0], 1, have[1]))
    with pytest.raises(FingerprintMismatch, match=f"another executor.*{field}: lut="):
        LUT.load(tmp_path / "lut.csv", expected=fingerprint(want[0], 1, want[1]))


def test_edited_header_backend_is_caught_by_the_rows(tmp_path):
    _lut(tmp_path)
    f = tmp_path / "lut.csv"
    f.write_text(f.read_text().replace('"backend": "torch-cpu"', '"backend": "onnxruntime"', 1))
    with pytest.raises(UserError, match="header says backend 'onnxruntime' but rows .*torch-cpu"):
        LUT.load(f, expected=fingerprint("onnxruntime", 1))


def test_config_lut_check_at_run_start(tmp_path, capsys):
    """A torch-cpu LUT where the onnxruntime config's LUT belongs stops `srnas run` before any work."""
    from srnas.search.cli import main
    cfg_file = tiny_config(tmp_path, latency={"backend": "onnxruntime", "target": "50ms", "threads": 1})
    run = tmp_path / "runs" / "tiny"
    (run / "latency").mkdir(parents=True)
    _lut(run / "latency", fingerprint("torch-cpu", 1)).path.rename(run / "latency" / "lut-onnxruntime.csv")
    assert main(["run", "-c", str(cfg_file)]) == 2
    err = capsys.readouterr().err
    assert "another executor" in err and "backend: lut='torch-cpu', here='onnxruntime'" in err
    assert not (run / "supernet").exists()      # nothing trained


def test_missing_row_gives_clear_error(tmp_path):
    lut = _lut(tmp_path)
    with pytest.raises(MissingRow) as e:
        lut.ms(OpKey("conv", 8, 16, 5, 4, 4))
    msg = str(e.value)
    assert "op=conv cin=8 cout=16 k=5 h=4 w=4 scheme=none" in msg and "srnas latency build" in msg
    assert isinstance(e.value, UserError)
    with pytest.raises(MissingRow, match="h=8 w=8"):  # another input size is not extrapolated
        lut.ms(OpKey("conv", 8, 16, 3, 8, 8))


def test_interpolation_over_rate_and_channels(tmp_path):
    lut = _lut(tmp_path)
    # rate 0.25 lies between the dense row (rate 0) and the 0.5 row
    assert lut.ms(OpKey("conv", 8, 16, 3, 4, 4, "unstructured", 0.25)) == pytest.approx(8.0)
    assert lut.ms(OpKey("conv", 8, 24, 3, 4, 4)) == pytest.approx(15.0)
    with pytest.raises(MissingRow):  # above the measured rates: no extrapolation
        lut.ms(OpKey("conv", 8, 16, 3, 4, 4, "unstructured", 0.75))
    # rate 0 of any scheme is the dense row
    assert lut.ms(OpKey("conv", 8, 16, 3, 4, 4, "pattern", 0.0)) == pytest.approx(10.0)


def test_rows_append_and_later_row_wins(tmp_path):
    lut = _lut(tmp_path)
    lut.add(Row(OpKey("conv", 8, 16, 3, 4, 4), 12.0, 1.0, 5))
    lut.set_calibration({"scale": 0.9, "offset": 0.0, "n": 3})
    again = LUT.load(tmp_path / "lut.csv", expected=lut.fingerprint)
    assert again.ms(OpKey("conv", 8, 16, 3, 4, 4)) == pytest.approx(12.0)
    assert again.calibration["scale"] == pytest.approx(0.9)


def test_bad_csv_is_a_user_error(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("op,cin,cout\nconv,1,2\n")
    cfg = load_config(tiny_config(tmp_path))
    with pytest.raises(UserError, match="missing column"):
        import_csv(p, tmp_path / "x.csv", cfg, backend="torch-cpu", fields={"cpu_model": "phone"})
    with pytest.raises(UserError, match="no latency LUT"):
        LUT.load(tmp_path / "nothing.csv")
    with pytest.raises(UserError, match="is a folder: a LUT is a file"):   # `latency build --out RUN_DIR`
        LUT.load(tmp_path)


def test_import_keeps_the_external_device(tmp_path):
    src = tmp_path / "phone.csv"
    src.write_text("op,cin,cout,k,h,w,scheme,rate,latency_ms\n"
                   "conv,8,16,3,4,4,none,0,2.5\nconv,8,16,3,4,4,filter,0.5,1.5\n")
    cfg = load_config(tiny_config(tmp_path))
    with pytest.raises(UserError, match="--cpu-model"):
        import_csv(src, tmp_path / "a.csv", cfg, backend="onnxruntime")
    lut = import_csv(src, tmp_path / "phone_lut.csv", cfg, backend="onnxruntime",
                     fields={"cpu_model": "Snapdragon 888", "threads": "4"})
    assert lut.fingerprint["cpu_model"] == "Snapdragon 888"
    assert (lut.fingerprint["precision"], lut.fingerprint["layout"]) == ("fp32", "nchw")
    with pytest.raises(FingerprintMismatch, match="another device.*Snapdragon 888"):
        LUT.load(tmp_path / "phone_lut.csv")
    with pytest.warns(LUTFingerprintWarning, match="Snapdragon 888"):
        again = LUT.load(tmp_path / "phone_lut.csv", allow_foreign=True)
    assert again.ms(OpKey("conv", 8, 16, 3, 4, 4)) == pytest.approx(2.5)
    assert again.ms(OpKey("conv", 8, 16, 3, 4, 4, "filter", 0.5)) == pytest.approx(1.5)


def test_bilinear_interpolation_over_both_widths(tmp_path):
    lut = LUT.create(tmp_path / "grid.csv", fingerprint("torch-cpu", 1))
    for ci in (8, 16):
        for co in (4, 12):
            lut.add(Row(OpKey("conv", ci, co, 1, 4, 4), float(ci * co), 0.0, 3))
    # neither width is on the grid: bilinear in (cin, cout) is exact for a cost ~ cin * cout
    assert lut.ms(OpKey("conv", 12, 6, 1, 4, 4)) == pytest.approx(72.0)
    with pytest.raises(MissingRow):  # outside the grid: no extrapolation
        lut.ms(OpKey("conv", 12, 14, 1, 4, 4))


def test_a_lut_with_the_old_cout_kept_column_resumes(tmp_path):
    """LUTs written before the width rule moved to supernet.widths carry a cout_kept column: read, appended in order."""
    f = tmp_path / "old.csv"
    LUT.create(f, fingerprint("torch-cpu", 1))
    text = f.read_text().replace("spread_ms,n,", "spread_ms,cout_kept,n,")
    f.write_text(text + "dev,torch-cpu,conv,8,16,3,4,4,none,0.0,10.0,1.0,16,5,0.0\n")
    old = LUT.load(f, allow_foreign=True)
    old.add(Row(OpKey("conv", 8, 32, 3, 4, 4), 20.0, 1.0, 5))
    again = LUT.load(f, allow_foreign=True)
    assert again.ms(OpKey("conv", 8, 16, 3, 4, 4)) == pytest.approx(10.0)
    assert again.ms(OpKey("conv", 8, 32, 3, 4, 4)) == pytest.approx(20.0) and again.rows[OpKey(
        "conv", 8, 32, 3, 4, 4)].n == 5


def test_build_uses_an_imported_lut_as_it_is_when_allowed(tmp_path):
    """A complete LUT of another device (imported) is used unchanged by a build, never measured into; an
    incomplete one says what to measure on that device; without allow_foreign_lut it is refused."""
    import dataclasses
    from srnas.latency.build import build_lut
    cfg = load_config(tiny_config(tmp_path, latency={"lr_height": 8, "lr_width": 8, "warmup": 0, "repeats": 1,
                                                     "threads": 1, "calib_samples": 0},
                                  pruning={"schemes": ["none"]}))
    path = build_lut(cfg, progress=False).path
    text = path.read_text().replace(f'"cpu_model": "{fingerprint()["cpu_model"]}"', '"cpu_model": "Phone SoC"', 1)
    path.write_text(text)
    with pytest.raises(FingerprintMismatch, match="--allow-foreign-lut"):
        build_lut(cfg, progress=False)
    allowed = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, allow_foreign_lut=True))
    with pytest.warns(LUTFingerprintWarning):
        lut = build_lut(allowed, progress=False)
    assert lut.fingerprint["cpu_model"] == "Phone SoC" and path.read_text() == text   # nothing measured into it
    wider = dataclasses.replace(allowed, pruning=dataclasses.replace(cfg.pruning, schemes=["none", "filter"]))
    with pytest.warns(LUTFingerprintWarning), pytest.raises(FingerprintMismatch, match="Phone SoC and lacks .* row.*srnas latency probes"):
        build_lut(wider, progress=False)


def test_a_lut_of_another_scale_is_refused_allowed_or_not(tmp_path):
    """An x3 LUT prices x3 tails and upsamplers: an x4 config gets one line naming both scales, even where a
    foreign LUT is allowed; a LUT from before srnas recorded the scale still loads."""
    here = fingerprint("torch-cpu", 1)
    _lut(tmp_path, {**here, "scale": "3"})
    for allow in (False, True):
        with pytest.raises(UserError, match=r"a LUT of x3 models, and this config upscales x4"):
            LUT.load(tmp_path / "lut.csv", expected={**here, "scale": "4"}, allow_foreign=allow)
    assert len(LUT.load(tmp_path / "lut.csv", expected={**here, "scale": "3"})) == 3
    _lut(tmp_path, here)
    assert len(LUT.load(tmp_path / "lut.csv", expected={**here, "scale": "4"})) == 3


def test_the_config_scale_is_recorded_and_checked(tmp_path):
    from srnas.latency.build import executor_fingerprint
    cfg = load_config(tiny_config(tmp_path), ["data.scale=3"])
    assert executor_fingerprint(cfg)["scale"] == "3"
    src = tmp_path / "theirs.csv"
    src.write_text("device,op,cin,cout,k,h,w,scheme,rate,latency_ms\nphone,conv,8,16,3,4,4,none,0,1.5\n")
    lut = import_csv(src, tmp_path / "imported.csv", cfg, backend="torch-cpu")
    assert lut.fingerprint["scale"] == "3"
    with pytest.raises(UserError, match="x3 models, and this config upscales x2"):
        import_csv(tmp_path / "imported.csv", tmp_path / "again.csv", load_config(tiny_config(tmp_path)),
                   backend="torch-cpu")


def test_import_out_a_folder_or_under_a_file_is_one_line(tmp_path, capsys):
    """--out naming a folder ended in an IsADirectoryError traceback from the rename."""
    from srnas.search.cli import main
    cfg = tiny_config(tmp_path)
    src = tmp_path / "phone.csv"
    src.write_text("op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,2.5\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "note").write_text("x")
    for out, said in [(tmp_path / "dir", f"cannot write {tmp_path / 'dir'}: it is a folder"),
                      (tmp_path / "note" / "l.csv", f"{tmp_path / 'note'} is")]:   # a file: no folder there
        assert main(["latency", "import", "-c", str(cfg), str(src), "--cpu-model", "phone", "--backend",
                     "onnxruntime", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and said in err, err
    assert list((tmp_path / "dir").iterdir()) == [] and (tmp_path / "note").read_text() == "x"
