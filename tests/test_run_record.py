"""A run folder is a faithful, movable record: every stage records what it was made from (record.json) and a
command with another config refuses in one line before it touches anything; paths in a run's files are
relative to it, so a copied or moved run works where it lands; and the small refusals create nothing."""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from srnas.search.cli import main
from srnas.search.results import Stage3Result
from srnas.supernet import checkpoint
from srnas.supernet.config import ConfigError, load_config
from srnas.supernet.errors import clip
from srnas.supernet.record import RunRecord, StageChanged, check_run, downstream, stage_outputs
from srnas.supernet.rundir import RunDir

from conftest import tiny_config

TINY = dict(
    data={"benchmarks": ["skimage"]},
    train={"steps": 4, "epoch_steps": 2, "val_paths": 1},
    latency={"lr_height": 12, "lr_width": 16, "rates": [0.0, 0.5], "warmup": 0, "repeats": 2, "calib_samples": 1,
             "threads": 1, "target": "1000ms"},
    pruning={"schemes": ["none", "filter"], "reg_steps": 2, "finetune_steps": 2},
    search={"iterations": 1, "init_candidates": 2, "top_h": 1, "pool_c": 2, "pick_b": 1, "ensemble": 2,
            "eval_steps": 1, "eval_batch": 2, "val_crop": 32, "ablation": False, "threads": 1},
)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (the lock file aside, which every command opens) with its mtime and hash."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".srnas.lock"}


def error_line(err: str) -> str:
    """The one error line of a refused command."""
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- 1. a changed config does not mix stages ---------------------------------------------------------------
def begun_run(tmp_path: Path):
    """A run folder whose supernet stage has begun (recorded, weights in place) from the tiny config."""
    cfg_path = tiny_config(tmp_path, **TINY)
    cfg = load_config(cfg_path)
    run = cfg.run()
    run.supernet_dir.mkdir(parents=True)
    run.supernet.write_bytes(b"weights")
    RunRecord(run.root).write("supernet", cfg, outputs=stage_outputs(run, "supernet"))
    return cfg_path, cfg, run


def test_a_changed_key_is_named_with_its_stage_and_the_flag_that_redoes_it(tmp_path):
    _, cfg, run = begun_run(tmp_path)
    check_run(cfg, run)   # the same config passes
    wider = load_config(tiny_config(tmp_path, **TINY, model={"n_feats": 24}))
    with pytest.raises(StageChanged) as e:
        check_run(wider, run)
    msg = str(e.value)
    assert "stage 'supernet'" in msg and "model.n_feats 8 -> 24" in msg and "--redo supernet" in msg
    assert "\n" not in msg and "name" in msg
    # a key no stage depends on changes nothing; a stage that has not begun is not judged
    faster = load_config(tiny_config(tmp_path, **{**TINY, "train": {**TINY["train"], "threads": 2}}))
    check_run(faster, run)
    shutil.rmtree(run.supernet_dir)
    run.size.unlink(missing_ok=True)
    check_run(wider, run)


def test_an_input_that_changed_under_a_stage_is_named(tmp_path):
    _, cfg, run = begun_run(tmp_path)
    run.search_dir.mkdir()
    RunRecord(run.root).write("search", cfg, inputs=[run.supernet], outputs=stage_outputs(run, "search"))
    check_run(cfg, run)
    run.supernet.write_bytes(b"other weights")   # e.g. `srnas supernet train --redo` since
    with pytest.raises(StageChanged, match=r"stage 'search'.*its input supernet/supernet.pt \w{8} -> \w{8}.*"
                                           r"--redo search"):
        check_run(cfg, run)
    assert downstream(["supernet"]) == ["supernet", "search", "stage3", "export"]
    assert downstream(["lut", "stage3"]) == ["lut", "search", "stage3", "export"]


def test_a_run_without_a_record_is_taken_as_it_is(tmp_path):
    cfg = load_config(tiny_config(tmp_path, **TINY))
    run = cfg.run()
    run.supernet_dir.mkdir(parents=True)
    run.supernet.write_bytes(b"weights of an older srnas")
    check_run(load_config(tiny_config(tmp_path, **TINY, model={"n_feats": 24})), run)
    assert not run.record.exists()


def test_run_refuses_before_it_writes_anything(tmp_path, capsys):
    cfg_path, _, run = begun_run(tmp_path)
    before = snapshot(run.root)
    assert main(["run", "-c", str(cfg_path), "--set", "model.n_feats=24"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "stage 'supernet'" in line and "model.n_feats 8 -> 24" in line and "--redo supernet" in line
    assert snapshot(run.root) == before
    # `supernet train` refuses too, and names its own flag
    assert main(["supernet", "train", "-c", str(cfg_path), "--set", "model.n_feats=24"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "stage 'supernet'" in line and "pass --redo" in line
    assert snapshot(run.root) == before


def test_the_flag_the_message_names_is_taken(tmp_path):
    from srnas.search.commands import register
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "-c", "x.yaml", "--redo", "supernet", "--redo", "lut"])
    assert args.redo == ["supernet", "lut"]


def test_redo_removes_the_stage_and_those_made_from_it_and_nothing_outside(tmp_path, capsys):
    from srnas.search.pipeline import redo_stages
    from srnas.supernet.errors import UserError
    _, cfg, run = begun_run(tmp_path)
    outside = tmp_path / "phone_lut.csv"   # a LUT imported from a device, kept outside the run
    outside.write_text("rows")
    RunRecord(run.root).write("lut", cfg, outputs=stage_outputs(run, "lut", outside))
    run.search_dir.mkdir()
    run.winner.write_text("path: []")
    RunRecord(run.root).write("search", cfg, inputs=[run.supernet], outputs=stage_outputs(run, "search"))
    before = snapshot(run.root)
    with pytest.raises(UserError, match="outside the run folder"):
        redo_stages(cfg, run, ["lut"])
    assert snapshot(run.root) == before and outside.exists()
    redo_stages(cfg, run, ["supernet"])
    assert not run.supernet_dir.exists() and not run.search_dir.exists() and not run.winner.exists()
    assert set(RunRecord(run.root).load()) == {"lut"}
    assert "removed supernet, search, winner.yaml" in capsys.readouterr().out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny `srnas run` (about 15 s): its config file; the run is <config's folder>/runs/tiny."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = tiny_config(tmp, **TINY)
    assert main(["run", "-c", str(cfg)]) == 0
    return cfg


def own_copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished run (and its config, pointed at the copy): (config, run folder)."""
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(finished.parent / "runs" / "tiny", run)
    cfg = yaml.safe_load(finished.read_text())
    cfg["run_dir"] = str(tmp_path / "runs")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, run


@pytest.mark.slow
def test_a_changed_width_on_a_finished_run_changes_nothing(finished, tmp_path, capsys):
    cfg, run = own_copy(finished, tmp_path)
    before = snapshot(run)
    capsys.readouterr()
    assert main(["run", "-c", str(cfg), "--set", "model.n_feats=24"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "stage 'supernet'" in line and "model.n_feats 8 -> 24" in line
    assert "--redo supernet --redo lut" in line   # the LUT priced 8-wide convs: it is made again too
    assert snapshot(run) == before
    # the original config still works: every stage is found finished and nothing is made again
    assert main(["run", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "supernet.pt exists; skipping" in out and "final.json exists; skipping" in out
    assert run.joinpath("supernet/supernet.pt").stat().st_mtime_ns == before["supernet/supernet.pt"][0]
    # --redo makes the named stages and those made from them again, with the new width; a stage it does not
    # name that differs too stops it before anything is removed
    before = snapshot(run)
    assert main(["run", "-c", str(cfg), "--set", "model.n_feats=24", "--redo", "supernet"]) == 2
    assert "stage 'lut'" in error_line(capsys.readouterr().err) and snapshot(run) == before
    assert main(["run", "-c", str(cfg), "--set", "model.n_feats=24", "--redo", "supernet", "--redo", "lut"]) == 0
    assert checkpoint.load(run / "supernet/supernet.pt")["model_cfg"]["n_feats"] == 24
    stages = json.loads((run / "record.json").read_text())["stages"]
    assert stages["supernet"]["config"]["model.n_feats"] == 24 and set(stages) == {"supernet", "lut", "search",
                                                                                   "stage3", "export"}


@pytest.mark.slow
def test_a_run_of_an_older_srnas_is_taken_and_recorded(finished, tmp_path, capsys):
    cfg, run = own_copy(finished, tmp_path)
    (run / "record.json").unlink()
    final = json.loads((run / "stage3" / "final.json").read_text())   # an older srnas wrote absolute paths
    final["files"] = {k: str(tmp_path / "gone" / "tiny" / v) for k, v in final["files"].items()}
    (run / "stage3" / "final.json").write_text(json.dumps(final))
    assert main(["run", "-c", str(cfg)]) == 0
    assert "final.json exists; skipping" in capsys.readouterr().out   # its files found in the folder where it is
    stages = json.loads((run / "record.json").read_text())["stages"]
    assert list(stages) == ["supernet", "lut", "search", "stage3", "export"]
    assert main(["run", "-c", str(cfg), "--set", "search.eval_steps=2"]) == 2
    assert "stage 'search'" in error_line(capsys.readouterr().err)


# ---- 2. a run folder names its own files -------------------------------------------------------------------
def test_paths_are_stored_relative_and_old_absolute_ones_follow_the_folder(tmp_path):
    run = RunDir(tmp_path / "new" / "tiny")
    (run.stage3_dir).mkdir(parents=True)
    (run.stage3_dir / "pruned.pt").write_bytes(b"m")
    assert run.store(run.stage3_dir / "pruned.pt") == "stage3/pruned.pt"
    assert run.resolve("stage3/pruned.pt") == run.stage3_dir / "pruned.pt"
    gone = tmp_path / "old" / "tiny" / "stage3" / "pruned.pt"         # a moved run: the old folder is gone
    assert run.resolve(str(gone)) == run.stage3_dir / "pruned.pt"
    gone.parent.mkdir(parents=True)
    gone.write_bytes(b"original")                                      # a copied run: the copy names its own
    assert run.resolve(str(gone)) == run.stage3_dir / "pruned.pt"
    elsewhere = tmp_path / "weights" / "model.pt"                       # outside any run of this name: as it is
    assert run.resolve(str(elsewhere)) == elsewhere and run.store(elsewhere) == str(elsewhere)


def test_final_json_names_its_files_relative_to_the_run(tmp_path):
    run = RunDir(tmp_path / "tiny")
    res = Stage3Result(benchmark="skimage", psnr=30.0, ssim=0.9, bicubic_psnr=28.0, gain_db=2.0, benchmarks={},
                       measured_ms=1.0, measured_iqr_ms=0.1, lut_ms=1.0, target_ms=2.0, backend="torch-cpu",
                       precision="fp32", layout="nchw", lr_hw=[12, 16], threads=1, candidate={}, plan={},
                       files={"model": str(run.stage3_dir / "pruned.pt"), "onnx": str(run.export_dir / "model.onnx")})
    res.save(run.final)
    assert json.loads(run.final.read_text())["files"] == {"model": "stage3/pruned.pt", "onnx": "export/model.onnx"}
    moved = RunDir(tmp_path / "elsewhere" / "tiny")
    shutil.move(run.root, moved.root)
    assert Stage3Result.load(moved.final).files["model"] == str(moved.stage3_dir / "pruned.pt")


def test_bench_run_takes_the_copy_s_own_winner(tmp_path):
    from srnas.experiments.cli import _run_winners
    original = RunDir(tmp_path / "runs" / "tiny")
    original.stage3_dir.mkdir(parents=True)
    (original.stage3_dir / "pruned.pt").write_bytes(b"m")
    # written by an older srnas: the absolute path of the original folder
    original.final.write_text(json.dumps({"target_ms": 2.0, "backend": "torch-cpu",
                                          "files": {"model": str(original.stage3_dir / "pruned.pt")}}))
    copy = tmp_path / "copies" / "tiny"
    shutil.copytree(original.root, copy)
    args = argparse.Namespace(run=str(copy), config=None, out=None, backend=None)
    assert _run_winners(args) == [str(copy / "stage3" / "pruned.pt")]
    moved = tmp_path / "moved" / "tiny"
    shutil.move(original.root, moved)
    args = argparse.Namespace(run=str(moved), config=None, out=None, backend=None)
    assert _run_winners(args) == [str(moved / "stage3" / "pruned.pt")]


@pytest.mark.parametrize("text", ['{"target_ms": 2.0, "files": {"mod', '{"target_ms": 2.0}', '[1, 2]',
                                  '{"target_ms": "fast", "files": {"model": "stage3/pruned.pt"}}',
                                  '{"target_ms": 2.0, "files": {"model": 3}}'])
def test_bench_run_on_a_damaged_final_json_is_one_line(tmp_path, capsys, text):
    """A final.json cut or edited ended `srnas bench --run` in a KeyError / JSONDecodeError traceback."""
    run = RunDir(tmp_path / "runs" / "tiny")
    run.stage3_dir.mkdir(parents=True)
    run.final.write_text(text)
    assert main(["bench", "--run", str(run.root), "--models", "bicubic", "--datasets", "skimage"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{run.final} is damaged" in err and "srnas run" in err


@pytest.mark.slow
def test_a_copied_or_moved_run_benches_its_own_model(finished, tmp_path, capsys):
    src = finished.parent / "runs" / "tiny"
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    bench = ["--models", "bicubic", "--datasets", "skimage", "--lr-size", "12x16", "--repeats", "1", "--threads", "1"]
    assert main(["bench", "--run", str(copy), *bench]) == 0
    models = (copy / "bench" / "bench.csv").read_text()
    assert "copy/stage3/pruned.pt" in models and "tiny/stage3/pruned.pt" not in models
    assert "copy/stage3/pruned.pt" in (copy / "report.md").read_text()
    assert "bench" not in {p.name for p in src.iterdir()}
    final = json.loads((copy / "stage3" / "final.json").read_text())
    assert not any(Path(p).is_absolute() for p in final["files"].values())
    moved = tmp_path / "moved" / "tiny"
    shutil.move(copy, moved)
    assert main(["bench", "--run", str(moved), *bench]) == 0
    assert "unknown zoo model" not in capsys.readouterr().err


# ---- 3. small refusals -------------------------------------------------------------------------------------
def test_the_same_supernet_command_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    cfg = tiny_config(tmp_path)
    real_save = checkpoint.atomic_save

    def killed_after_first_epoch(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt   # as a kill right after the step-3 checkpoint

    monkeypatch.setattr(checkpoint, "atomic_save", killed_after_first_epoch)
    assert main(["supernet", "train", "-c", str(cfg)]) == 130
    monkeypatch.setattr(checkpoint, "atomic_save", real_save)
    capsys.readouterr()
    assert main(["supernet", "train", "-c", str(cfg)]) == 0, capsys.readouterr().err
    stage = tmp_path / "runs" / "tiny" / "supernet"
    assert (stage / "supernet.pt").exists() and checkpoint.load(stage / "checkpoint.pt")["step"] == 6
    assert main(["supernet", "train", "-c", str(cfg), "--resume"]) == 0   # still taken


def test_corrupt_training_images_create_nothing(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"img{i}.png").write_bytes(b"not a png")
    cfg = tiny_config(tmp_path, data={"train": [str(bad)]})
    assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "data.train[0]" in err and "none of the 3 image files" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert main(["supernet", "train", "-c", str(cfg)]) == 2 and not (tmp_path / "runs").exists()


def test_a_directory_as_config_is_said_to_be_one(tmp_path, capsys):
    assert main(["run", "-c", str(tmp_path)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "is a directory" in line and "YAML" in line and "does not exist" not in line


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text("name: q\ndata:\n  scale: 2\n  batch_size: 4\n  scale: 3\n")
    with pytest.raises(ConfigError, match=r"'scale' appears twice.*lines 3 and 5"):
        load_config(path, check_data=False)
    with pytest.raises(ConfigError, match="'a' appears twice"):
        load_config(tiny_config(tmp_path), ["data.benchmarks={a: 1, a: 2}"], check_data=False)
    assert main(["run", "-c", str(path)]) == 2 and "'scale' appears twice" in capsys.readouterr().err


def test_quoted_library_text_is_cut_at_a_word():
    from srnas.supernet.writes import write_failed
    text = "word " * 60 + "tail"
    assert clip(text, 50).endswith("word...") and len(clip(text, 50)) <= 50 and clip("short", 50) == "short"
    msg = str(write_failed(RuntimeError("failed writing " + "abcdefgh " * 40)))
    quoted = [t.strip("(),") for t in msg.split() if t.startswith("abcd")]
    assert quoted[-1] == "abcdefgh..." and set(quoted) == {"abcdefgh", "abcdefgh..."}   # no word cut in two
