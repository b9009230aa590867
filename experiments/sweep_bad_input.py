"""The bad-input sweep of issue 33, repeatable: every kind of input a user gets wrong, each in its own process.

    .venv/bin/python experiments/sweep_bad_input.py [-j 2] [-k NAME] [--kind KIND] [--keep] [--list]

A case is a name, a kind (config, images, video, api, model-files, lut, faults, output), a setup that writes the bad
input into the case's own temporary folder ``d``, and a command: ``srnas`` arguments (run as ``python -m srnas``,
``{d}`` standing for that folder) or, for the API, a Python snippet run in a fresh interpreter (``d`` is the folder,
a UserError becomes ``api: error: <message>`` and exit 2). What every case must show:

- exit 2 (or 1 where the README says partial success exits 1) with no traceback and one ``error:`` line (a config's
  problems follow it, one indented line each), saying ``says``; or
- exit 0 (or 1) with ``check(d, result)`` finding its output correct (it returns what is wrong, or None).

No case may print a traceback, and no case may create ``{d}/PAYLOAD_RAN`` (what a model file's pickle would do if
srnas ran it). Prints a markdown table by kind, each failure's command and last lines of stderr, then one JSON line;
exits 1 if any case failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "PAYLOAD_RAN"
KINDS = ["config", "images", "video", "api", "model-files", "lut", "faults", "output"]
# this CPU's SIMD class's front: a shipped name then resolves without timing every shipped member (minutes)
os.environ.setdefault("SRNAS_FRONT", "simd")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ENV.pop("SRNAS_DATA", None)


@dataclass
class Result:
    code: int | None          # None: timed out
    out: str
    err: str
    seconds: float


@dataclass
class Case:
    name: str
    kind: str
    setup: Callable[[Path], object] | None      # writes the bad input into d; may return a cleanup callable
    argv: list[str] | None = None               # srnas arguments, "{d}" replaced by the case folder
    api: str | None = None                      # or a Python snippet (d: the case folder, srnas imported)
    exit: int | tuple[int, ...] = 2
    says: tuple[str, ...] = ()                  # text stderr (or stdout) must hold; "{d}" replaced
    check: Callable[[Path, Result], str | None] | None = None   # for exit 0 / 1: what is wrong with the output
    skip: str | None = None                     # why this case is not run here
    timeout: int = 240

    def command(self, d: Path) -> list[str]:
        if self.api is not None:
            return [sys.executable, "-c", API_PRELUDE + textwrap.indent(textwrap.dedent(self.api), "    ")
                    + API_EPILOGUE, str(d)]
        return [sys.executable, "-m", "srnas", *[a.replace("{d}", str(d)) for a in self.argv]]


API_PRELUDE = """\
import sys
from pathlib import Path
import numpy as np
import srnas
from srnas.supernet.errors import UserError
d = Path(sys.argv[1])
try:
"""
API_EPILOGUE = """
except UserError as e:
    print(f"api: error: {e}", file=sys.stderr)
    sys.exit(2)
"""

CASES: list[Case] = []


def case(name: str, kind: str, setup=None, argv=None, **kw) -> None:
    CASES.append(Case(name, kind, setup, argv, **kw))


# ---------------------------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------------------------

def tiny_config(d: Path, name: str = "tiny.yaml", **sections) -> Path:
    """A small, fast config (tests/conftest.py's tiny_config, with a LUT that builds in seconds)."""
    cfg = {"name": "tiny", "run_dir": str(d / "runs"),
           "data": {"train": ["skimage"], "val": "skimage", "benchmarks": ["skimage"], "patch_size": 16,
                    "batch_size": 4},
           "model": {"n_cells": 2, "n_feats": 8, "expansion_a": 2, "expansion_b": 2},
           "train": {"steps": 6, "epoch_steps": 3, "val_paths": 2, "threads": 1},
           "latency": {"lr_height": 8, "lr_width": 8, "warmup": 0, "repeats": 1, "threads": 1, "calib_samples": 0},
           "pruning": {"schemes": ["none"]}}
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(yaml.safe_dump(cfg))
    return d / name


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def rgb(h: int = 16, w: int = 24, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 7 + yy * 3)[..., None] + np.array([0, 40, 90])
    noise = np.random.default_rng(seed).integers(0, 30, (h, w, 3))
    return ((base + noise) % 256 * (top // 255)).astype(dtype)


def image(path: Path, pixels: np.ndarray) -> Path:
    """``pixels`` as a file; PNGs through srnas's writer (16 bits, 1-4 channels), the rest through imageio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        from srnas.supernet.imaging import write_png
        write_png(path, pixels)
    else:
        import imageio.v3 as iio
        iio.imwrite(path, pixels)
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    import io

    import imageio.v3 as iio
    buf = io.BytesIO()
    iio.imwrite(buf, pixels, extension=".png")
    return buf.getvalue()


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    import io

    import imageio.v3 as iio
    buf = io.BytesIO()
    iio.imwrite(buf, pixels, extension=".jpg")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""
    import struct
    import zlib
    data = bytearray(png_bytes(rgb(8, 8)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 header declares ``width`` x ``height``."""
    import struct
    data = bytearray(jpeg_bytes(rgb(8, 8)))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def frames(n: int, w: int, h: int) -> list[np.ndarray]:
    """``n`` frames panning over a pattern."""
    big = rgb(h, w + 3 * n, seed=7)
    return [np.ascontiguousarray(big[:, 3 * i:3 * i + w]) for i in range(n)]


def video(path: Path, n: int = 10, w: int = 64, h: int = 48, fps: int = 25, audio: bool = False,
          pix_fmt: str = "yuv420p") -> Path:
    """A short video (x264; VP9 for .webm), with a silent track when ``audio``."""
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9" if path.suffix == ".webm" else "libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if path.suffix != ".webm":
            s.options = {"preset": "ultrafast"}
        a = c.add_stream("libopus" if path.suffix in (".webm", ".mkv") else "aac", rate=48000) if audio else None
        for f in frames(n, w, h):
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
        if a is not None:
            for k in range(0, 48000 * n // fps, 960):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, k
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def audio_only(path: Path) -> Path:
    import av
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("libopus", rate=48000)
        for k in range(0, 48000, 960):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 48000, k
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def cut(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


# ---- model files ----

_lock = threading.Lock()


def shared() -> Path:
    """A folder the cases share files through (made once per sweep)."""
    return Path(os.environ["SWEEP_SHARED"])


def shipped_pt() -> Path:
    from srnas.experiments import zoo
    return zoo.weights_path("srnas_abpn", 2)


@cache
def _exported() -> dict[str, Path]:
    """espcn x2 as TorchScript and ONNX (dynamic H, W), made once."""
    import torch

    from srnas.experiments import zoo
    from srnas.latency.onnx_export import export_onnx
    out = shared() / "exported"
    out.mkdir(parents=True, exist_ok=True)
    net = zoo.build("espcn", 2).eval()
    torch.jit.trace(net, torch.rand(1, 3, 16, 16)).save(str(out / "m.ts"))
    return {"ts": out / "m.ts", "onnx": Path(export_onnx(net, [torch.rand(1, 3, 16, 16)], out / "m.onnx",
                                                            dynamic=True))}


def exported(kind: str) -> Path:
    with _lock:
        return _exported()[kind]


class Payload:
    """Unpickling this creates the marker folder: what a malicious model file could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def evil(src: Path, dst: Path) -> Path:
    """A real srnas .pt with a payload added to its dict; it would still work if unpickled fully."""
    import torch
    blob = torch.load(src, map_location="cpu", weights_only=True)
    blob["extra"] = Payload(dst.parent / MARKER)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, dst)
    return dst


def edited_pt(d: Path, edit: Callable[[dict], None], name: str = "edited.pt") -> Path:
    """The shipped pruned model with ``edit`` applied to its dict."""
    import torch
    blob = torch.load(shipped_pt(), map_location="cpu", weights_only=True)
    edit(blob)
    torch.save(blob, d / name)
    return d / name


def _first_state(b: dict) -> str:
    return next(iter(b["state"]))


def _wrong_shape(b: dict) -> None:
    import torch
    k = _first_state(b)
    b["state"][k] = torch.zeros(b["state"][k].shape[0] + 1, *b["state"][k].shape[1:])


def _fill(value: float):
    def edit(b: dict) -> None:
        k = _first_state(b)
        b["state"][k] = b["state"][k].clone().flatten().index_fill(0, __import__("torch").tensor([0]),
                                                                   value).view_as(b["state"][k])
    return edit


def external_data_at(src: Path, dst: Path, location: str) -> Path:
    """``src`` saved as ``dst`` with its weights in an external data file, then pointed at ``location`` (shared
    with tests/test_model_file_checks.py)."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data
    model = onnx.load(str(src))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location=dst.name + ".data",
                                   size_threshold=0)
    onnx.save_model(model, str(dst))
    model = onnx.load(str(dst), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save_model(model, str(dst))
    return dst


def onnx_external(d: Path, location: str) -> Path:
    """The exported ONNX with its weights in an external file beside it (its copy also at ``d``), pointed at
    ``location``."""
    sub = d / "model"
    sub.mkdir(parents=True, exist_ok=True)
    external_data_at(exported("onnx"), sub / "m.onnx", "m.onnx.data")
    shutil.copy(sub / "m.onnx.data", d / "outside.data")
    return external_data_at(exported("onnx"), sub / "m.onnx", location)


# ---- LUTs ----

@cache
def _lut_text() -> str:
    """A complete LUT of the tiny config on this machine, as text (built once)."""
    d = shared() / "lut"
    cfg = tiny_config(d)
    p = subprocess.run([sys.executable, "-m", "srnas", "latency", "build", "-c", str(cfg)], env=ENV, cwd=d,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return (d / "runs" / "tiny" / "latency" / "lut-torch-cpu.csv").read_text()


def lut_path(d: Path) -> Path:
    return d / "runs" / "tiny" / "latency" / "lut-torch-cpu.csv"


def put_lut(d: Path, edit: Callable[[str], str] = lambda t: t, config: dict | None = None) -> Path:
    """The tiny config in d and its LUT, as built here and then edited by ``edit``."""
    with _lock:
        text = _lut_text()
    tiny_config(d, **(config or {}))
    return write(lut_path(d), edit(text))


def header_field(field_: str, value: str) -> Callable[[str], str]:
    """An edit of the LUT's fingerprint line: ``field_`` set to ``value``."""
    def edit(text: str) -> str:
        first, rest = text.split("\n", 1)
        prefix, fp = first.split(": ", 1)
        fp = json.loads(fp)
        fp[field_] = value
        return f"{prefix}: {json.dumps(fp)}\n{rest}"
    return edit


def lut_rows(path: Path) -> list[list[str]]:
    import csv
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.reader(lines))[1:]


# ---- processes ----

def start(argv: list[str], d: Path, log: str) -> subprocess.Popen:
    out = (d / log).open("w")
    return subprocess.Popen([sys.executable, "-m", "srnas", *argv], cwd=d, env=ENV, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            # a sweep started in the background inherits SIGINT ignored: Ctrl-C must reach it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_when(proc: subprocess.Popen, when: Callable[[], bool], sig=signal.SIGKILL, timeout: float = 180) -> int:
    """Send ``sig`` to ``proc``'s group once ``when()`` holds; its exit status (AssertionError if it ended first)."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if when():
            os.killpg(proc.pid, sig)
            return proc.wait(timeout=60)
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the command never reached the point to stop it at")
    raise AssertionError(f"the command ended (exit {proc.returncode}) before it could be stopped")


def mount_tmpfs(path: Path, size: str, read_only: bool = False) -> None:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, capture_output=True)


@cache
def can_mount() -> str | None:
    """None where tmpfs can be mounted here (root, not blocked), else why not."""
    probe = Path(tempfile.mkdtemp(prefix="sweep-mount-"))
    try:
        mount_tmpfs(probe, "64k")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        return f"cannot mount a tmpfs here ({getattr(e, 'stderr', b'') or e})"
    subprocess.run(["umount", str(probe)], check=False)
    probe.rmdir()
    return None


def unmount_under(d: Path) -> None:
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(d) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False, capture_output=True)


# ---- checks ----

def read(path: Path) -> np.ndarray:
    from srnas.supernet.imaging import read_pixels
    return read_pixels(path)


def expect_image(rel: str, shape: tuple, dtype=np.uint8, also: Callable[[np.ndarray], str | None] | None = None):
    """A check: ``{d}/rel`` is an image of ``shape`` and ``dtype``."""
    def check(d: Path, r: Result) -> str | None:
        p = d / rel
        if not p.is_file():
            return f"{rel} was not written"
        a = read(p)
        if a.shape != shape or a.dtype != dtype:
            return f"{rel} is {a.shape} {a.dtype}, not {shape} {np.dtype(dtype)}"
        return also(a) if also else None
    return check


def only_files(rel: str, names: list[str]):
    """A check: folder ``{d}/rel`` holds exactly ``names`` (hidden files aside), each a readable image or video."""
    def check(d: Path, r: Result) -> str | None:
        folder = d / rel
        have = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
        if have != sorted(names):
            return f"{rel} holds {have}, not {sorted(names)}"
        for n in names:
            bad = decodes(folder / n)
            if bad:
                return bad
        return None
    return check


def decodes(p: Path) -> str | None:
    """None where ``p`` is a whole image or a video whose every frame decodes."""
    if p.suffix in (".png", ".jpg"):
        try:
            read(p)
        except Exception as e:  # noqa: BLE001
            return f"{p.name} does not decode: {e}"
        return None
    import av
    try:
        with av.open(str(p)) as c:
            n = sum(1 for _ in c.decode(video=0))
    except Exception as e:  # noqa: BLE001
        return f"{p.name} does not decode: {e}"
    return None if n else f"{p.name} holds no frames"


def video_check(rel: str, w: int, h: int, n: int | None = None, at_least: int = 1):
    """A check: ``{d}/rel`` is a video of w x h whose frames all decode (``n`` of them, or at least ``at_least``)."""
    def check(d: Path, r: Result) -> str | None:
        import av
        p = d / rel
        if not p.is_file():
            return f"{rel} was not written"
        try:
            with av.open(str(p)) as c:
                got = [f for f in c.decode(video=0)]
        except Exception as e:  # noqa: BLE001
            return f"{rel} does not decode: {e}"
        if not got:
            return f"{rel} holds no frames"
        if (got[0].width, got[0].height) != (w, h):
            return f"{rel} is {got[0].width}x{got[0].height}, not {w}x{h}"
        if n is not None and len(got) != n:
            return f"{rel} holds {len(got)} frames, not {n}"
        if len(got) < at_least:
            return f"{rel} holds {len(got)} frames, fewer than {at_least}"
        return None
    return check


def nothing_at(*rels: str):
    """A check: none of ``{d}/rel`` exists (or is an empty folder)."""
    def check(d: Path, r: Result) -> str | None:
        for rel in rels:
            p = d / rel
            if p.is_file() or (p.is_dir() and any(p.iterdir())):
                return f"{rel} was written: {sorted(x.name for x in p.iterdir()) if p.is_dir() else 'a file'}"
        return None
    return check


def both(*checks):
    def check(d: Path, r: Result) -> str | None:
        for c in checks:
            bad = c(d, r)
            if bad:
                return bad
        return None
    return check


PROGRESS = re.compile(r"^\S.*:\s+\d+%\|")   # a progress bar ("supernet:  50%|####  | 3/6 ...")


def stderr_lines(err: str) -> list[str]:
    """stderr without progress bars (carriage-return updates, and a bar's last drawing when it is closed)."""
    lines = [ln.rsplit("\r", 1)[-1] for ln in err.splitlines()]
    return [ln for ln in lines if ln.strip() and not PROGRESS.match(ln)]


def one_error(err: str) -> str | None:
    """None where stderr says one ``error:`` line, any lines after it indented (a config's problems, one each)."""
    lines = stderr_lines(err)
    at = [i for i, ln in enumerate(lines) if re.search(r"(^|: )error: ", ln)]
    if len(at) != 1:
        return f"{len(at)} 'error:' lines, not 1"
    after = [ln for ln in lines[at[0] + 1:] if not ln.startswith((" ", "\t"))]
    if after:
        return f"more after the error line: {after[0][:120]!r}"
    return None


def judge(c: Case, d: Path, r: Result) -> str | None:
    """What is wrong with the result of ``c``, or None."""
    text = r.out + r.err
    if r.code is None:
        return f"no answer within {c.timeout} s"
    if "Traceback (most recent call last)" in r.err:
        return "a traceback"
    if (d / MARKER).exists():
        return "the model file's payload ran"
    codes = c.exit if isinstance(c.exit, tuple) else (c.exit,)
    if r.code not in codes:
        return f"exit {r.code}, expected {' or '.join(map(str, codes))}"
    for s in c.says:
        s = s.replace("{d}", str(d))
        if s not in text:
            return f"does not say {s!r}"
    if r.code == 2:
        bad = one_error(r.err)
        if bad:
            return bad
    if c.check is not None:
        try:
            return c.check(d, r)
        except Exception as e:  # noqa: BLE001  a check that cannot read the output: the output is wrong
            return f"check failed: {type(e).__name__}: {e}"
    if r.code != 2:
        return "no check of the output of a command that did not refuse"
    return None


# ---------------------------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------------------------

def cfg_text(text: str):
    """A setup: the tiny config in d, with ``text`` (YAML) appended to it as bad.yaml."""
    def setup(d: Path) -> None:
        base = tiny_config(d).read_text()
        write(d / "bad.yaml", base + text)
    return setup


def no_runs(d: Path, r: Result) -> str | None:
    """A check for refusals: no run folder was made."""
    return "the run folder was made" if (d / "runs").exists() and any((d / "runs").iterdir()) else None


RUN = ["run", "-c", "{d}/bad.yaml"]
BAD_SETS = {   # --set on the tiny config -> what the one error must name
    "unknown_key": ("model.n_feat=8", "model.n_feat"),
    "unknown_section": ("modle.n_feats=8", "modle"),
    "renamed_key": ("latency.target_ms=50", "latency.target"),
    "lr_a_word": ("train.lr=fast", "train.lr"),
    "lr_negative": ("train.lr=-0.001", "train.lr"),
    "lr_nan": ("train.lr=.nan", "not a finite number"),
    "lr_inf": ("train.lr=.inf", "not a finite number"),
    "rates_inf": ("latency.rates=[0,.inf]", "latency.rates"),
    "steps_zero": ("train.steps=0", "train.steps"),
    "steps_float": ("train.steps=2.5", "train.steps"),
    "scale_5": ("data.scale=5", "data.scale"),
    "scale_fraction": ("data.scale=2.5", "data.scale"),
    "target_negative": ("latency.target=-5ms", "latency.target"),
    "target_unit": ("latency.target=50parsecs", "latency.target"),
    "targets_duplicate": ("latency.targets=[50ms,50ms]", "latency.targets[1]"),
    "targets_tiny": ("latency.targets=[0.0001ms]", "latency.targets[0]"),
    "backend_unknown": ("latency.backend=tpu", "latency.backend"),
    "precision_unknown": ("latency.precision=int4", "latency.precision"),
    "block_unknown": ("model.blocks=[wdsr_a,3]", "model.blocks[1]"),
    "scheme_unknown": ("pruning.schemes=[none,magic]", "pruning.schemes"),
    "acquisition_unknown": ("search.acquisition=guess", "search.acquisition"),
    "n_cells_word": ("model.n_cells=two", "model.n_cells"),
    "n_feats_huge": ("model.n_feats=100000", "model.n_feats"),
    "patch_zero": ("data.patch_size=0", "data.patch_size"),
    "batch_negative": ("data.batch_size=-4", "data.batch_size"),
    "threads_negative": ("train.threads=-1", "train.threads"),
    "augment_word": ("data.augment=sometimes", "data.augment"),
    "train_a_string": ("data.train=Set5", "data.train"),
    "train_missing_folder": ("data.train=[{d}/nowhere]", "data.train[0]"),
    "val_unknown": ("data.val=NoSuchSet", "data.val"),
    "benchmark_unknown": ("data.benchmarks=[skimage,NoSuchSet]", "data.benchmarks[1]"),
    "name_empty": ("name=", "name"),
    "name_a_path": ("name=../../escape", "name"),
    "block_probs_short": ("train.block_probs=[1.0]", "block_probs"),
    "soft_target_word": ("latency.soft_target=maybe", "latency.soft_target"),
}
for _n, (_set, _says) in BAD_SETS.items():
    case(f"set_{_n}", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--set", _set], says=(_says,),
         check=no_runs)

case("set_no_equals", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--set", "latency.target"],
     says=("KEY=VALUE",), check=no_runs)
case("set_bad_yaml", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--set", "data.benchmarks=[unclosed"],
     says=("data.benchmarks",), check=no_runs)
case("set_empty_key", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--set", "=3"], check=no_runs)
case("set_into_a_number", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--set", "train.lr.x=3"],
     says=("train.lr",), check=no_runs)
case("set_on_supernet_train", "config", lambda d: tiny_config(d, "bad.yaml"),
     ["supernet", "train", "-c", "{d}/bad.yaml", "--set", "train.lr=-1"], says=("train.lr",), check=no_runs)
case("set_on_latency_build", "config", lambda d: tiny_config(d, "bad.yaml"),
     ["latency", "build", "-c", "{d}/bad.yaml", "--set", "latency.repeats=0"], says=("latency.repeats",),
     check=no_runs)
case("file_unknown_key", "config", cfg_text("bogus: 1\n"), RUN, says=("bogus",), check=no_runs)
case("file_duplicate_key", "config", cfg_text("name: again\n"), RUN, says=("name",), check=no_runs)
case("file_duplicate_nested_key", "config",
     lambda d: write(d / "bad.yaml", "train: {steps: 6, steps: 7}\n"), RUN, says=("steps",), check=no_runs)
case("file_nan", "config", lambda d: write(d / "bad.yaml", "model: {low_rank: .nan}\n"), RUN,
     says=("model.low_rank",), check=no_runs)
case("file_inf_in_list", "config", lambda d: write(d / "bad.yaml", "latency: {rates: [0, -.inf]}\n"), RUN,
     says=("latency.rates",), check=no_runs)
case("file_empty", "config", lambda d: write(d / "bad.yaml", ""), RUN, says=("is empty",), check=no_runs)
case("file_comment_only", "config", lambda d: write(d / "bad.yaml", "# nothing\n"), RUN, says=("is empty",))
case("file_a_list", "config", lambda d: write(d / "bad.yaml", "- a\n- b\n"), RUN, check=no_runs)
case("file_a_scalar", "config", lambda d: write(d / "bad.yaml", "42\n"), RUN, check=no_runs)
case("file_bad_yaml", "config", lambda d: write(d / "bad.yaml", "model: [unclosed\n"), RUN,
     says=("not valid YAML",), check=no_runs)
case("file_tabs", "config", lambda d: write(d / "bad.yaml", "model:\n\tn_feats: 8\n"), RUN, check=no_runs)
case("file_binary", "config", lambda d: write(d / "bad.yaml", bytes(range(256)) * 4), RUN, check=no_runs)
case("file_latin1", "config", lambda d: write(d / "bad.yaml", "name: caf\xe9\n".encode("latin-1")), RUN,
     check=no_runs)
case("file_missing", "config", None, RUN, says=("does not exist",))
case("file_a_directory", "config", lambda d: (d / "bad.yaml").mkdir(), RUN, says=("is a directory",))
case("file_section_a_list", "config", lambda d: write(d / "bad.yaml", "train: [1, 2]\n"), RUN, says=("train",),
     check=no_runs)
case("file_yaml_anchor_bomb", "config", lambda d: write(d / "bad.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
               for p, c in zip("abcdefgh", "bcdefghi"))), RUN, check=no_runs, timeout=60)
case("file_python_tag", "config", lambda d: write(
    d / "bad.yaml", f"name: !!python/object/apply:os.mkdir ['{d}/{MARKER}']\n"), RUN, check=no_runs)


def corrupt_only(d: Path) -> None:
    write(d / "hr" / "a.png", b"not an image")
    write(d / "hr" / "b.png", b"")
    tiny_config(d, "bad.yaml", data={"train": [str(d / "hr")]})


case("train_corrupt_only_folder", "config", corrupt_only, ["supernet", "train", "-c", "{d}/bad.yaml"],
     says=("data.train[0]",), check=no_runs)
case("run_corrupt_only_folder", "config", corrupt_only, RUN, says=("data.train[0]",), check=no_runs)
case("train_empty_folder", "config", lambda d: ((d / "hr").mkdir(parents=True),
                                                tiny_config(d, "bad.yaml", data={"train": [str(d / "hr")]})),
     RUN, says=("data.train[0]",), check=no_runs)
case("val_a_file", "config", lambda d: (write(d / "v.txt", "x"),
                                        tiny_config(d, "bad.yaml", data={"val": str(d / "v.txt")})),
     RUN, says=("data.val",), check=no_runs)
case("bench_unknown_dataset", "config", lambda d: tiny_config(d, "bad.yaml"),
     ["bench", "-c", "{d}/bad.yaml", "--models", "bicubic", "--datasets", "NoSuchSet", "--out", "{d}/b"],
     says=("NoSuchSet",), check=nothing_at("b"))
case("bench_bad_lr_size", "config", None,
     ["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "big", "--out", "{d}/b"],
     says=("--lr-size",), check=nothing_at("b"))
for _args, _says in [(["--repeats", "0"], "repeats 0"), (["--lr-size", "0x8"], "(0, 8)"),
                     (["--scale", "7"], "scale 7"), (["--threads", "-2"], "--threads")]:
    case("bench_" + "_".join(a.strip("-") for a in _args), "config", None,
         ["bench", "--models", "bicubic", "--datasets", "skimage", "--out", "{d}/b", *_args], says=(_says,),
         check=nothing_at("b"))
case("redo_unknown_stage", "config", lambda d: tiny_config(d, "bad.yaml"), [*RUN, "--redo", "everything"],
     says=("--redo",), check=no_runs)
case("eval_unknown_path_block", "config", lambda d: tiny_config(d, "bad.yaml"),
     ["supernet", "eval", "-c", "{d}/bad.yaml", "--path", "wdsr_a,resnet"], check=no_runs)


# ---------------------------------------------------------------------------------------------------------------
# images (`srnas upscale bicubic ...`)
# ---------------------------------------------------------------------------------------------------------------

def up(*inputs: str, model: str = "bicubic", extra: tuple = ()) -> list[str]:
    return ["upscale", model, *inputs, "--out", "{d}/out", "--threads", "1", *extra]


def listed(name: str) -> tuple[str, ...]:
    return ("{d}/" + name,)


# one bad file beside a good one: the good one written, the bad one named, exit 1
BAD_FILES = {
    "corrupt_png": ("bad.png", lambda: b"this is not an image at all" * 4),
    "empty_png": ("bad.png", lambda: b""),
    "truncated_png": ("bad.png", lambda: png_bytes(rgb(32, 32))[:300]),
    "truncated_jpeg": ("bad.jpg", lambda: jpeg_bytes(rgb(32, 32))[:400]),
    "text_named_jpg": ("bad.jpg", lambda: b"hello\n"),
    "png_header_only": ("bad.png", lambda: png_bytes(rgb(32, 32))[:33]),
    "huge_png_header": ("bad.png", lambda: png_claiming(200000, 200000)),
    "huge_jpeg_header": ("bad.jpg", lambda: jpeg_claiming(60000, 60000)),
    "png_wide_header": ("bad.png", lambda: png_claiming(2 ** 31 - 1, 1)),
    "png_zero_width": ("bad.png", lambda: png_claiming(0, 8)),
}
for _n, (_file, _data) in BAD_FILES.items():
    def _setup(d: Path, _file=_file, _data=_data) -> None:
        image(d / "in" / "good.png", rgb())
        write(d / "in" / _file, _data())
    case(f"{_n}_beside_a_good_one", "images", _setup, up("{d}/in"), exit=1, says=listed("in/" + _file),
         check=only_files("out", ["good.png"]), timeout=120)
    case(f"{_n}_alone", "images", lambda d, _file=_file, _data=_data: write(d / _file, _data()),
         up("{d}/" + _file), exit=(1, 2), says=listed(_file), check=nothing_at("out"), timeout=120)

case("sixteen_bit_rgb", "images", lambda d: image(d / "a.png", rgb(dtype=np.uint16)), up("{d}/a.png"), exit=0,
     check=expect_image("out/a.png", (32, 48, 3), np.uint16, lambda a: None if (a % 257).any() else "8 bits"))
case("sixteen_bit_grey", "images", lambda d: image(d / "g.png", rgb(dtype=np.uint16)[..., 0]), up("{d}/g.png"),
     exit=0, check=expect_image("out/g.png", (32, 48), np.uint16))
case("grey", "images", lambda d: image(d / "g.png", rgb()[..., 1]), up("{d}/g.png"), exit=0,
     check=expect_image("out/g.png", (32, 48)))
case("grey_alpha", "images", lambda d: image(d / "ga.png", rgb()[..., :2]), up("{d}/ga.png"), exit=0,
     check=expect_image("out/ga.png", (32, 48, 2)))
case("rgba", "images", lambda d: image(d / "a.png", np.dstack([rgb(), rgb(seed=1)[..., 0]])), up("{d}/a.png"),
     exit=0, check=expect_image("out/a.png", (32, 48, 4)))
case("rgba_model", "images", lambda d: image(d / "a.png", np.dstack([rgb(), rgb(seed=1)[..., 0]])),
     up("{d}/a.png", model="espcn"), exit=0, check=expect_image("out/a.png", (32, 48, 4)))
case("one_pixel", "images", lambda d: image(d / "p.png", rgb(1, 1)), up("{d}/p.png"), exit=0,
     check=expect_image("out/p.png", (2, 2, 3)))
case("one_pixel_model", "images", lambda d: image(d / "p.png", rgb(1, 1)), up("{d}/p.png", model="espcn"), exit=0,
     check=expect_image("out/p.png", (2, 2, 3)))
case("one_row", "images", lambda d: image(d / "r.png", rgb(1, 40)), up("{d}/r.png", model="abpn"), exit=0,
     check=expect_image("out/r.png", (2, 80, 3)))


def _palette(d: Path) -> None:
    from PIL import Image
    Image.fromarray(rgb()).convert("P").save(d / "p.png")


def _cmyk(d: Path) -> None:
    from PIL import Image
    Image.fromarray(rgb()).convert("CMYK").save(d / "c.jpg")


def _gif(d: Path) -> None:
    from PIL import Image
    a, b = Image.fromarray(rgb()), Image.fromarray(rgb(seed=3))
    a.save(d / "anim.gif", save_all=True, append_images=[b])


def _same_stem(d: Path) -> None:
    image(d / "in" / "a.png", rgb())
    image(d / "in" / "a.jpg", rgb(seed=5))


def _float_tiff(d: Path) -> None:
    import tifffile
    tifffile.imwrite(d / "f.tif", rgb().astype(np.float32) / 255)


case("palette_png", "images", _palette, up("{d}/p.png"), exit=0, check=expect_image("out/p.png", (32, 48, 3)))
case("cmyk_jpeg", "images", _cmyk, up("{d}/c.jpg"), exit=(0, 1), check=expect_image("out/c.png", (32, 48, 3)))
case("animated_gif", "images", _gif, up("{d}/anim.gif"), exit=(0, 1, 2),
     check=lambda d, r: None if r.code else expect_image("out/anim.png", (32, 48, 3))(d, r))
case("same_name_two_formats", "images", _same_stem, up("{d}/in"), exit=(0, 1, 2),
     check=lambda d, r: None if r.code == 2 or len(list((d / "out").glob("a*"))) == 2
     else f"one output for two inputs: {sorted(p.name for p in (d / 'out').iterdir())}")
case("float_tiff", "images", _float_tiff, up("{d}/f.tif"), exit=0,   # floats in [0, 1]: written at 16 bits
     check=expect_image("out/f.png", (32, 48, 3), np.uint16,
                        lambda a: None if abs(a.mean() / 65535 - rgb().mean() / 255) < 0.02 else "values moved"))
case("directory_named_png_in_folder", "images",
     lambda d: ((d / "in" / "x.png").mkdir(parents=True), image(d / "in" / "good.png", rgb())), up("{d}/in"),
     exit=(0, 1), check=only_files("out", ["good.png"]))
case("directory_named_png_given", "images", lambda d: (d / "x.png").mkdir(), up("{d}/x.png"), exit=2,
     check=nothing_at("out"))
case("folder_without_images", "images", lambda d: write(d / "in" / "notes.txt", "x"), up("{d}/in"),
     says=("{d}/in",), check=nothing_at("out"))
case("empty_folder", "images", lambda d: (d / "in").mkdir(), up("{d}/in"), says=("{d}/in",), check=nothing_at("out"))
case("missing_input", "images", None, up("{d}/nope.png"), says=("{d}/nope.png",), check=nothing_at("out"))
case("input_given_twice", "images", lambda d: image(d / "a.png", rgb()), up("{d}/a.png", "{d}/a.png"),
     exit=(0, 2), check=lambda d, r: None if r.code == 2 else expect_image("out/a.png", (32, 48, 3))(d, r))
case("unreadable_permissions", "images", lambda d: image(d / "a.png", rgb()).chmod(0), up("{d}/a.png"), exit=1,
     says=("{d}/a.png",), skip="root reads a file of mode 000" if os.geteuid() == 0 else None)
case("spaces_and_unicode_in_name", "images", lambda d: image(d / "in" / "é t 1.png", rgb()), up("{d}/in"), exit=0,
     check=expect_image("out/é t 1.png", (32, 48, 3)))
case("tile_larger_than_image", "images", lambda d: image(d / "a.png", rgb()),
     up("{d}/a.png", model="espcn", extra=("--tile", "64")), exit=0, check=expect_image("out/a.png", (32, 48, 3)))
case("tile_negative", "images", lambda d: image(d / "a.png", rgb()), up("{d}/a.png", extra=("--tile", "-4")),
     says=("--tile",), check=nothing_at("out"))
case("margin_negative", "images", lambda d: image(d / "a.png", rgb()),
     up("{d}/a.png", extra=("--tile", "8", "--margin", "-2")), says=("--margin",), check=nothing_at("out"))
case("scale_not_shipped", "images", lambda d: image(d / "a.png", rgb()),   # wdsr_a ships at no scale
     up("{d}/a.png", model="wdsr_a", extra=("--scale", "3")), says=("wdsr_a",), check=nothing_at("out"))
case("threads_negative", "images", lambda d: image(d / "a.png", rgb()),
     ["upscale", "bicubic", "{d}/a.png", "--out", "{d}/out", "--threads", "-3"], says=("--threads",),
     check=nothing_at("out"))


# ---------------------------------------------------------------------------------------------------------------
# video
# ---------------------------------------------------------------------------------------------------------------

case("good_mp4_control", "video", lambda d: video(d / "v.mp4", audio=True), up("{d}/v.mp4"), exit=0,
     check=video_check("out/v.mp4", 128, 96, 10))
case("truncated_mkv", "video", lambda d: cut(video(d / "v.mkv", 40, audio=True), 0.6), up("{d}/v.mkv"), exit=1,
     says=("{d}/v.mkv",), check=video_check("out/v.mkv", 128, 96, at_least=1))
case("truncated_mp4", "video", lambda d: cut(video(d / "v.mp4", 40), 0.6), up("{d}/v.mp4"), exit=1,
     says=("{d}/v.mp4",), check=nothing_at("out/v.partial.mp4"))
case("header_only_mkv", "video", lambda d: cut(video(d / "v.mkv", 40), 0.02), up("{d}/v.mkv"), exit=1,
     says=("{d}/v.mkv",), check=nothing_at("out/v.partial.mkv"))


def _corrupt_packets(d: Path) -> None:
    b = bytearray(video(d / "v.mkv", 40).read_bytes())
    rng = np.random.default_rng(0)
    for k in range(len(b) * 3 // 10, len(b) * 6 // 10, 97):
        b[k] = int(rng.integers(0, 256))
    (d / "v.mkv").write_bytes(bytes(b))


case("corrupt_packets", "video", _corrupt_packets, up("{d}/v.mkv"), exit=1, says=("{d}/v.mkv",),
     check=video_check("out/v.mkv", 128, 96, at_least=1))
case("no_video_stream", "video", lambda d: audio_only(d / "tone.mkv"), up("{d}/tone.mkv"), exit=1,
     says=("no video stream",), check=nothing_at("out/tone.mkv"))
case("not_a_video", "video", lambda d: write(d / "junk.mp4", b"not a video at all" * 10), up("{d}/junk.mp4"),
     exit=1, says=("{d}/junk.mp4",), check=nothing_at("out/junk.mp4"))
case("zero_byte_video", "video", lambda d: write(d / "empty.mkv", b""), up("{d}/empty.mkv"), exit=1,
     says=("{d}/empty.mkv",), check=nothing_at("out/empty.mkv"))
case("png_named_mp4", "video", lambda d: write(d / "x.mp4", png_bytes(rgb())), up("{d}/x.mp4"), exit=(0, 1),
     check=lambda d, r: video_check("out/x.mp4", 48, 32, 1)(d, r) if r.code == 0 else
     None if str(d / "x.mp4") in r.err else "the bad file is not named")
case("directory_named_mp4", "video", lambda d: (d / "x.mp4").mkdir(), up("{d}/x.mp4"), exit=2,
     check=nothing_at("out"))
case("video_beside_bad_video", "video", lambda d: (video(d / "in" / "a.mkv"), write(d / "in" / "b.mkv", b"junk")),
     up("{d}/in"), exit=1, says=("{d}/in/b.mkv",), check=only_files("out", ["a.mkv"]))
for _args, _says in [(["--crf", "99"], "--crf 99"), (["--crf", "-1"], "--crf -1"),
                     (["--crf", "64", "--codec", "libvpx-vp9"], "--crf 64"),
                     (["--crf", "20", "--codec", "ffv1"], "ffv1"),
                     (["--preset", "fast", "--codec", "libvpx-vp9"], "--preset"),
                     (["--preset", "warp"], "--preset"), (["--codec", "nosuchcodec"], "nosuchcodec"),
                     (["--codec", "png"], "png"), (["--codec", "aac"], "aac"), (["--crf", "abc"], "--crf")]:
    case("video_" + "_".join(a.strip("-") for a in _args), "video", lambda d: video(d / "v.mkv", 2),
         up("{d}/v.mkv", extra=tuple(_args)), exit=(2, 1) if _args[-1] in ("png",) else 2, says=(_says,),
         check=nothing_at("out/v.mkv"))
case("codec_the_container_refuses", "video", lambda d: video(d / "v.webm", 3), up("{d}/v.webm", extra=(
    "--codec", "libx264")), exit=2, says=("libx264",), check=nothing_at("out/v.webm"))
case("odd_size_444", "video", lambda d: video(d / "odd.mkv", 3, 33, 25, pix_fmt="yuv444p"), up("{d}/odd.mkv"),
     exit=0, check=video_check("out/odd.mkv", 66, 50, 3))
case("odd_size_x3", "video", lambda d: video(d / "odd.mkv", 3, 33, 25, pix_fmt="yuv444p"),
     up("{d}/odd.mkv", model="espcn", extra=("--scale", "3")), exit=0, check=video_check("out/odd.mkv", 99, 75, 3))
case("one_frame_video", "video", lambda d: video(d / "one.mp4", 1), up("{d}/one.mp4"), exit=0,
     check=video_check("out/one.mp4", 128, 96, 1))
case("tiny_video_2x2", "video", lambda d: video(d / "t.mkv", 3, 2, 2), up("{d}/t.mkv", model="espcn"), exit=0,
     check=video_check("out/t.mkv", 4, 4, 3))


# ---------------------------------------------------------------------------------------------------------------
# API (a UserError with a one-line message)
# ---------------------------------------------------------------------------------------------------------------

def api(name: str, body: str, says: tuple[str, ...] = (), exit=2, check=None, setup=None, **kw) -> None:
    case(name, "api", setup, api=body, says=says, exit=exit, check=check, **kw)


FRAME = "np.zeros((8, 8, 3), np.uint8)"
for _route in ("bicubic", "abpn_openvino", "abpn_torch"):
    _make = {"bicubic": 'srnas.Upscaler("bicubic", threads=1)',
             "abpn_openvino": 'srnas.Upscaler("abpn", "openvino", threads=1)',
             "abpn_torch": 'srnas.Upscaler("abpn", "torch-cpu", threads=1)'}[_route]
    for _n, _frame, _says in [
            ("list", "np.zeros((8, 8, 3), np.uint8).tolist()", "list"),
            ("float32", "np.zeros((8, 8, 3), np.float32)", "uint8 or uint16"),
            ("grey_2d", "np.zeros((8, 8), np.uint8)", "HxWx3"),
            ("hxwx1", "np.zeros((8, 8, 1), np.uint8)", "HxWx3"),
            ("rgba", "np.zeros((8, 8, 4), np.uint8)", "HxWx3"),
            ("channels_first", "np.zeros((3, 8, 8), np.uint8)", "HxWx3"),
            ("empty", "np.zeros((0, 0, 3), np.uint8)", "H, W >= 1"),
            ("uint16_hxwx1", "np.zeros((8, 8, 1), np.uint16)", "HxWx3"),
            ("int64", "np.zeros((8, 8, 3), np.int64)", "uint8 or uint16"),
            ("bool", "np.zeros((8, 8, 3), bool)", "uint8 or uint16"),
            ("none", "None", "None"),
            ("4d_batch", "np.zeros((1, 8, 8, 3), np.uint8)", "HxWx3")]:
        if _route != "bicubic" and _n in ("int64", "bool", "none", "uint16_hxwx1"):
            continue
        api(f"upscaler_{_route}_{_n}", f"""
            with {_make} as up:
                up({_frame})
            """, (_says,))
api("upscaler_use_after_close", f"""
    up = srnas.Upscaler("bicubic", threads=1)
    up({FRAME})
    up.close()
    up({FRAME})
    """, ("was closed",))
api("upscaler_openvino_use_after_close", f"""
    with srnas.Upscaler("abpn", "openvino", threads=1) as up:
        up({FRAME})
    up({FRAME})
    """, ("was closed",))
api("upscaler_strided_frame_works", """
    f = np.random.default_rng(0).integers(0, 256, (16, 24, 3)).astype(np.uint8)[::-1, ::2]
    with srnas.Upscaler("abpn", "openvino", threads=1) as up:
        a = up(f)
        b = up(np.ascontiguousarray(f))
    assert a.shape == (32, 24, 3) and (a == b).all(), (a.shape, b.shape)
    """, exit=0, check=lambda d, r: None)
api("upscaler_unknown_name", 'srnas.Upscaler("srnas_abpm")', ("did you mean srnas_abpn?",))
api("upscaler_missing_file", 'srnas.Upscaler(str(d / "nothere.pt"))', ("does not exist",))
api("upscaler_unknown_backend", 'srnas.Upscaler("abpn", "tpu")', ("tpu",))
api("upscaler_unknown_precision", 'srnas.Upscaler("abpn", "openvino", "int4")', ("int4",))
api("upscaler_model_a_number", 'srnas.Upscaler(42)', ("42",))
api("load_model_typo", 'srnas.load_model("srnas_abpm")', ("did you mean srnas_abpn?",))
api("load_model_missing_path", 'srnas.load_model(d / "nothere.pt")', ("does not exist",))
api("load_model_text_pt", 'srnas.load_model(d / "m.pt")', ("is not a torch file",),
    setup=lambda d: write(d / "m.pt", "a note"))
api("load_model_scale_5", 'srnas.load_model("espcn", 5)', ("5",))
api("load_model_scale_a_string", 'srnas.load_model("espcn", "2")', ("scale",))
api("load_model_directory", 'srnas.load_model(d)', ("{d}",))
api("load_model_weights_dir_missing", 'srnas.load_model("espcn", weights_dir=d / "nowhere")', ("nowhere",))
api("run_bad_override", 'srnas.run(d / "tiny.yaml", train__lr=-1)', ("train.lr",),
    setup=lambda d: tiny_config(d), check=no_runs)
api("run_unknown_override", 'srnas.run(d / "tiny.yaml", nosuchkey=1)', ("nosuchkey",),
    setup=lambda d: tiny_config(d), check=no_runs)
api("run_nan_override", 'srnas.run(d / "tiny.yaml", latency__target=float("nan"))', ("latency.target",),
    setup=lambda d: tiny_config(d), check=no_runs)
api("run_list_override_for_number", 'srnas.run(d / "tiny.yaml", train__steps=[1, 2])', ("train.steps",),
    setup=lambda d: tiny_config(d), check=no_runs)
api("run_config_and_overrides", """
    from srnas.supernet.config import load_config
    srnas.run(load_config(d / "tiny.yaml"), name="x")
    """, ("overrides",), setup=lambda d: tiny_config(d), check=no_runs)
api("run_missing_config", 'srnas.run(d / "none.yaml")', ("does not exist",))
api("run_config_a_dict", 'srnas.run({"name": "x"})', ("config",))
api("api_bench_unknown_model", 'srnas.bench(["nosuchmodel"], datasets=["skimage"], out=d / "b", lr_hw=(8, 8), '
    'repeats=1, threads=1)', ("nosuchmodel",), check=nothing_at("b"))
api("api_bench_model_a_string", """
    t = srnas.bench("bicubic", datasets=["skimage"], out=d / "b", lr_hw=(8, 8), repeats=1, threads=1)
    assert list(t["model"].unique()) == ["bicubic"], t   # one model, not the models 'b', 'i', 'c', ...
    """, exit=0, check=lambda d, r: None)
api("api_bench_unknown_dataset", 'srnas.bench(["bicubic"], datasets=["NoSuchSet"], out=d / "b", lr_hw=(8, 8), '
    'repeats=1)', ("NoSuchSet",), check=nothing_at("b"))
api("api_bench_unknown_backend", 'srnas.bench(["bicubic"], datasets=["skimage"], out=d / "b", backend="tpu", '
    'lr_hw=(8, 8), repeats=1)', ("tpu",), check=nothing_at("b"))
api("api_bench_scale_7", 'srnas.bench(["bicubic"], datasets=["skimage"], out=d / "b", scale=7, lr_hw=(8, 8), '
    'repeats=1)', ("7",), check=nothing_at("b"))
api("api_bench_zero_repeats", 'srnas.bench(["bicubic"], datasets=["skimage"], out=d / "b", lr_hw=(8, 8), repeats=0)',
    ("repeats",), check=nothing_at("b"))
api("api_bench_zero_size", 'srnas.bench(["bicubic"], datasets=["skimage"], out=d / "b", lr_hw=(0, 8), repeats=1)',
    ("0",), check=nothing_at("b"))
api("api_bench_works", """
    t = srnas.bench(["bicubic", "espcn"], datasets=["skimage"], out=d / "b", lr_hw=(8, 8), repeats=1, threads=1)
    assert len(t) >= 2 and (d / "b" / "bench.csv").is_file(), t
    """, exit=0, check=lambda d, r: None)


# ---------------------------------------------------------------------------------------------------------------
# model files
# ---------------------------------------------------------------------------------------------------------------

def img_in(d: Path) -> None:
    image(d / "in.png", rgb())


def upm(model: str) -> list[str]:
    return ["upscale", model, "{d}/in.png", "--out", "{d}/out", "--threads", "1"]


def model_case(name: str, make: Callable[[Path], Path], rel: str, *says: str, via: str = "upscale") -> None:
    """The model file ``make`` writes at {d}/rel refused in one line naming it (via upscale or the API)."""
    def setup(d: Path) -> None:
        img_in(d)
        make(d)
    if via == "upscale":
        case(name, "model-files", setup, upm("{d}/" + rel), says=("{d}/" + rel, *says), check=nothing_at("out"))
    else:
        case(name, "model-files", setup, api=f'srnas.load_model(d / "{rel}")', says=("{d}/" + rel, *says))


FIX = "write it anew"
model_case("payload_upscale", lambda d: evil(shipped_pt(), d / "evil.pt"), "evil.pt", "convert-model")
model_case("payload_load_model", lambda d: evil(shipped_pt(), d / "evil.pt"), "evil.pt", "convert-model", via="api")
case("payload_upscaler", "model-files", lambda d: evil(shipped_pt(), d / "evil.pt"),
     api='srnas.Upscaler(str(d / "evil.pt"))', says=("convert-model",))
case("payload_bench", "model-files", lambda d: (evil(shipped_pt(), d / "evil.pt"), tiny_config(d)),
     ["bench", "-c", "{d}/tiny.yaml", "--models", "{d}/evil.pt", "--datasets", "skimage", "--out", "{d}/b",
      "--lr-size", "8x8", "--repeats", "1"], says=("convert-model",), check=nothing_at("b"))
case("payload_export", "model-files", lambda d: (evil(shipped_pt(), d / "evil.pt"), tiny_config(d)),
     ["export", "-c", "{d}/tiny.yaml", "--model", "{d}/evil.pt", "--out", "{d}/x"], says=("convert-model",),
     check=nothing_at("x"))
case("payload_weights_dir", "model-files",
     lambda d: (evil(ROOT / "experiments" / "weights" / "espcn_x2.pt", d / "w" / "espcn_x2.pt"), img_in(d)),
     [*upm("espcn"), "--weights-dir", "{d}/w"], says=("{d}/w/espcn_x2.pt",), check=nothing_at("out"))
case("payload_convert_model", "model-files", lambda d: evil(shipped_pt(), d / "evil.pt"),
     ["convert-model", "{d}/evil.pt"], says=("{d}/evil.pt",),
     check=lambda d, r: "converted" if (d / "evil.pt.pickled").exists() else None)
case("convert_model_names_every_bad_file", "model-files",
     lambda d: (evil(shipped_pt(), d / "a.pt"), write(d / "b.pt", "text")),
     ["convert-model", "{d}/a.pt", "{d}/b.pt"], exit=(1, 2), says=("{d}/a.pt", "{d}/b.pt"), check=lambda d, r: None)


def _run_folder_payload(d: Path) -> None:
    """A run folder whose stage3/pruned.pt carries a payload (a shared run folder)."""
    run = d / "runs" / "tiny"
    shutil.copy(tiny_config(d), write(run / "config.yaml", ""))
    evil(shipped_pt(), run / "stage3" / "pruned.pt")
    write(run / "stage3" / "final.json", json.dumps({"target_ms": 50.0, "files": {"model": "stage3/pruned.pt"}}))


case("payload_in_run_folder_bench", "model-files", _run_folder_payload,
     ["bench", "--run", "{d}/runs/tiny", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8",
      "--repeats", "1"], says=("convert-model",))


for _n, _text in [("cut", '{"target_ms": 50.0, "files": {"mod'), ("without_model", '{"target_ms": 50.0}'),
                  ("target_a_word", '{"target_ms": "fast", "files": {"model": "stage3/pruned.pt"}}')]:
    case(f"final_json_{_n}", "model-files",
         lambda d, _text=_text: (tiny_config(d), write(d / "runs" / "tiny" / "stage3" / "final.json", _text)),
         ["bench", "--run", "{d}/runs/tiny", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8",
          "--repeats", "1"], says=("final.json is damaged",))


def _checkpoint_payload(d: Path) -> None:
    import torch
    tiny_config(d)
    sdir = d / "runs" / "tiny" / "supernet"
    sdir.mkdir(parents=True)
    torch.save({"step": 3, "x": Payload(d / MARKER)}, sdir / "checkpoint.pt")


case("payload_supernet_checkpoint", "model-files", _checkpoint_payload,
     ["supernet", "train", "-c", "{d}/tiny.yaml"], says=("convert-model",))
model_case("text_pt", lambda d: write(d / "m.pt", "this is a note, not a model\n"), "m.pt", "is not a torch file")
model_case("text_ts", lambda d: write(d / "m.ts", "not a model\n"), "m.ts", "srnas export")
model_case("text_onnx", lambda d: write(d / "m.onnx", "not a model\n"), "m.onnx", "srnas export")
model_case("empty_pt", lambda d: write(d / "m.pt", b""), "m.pt")
model_case("empty_onnx", lambda d: write(d / "m.onnx", b""), "m.onnx")
model_case("cut_pt", lambda d: cut(Path(shutil.copy(shipped_pt(), d / "m.pt"))), "m.pt")
model_case("cut_ts", lambda d: cut(Path(shutil.copy(exported("ts"), d / "m.ts"))), "m.ts", "srnas export")
model_case("cut_onnx", lambda d: cut(Path(shutil.copy(exported("onnx"), d / "m.onnx"))), "m.onnx", "srnas export")
model_case("wrong_shape", lambda d: edited_pt(d, _wrong_shape), "edited.pt", "has shape", FIX)
model_case("missing_key", lambda d: edited_pt(d, lambda b: b["state"].pop(_first_state(b))), "edited.pt", FIX)
model_case("extra_key", lambda d: edited_pt(d, lambda b: b["state"].update(
    {"stray.weight": __import__("torch").zeros(3)})), "edited.pt", "stray.weight", FIX)
model_case("nan_weights", lambda d: edited_pt(d, _fill(float("nan"))), "edited.pt", "NaN", FIX)
model_case("inf_weights", lambda d: edited_pt(d, _fill(float("inf"))), "edited.pt", "NaN / inf", FIX)
model_case("scale_as_string", lambda d: edited_pt(d, lambda b: b.update(scale="3")), "edited.pt", "scale", FIX)
model_case("scale_7", lambda d: edited_pt(d, lambda b: b.update(scale=7)), "edited.pt", "scale", FIX)
model_case("huge_n_feats", lambda d: edited_pt(d, lambda b: b["model_cfg"].update(n_feats=100000)), "edited.pt",
           "n_feats", FIX)
model_case("large_n_feats", lambda d: edited_pt(d, lambda b: b["model_cfg"].update(n_feats=1000)), "edited.pt",
           FIX)
model_case("negative_n_feats", lambda d: edited_pt(d, lambda b: b["model_cfg"].update(n_feats=-8)), "edited.pt",
           "n_feats", FIX)
model_case("path_unknown_block", lambda d: edited_pt(d, lambda b: b.update(path=b["path"][:-1] + ["resnet"])),
           "edited.pt", "path", FIX)
model_case("format_unknown", lambda d: edited_pt(d, lambda b: b.update(format="srnas-pruned/99")), "edited.pt")
model_case("state_a_list", lambda d: edited_pt(d, lambda b: b.update(state=[1, 2])), "edited.pt", FIX)
model_case("pt_a_tensor", lambda d: __import__("torch").save(__import__("torch").zeros(3), d / "t.pt"), "t.pt")
model_case("pt_an_empty_dict", lambda d: __import__("torch").save({}, d / "t.pt"), "t.pt")
model_case("pt_a_directory", lambda d: (d / "m.pt").mkdir(), "m.pt")
model_case("onnx_external_outside", lambda d: onnx_external(d, "../outside.data"), "model/m.onnx",
           "outside its folder")
model_case("onnx_external_absolute", lambda d: onnx_external(d, str(d / "outside.data")), "model/m.onnx")
model_case("onnx_external_missing", lambda d: onnx_external(d, "gone.data"), "model/m.onnx", "missing")
model_case("ts_of_a_non_image_model", lambda d: _sum_ts(d / "sum.ts"), "sum.ts", "srnas export")
model_case("onnx_of_a_non_image_model", lambda d: _sum_onnx(d / "sum.onnx"), "sum.onnx", "srnas export")
model_case("wrong_extension", lambda d: write(d / "m.h5", "x"), "m.h5")
case("zoo_weights_dir_cut", "model-files",
     lambda d: (img_in(d), cut(Path(shutil.copy(ROOT / "experiments" / "weights" / "espcn_x2.pt",
                                                 (d / "w").mkdir() or d / "w" / "espcn_x2.pt")))),
     [*upm("espcn"), "--weights-dir", "{d}/w"], says=("{d}/w/espcn_x2.pt",), check=nothing_at("out"))
case("zoo_weights_dir_wrong_shape", "model-files",
     lambda d: (img_in(d), _zoo_wrong_shape(d / "w" / "espcn_x2.pt")),
     [*upm("espcn"), "--weights-dir", "{d}/w"], says=("{d}/w/espcn_x2.pt",), check=nothing_at("out"))
case("zoo_weights_dir_nan", "model-files",
     lambda d: (img_in(d), _zoo_nan(d / "w" / "espcn_x2.pt")),
     [*upm("espcn"), "--weights-dir", "{d}/w"], says=("{d}/w/espcn_x2.pt",), check=nothing_at("out"))


def _sum_ts(path: Path) -> Path:
    import torch

    class Sum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum()
    torch.jit.script(Sum()).save(str(path))
    return path


def _sum_onnx(path: Path) -> Path:
    import torch

    from srnas.latency.onnx_export import export_onnx

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=1)
    return Path(export_onnx(Mean().eval(), [torch.rand(1, 3, 8, 8)], path, dynamic=True))


def _zoo_blob(path: Path) -> dict:
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    return torch.load(ROOT / "experiments" / "weights" / "espcn_x2.pt", map_location="cpu", weights_only=True)


def _zoo_state(blob: dict) -> dict:
    return blob["state"] if isinstance(blob, dict) and "state" in blob else blob


def _zoo_wrong_shape(path: Path) -> None:
    import torch
    blob = _zoo_blob(path)
    st = _zoo_state(blob)
    k = next(k for k, v in st.items() if hasattr(v, "shape") and v.ndim == 4)
    st[k] = torch.zeros(st[k].shape[0] + 1, *st[k].shape[1:])
    torch.save(blob, path)


def _zoo_nan(path: Path) -> None:
    import torch
    blob = _zoo_blob(path)
    st = _zoo_state(blob)
    k = next(k for k, v in st.items() if hasattr(v, "shape") and v.ndim == 4)
    st[k] = torch.full_like(st[k], float("nan"))
    torch.save(blob, path)


# ---------------------------------------------------------------------------------------------------------------
# LUT (`srnas latency build` reads the LUT where the tiny config's belongs; `srnas run` checks it at load)
# ---------------------------------------------------------------------------------------------------------------

BUILD = ["latency", "build", "-c", "{d}/tiny.yaml"]


def lut_whole(d: Path, r: Result) -> str | None:
    """A check: the LUT has as many rows as one built here, each once, none glued to another."""
    with _lock:
        want = len(lut_rows(write(shared() / "want.csv", _lut_text())))
    rows = lut_rows(lut_path(d))
    keys = [tuple(x[2:10]) for x in rows]
    if len(rows) != want or len(set(keys)) != len(keys):
        return f"the LUT holds {len(rows)} rows ({len(set(keys))} distinct), not {want}"
    if any(len(x) != len(rows[0]) for x in rows):
        return "a row of another length"
    return None


def _cut_mid_row(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:6]) + lines[6][:20]


def _glued(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:6]) + lines[6][:20] + "".join(lines[7:])


def _row_value(col: int, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        cells = lines[4].rstrip("\n").split(",")
        cells[col] = value
        lines[4] = ",".join(cells) + "\n"
        return "".join(lines)
    return edit


case("lut_cut_mid_row", "lut", lambda d: put_lut(d, _cut_mid_row), BUILD, exit=0, check=lut_whole)
case("lut_row_glued_to_next", "lut", lambda d: put_lut(d, _glued), BUILD, exit=0, check=lut_whole)
case("lut_nan_latency", "lut", lambda d: put_lut(d, _row_value(10, "nan")), BUILD, exit=0, check=lut_whole)
case("lut_negative_latency", "lut", lambda d: put_lut(d, _row_value(10, "-3.0")), BUILD, exit=0, check=lut_whole)
case("lut_word_for_channels", "lut", lambda d: put_lut(d, _row_value(3, "eight")), BUILD, exit=0, check=lut_whole)
case("lut_header_only", "lut", lambda d: put_lut(d, lambda t: "".join(t.splitlines(keepends=True)[:2])), BUILD,
     exit=0, check=lut_whole)
case("lut_edited_backend", "lut", lambda d: put_lut(d, header_field("backend", "onnxruntime"),
                                                   {"latency": {"backend": "onnxruntime"}}),
     ["latency", "build", "-c", "{d}/tiny.yaml", "--out", "{d}/runs/tiny/latency/lut-torch-cpu.csv",
      "--backend", "onnxruntime"], says=("header says backend",))
case("lut_other_cpu", "lut", lambda d: put_lut(d, header_field("cpu_model", "Snapdragon 888")), BUILD,
     says=("another device", "--allow-foreign-lut"))
case("lut_other_cpu_on_run", "lut", lambda d: put_lut(d, header_field("cpu_model", "Snapdragon 888")),
     ["run", "-c", "{d}/tiny.yaml", "--set", "latency.target=1000ms"], says=("another device",),
     check=lambda d, r: "trained first" if (d / "runs" / "tiny" / "supernet").exists() else None)
case("lut_other_isa", "lut", lambda d: put_lut(d, header_field("isa", "avx2")), BUILD, says=("isa",))
case("lut_other_scale", "lut", lambda d: put_lut(d, header_field("scale", "3")), BUILD, says=("x3",))
case("lut_other_scale_allowed", "lut", lambda d: put_lut(d, header_field("scale", "3")),
     [*BUILD, "--allow-foreign-lut"], says=("x3",))
case("lut_other_precision", "lut", lambda d: put_lut(d, header_field("precision", "int8")), BUILD,
     says=("precision",))
case("lut_other_threads", "lut", lambda d: put_lut(d, header_field("threads", "16")), BUILD, says=("threads",))
case("lut_other_cpu_allowed", "lut", lambda d: put_lut(d, header_field("cpu_model", "Snapdragon 888")),
     [*BUILD, "--allow-foreign-lut"], exit=0,
     check=lambda d, r: None if "Snapdragon 888" in lut_path(d).read_text() and not lut_whole(d, r)
     else "the foreign LUT was changed")
case("lut_missing_column", "lut", lambda d: put_lut(
    d, lambda t: "\n".join(",".join(c for i, c in enumerate(ln.split(",")) if i != 10) if not ln.startswith("#")
                           else ln for ln in t.splitlines()) + "\n"), BUILD, says=("{d}/runs/tiny/latency",))
case("lut_garbage", "lut", lambda d: put_lut(d, lambda t: "\x00\x01garbage\xff" * 50), BUILD,
     says=("lut-torch-cpu.csv",))
case("lut_binary", "lut", lambda d: (tiny_config(d), write(lut_path(d), bytes(range(256)) * 8)), BUILD,
     says=("lut-torch-cpu.csv",))
case("lut_empty_file", "lut", lambda d: put_lut(d, lambda t: ""), BUILD, exit=(0, 2),
     check=lambda d, r: lut_whole(d, r) if r.code == 0 else None)
case("lut_broken_fingerprint_json", "lut", lambda d: put_lut(d, lambda t: t.replace("{", "{{", 1)), BUILD,
     says=("lut-torch-cpu.csv",))
case("lut_a_directory", "lut", lambda d: (tiny_config(d), lut_path(d).mkdir(parents=True)), BUILD,
     says=("lut-torch-cpu.csv",))
case("lut_check_of_foreign", "lut", lambda d: put_lut(d, header_field("cpu_model", "Snapdragon 888")),
     ["latency", "check", "-c", "{d}/tiny.yaml", "--samples", "2"], says=("another device",))
case("import_missing_columns", "lut", lambda d: (tiny_config(d), write(d / "phone.csv", "op,cin,cout\nconv,1,2\n")),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--cpu-model", "phone", "--out", "{d}/l.csv"],
     says=("missing column",), check=nothing_at("l.csv"))
case("import_garbage", "lut", lambda d: (tiny_config(d), write(d / "phone.csv", bytes(range(256)) * 4)),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--cpu-model", "phone", "--out", "{d}/l.csv"],
     says=("{d}/phone.csv",), check=nothing_at("l.csv"))
case("import_nan_latency", "lut", lambda d: (tiny_config(d), write(
    d / "phone.csv", "op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,nan\n")),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--cpu-model", "phone", "--out", "{d}/l.csv"],
     says=("latency_ms",), check=nothing_at("l.csv"))
case("import_negative_latency", "lut", lambda d: (tiny_config(d), write(
    d / "phone.csv", "op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,-2\n")),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--cpu-model", "phone", "--out", "{d}/l.csv"],
     says=("latency_ms",), check=nothing_at("l.csv"))
case("import_without_device", "lut", lambda d: (tiny_config(d), write(
    d / "phone.csv", "op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,2.5\n")),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--out", "{d}/l.csv", "--backend",
      "onnxruntime"], says=("--cpu-model",), check=nothing_at("l.csv"))
case("import_missing_file", "lut", lambda d: tiny_config(d),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/nothere.csv", "--cpu-model", "phone"], says=("nothere.csv",))
case("import_lut_of_other_scale", "lut", lambda d: (put_lut(d, header_field("scale", "3")),
                                                   tiny_config(d)),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/runs/tiny/latency/lut-torch-cpu.csv", "--out",
      "{d}/again.csv"], says=("x3",), check=nothing_at("again.csv"))


# ---------------------------------------------------------------------------------------------------------------
# faults: kills, interrupts, locks, full disks
# ---------------------------------------------------------------------------------------------------------------

def killed_training(d: Path) -> None:
    tiny_config(d, train={"steps": 60, "epoch_steps": 10})
    ck = d / "runs" / "tiny" / "supernet" / "checkpoint.pt"
    stop_when(start(["supernet", "train", "-c", str(d / "tiny.yaml")], d, "killed.log"), ck.exists)


def trained_whole(d: Path, r: Result, rows_lost: int = 0) -> str | None:
    """A check: supernet.pt written; train_log.csv holds each epoch once (one row per validated path; ``rows_lost``
    rows of a damaged log may be missing), in order, to the last step, none glued."""
    import pandas as pd
    s = d / "runs" / "tiny" / "supernet"
    if not (s / "supernet.pt").is_file():
        return "supernet.pt not written"
    log = pd.read_csv(s / "train_log.csv")
    per_step = log.groupby("step").size()
    want = per_step.max() * 6   # 60 steps, an epoch every 10
    if list(per_step.index) != [10, 20, 30, 40, 50, 60] or not want - rows_lost <= len(log) <= want \
            or log.isna().any().any() or list(log["step"]) != sorted(log["step"]):
        return f"epochs logged: {list(log['step'])}"
    return None


case("killed_training_same_command", "faults", killed_training, ["supernet", "train", "-c", "{d}/tiny.yaml"],
     exit=0, check=trained_whole, timeout=300)
def killed_run(d: Path) -> None:
    tiny_config(d, train={"steps": 60, "epoch_steps": 10})
    ck = d / "runs" / "tiny" / "supernet" / "checkpoint.pt"
    stop_when(start(["run", "-c", str(d / "tiny.yaml")], d, "killed.log"), ck.exists)


def run_whole(d: Path, r: Result) -> str | None:
    run = d / "runs" / "tiny"
    missing = [f for f in ("stage3/final.json", "export/model.onnx", "export/model.ts", "report.md")
               if not (run / f).is_file()]
    return f"missing after the resumed run: {missing}" if missing else trained_whole(d, r)


case("killed_run_same_command", "faults", killed_run, ["run", "-c", "{d}/tiny.yaml"], exit=0, check=run_whole,
     timeout=400)


def interrupted_training(d: Path) -> None:
    tiny_config(d, train={"steps": 60, "epoch_steps": 10})
    ck = d / "runs" / "tiny" / "supernet" / "checkpoint.pt"
    p = start(["supernet", "train", "-c", str(d / "tiny.yaml")], d, "interrupted.log")
    code = stop_when(p, ck.exists, signal.SIGINT)
    write(d / "interrupted.json", json.dumps({"code": code}))


def interrupt_said(d: Path, r: Result) -> str | None:
    log = (d / "interrupted.log").read_text()
    code = json.loads((d / "interrupted.json").read_text())["code"]
    if "Traceback" in log:
        return "the interrupted command printed a traceback"
    if code != 130 or "run the same command again" not in log:
        return f"the interrupted command exited {code}: {log[-300:]!r}"
    return trained_whole(d, r)


case("interrupted_training", "faults", interrupted_training, ["supernet", "train", "-c", "{d}/tiny.yaml"], exit=0,
     check=interrupt_said, timeout=300)


def killed_lut(d: Path) -> None:
    tiny_config(d, pruning={"schemes": ["none", "filter"]}, latency={"repeats": 20})
    p = start(["latency", "build", "-c", str(d / "tiny.yaml")], d, "killed.log")
    stop_when(p, lambda: lut_path(d).exists() and len(lut_rows(lut_path(d))) >= 5)


def lut_whole_filter(d: Path, r: Result) -> str | None:
    rows = lut_rows(lut_path(d))
    keys = [tuple(x[2:10]) for x in rows]
    if len(set(keys)) != len(keys):
        return "a row measured twice"
    return None if len(rows) > 13 else f"only {len(rows)} rows"


case("killed_lut_build", "faults", killed_lut, ["latency", "build", "-c", "{d}/tiny.yaml"], exit=0,
     check=lut_whole_filter, timeout=300)


def killed_upscale(d: Path) -> None:
    for i in range(40):
        image(d / "in" / f"f{i:02d}.png", rgb(64, 64, seed=i))
    p = start(["upscale", "abpn", str(d / "in"), "--out", str(d / "out"), "--threads", "1", "--backend", "torch-cpu"],
              d, "killed.log")
    stop_when(p, lambda: (d / "out").is_dir() and len(list((d / "out").glob("*.png"))) >= 3)


case("killed_upscale_rerun", "faults", killed_upscale, up("{d}/in", model="abpn", extra=("--backend", "torch-cpu")),
     exit=0, check=only_files("out", [f"f{i:02d}.png" for i in range(40)]), timeout=300)


def lock_held(d: Path):
    """Another live process holds the run folder's lock."""
    tiny_config(d)
    run = d / "runs" / "tiny"
    run.mkdir(parents=True)
    code = (f"from srnas.supernet.runlock import run_lock\nimport time\nwith run_lock({str(run)!r}, 'srnas test'):\n"
            f"    open({str(d / 'held')!r}, 'w').close()\n    time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code], env=ENV, start_new_session=True)
    deadline = time.time() + 60
    while not (d / "held").exists() and time.time() < deadline:
        time.sleep(0.05)
    return lambda: (os.killpg(p.pid, signal.SIGKILL), p.wait())


case("lock_held_by_another", "faults", lock_held, BUILD, says=("in use by process",),
     check=nothing_at("runs/tiny/latency"))


def stale_lock(d: Path) -> None:
    tiny_config(d)
    run = d / "runs" / "tiny"
    write(run / ".srnas.lock", "")
    write(run / ".srnas.holder.json", json.dumps({"pid": 999999, "command": "srnas run", "started": 0}))


case("stale_lock_taken_over", "faults", stale_lock, BUILD, exit=0, check=lut_whole)


def full_disk(size: str, files: Callable[[Path], None] | None = None):
    def setup(d: Path) -> None:
        if files:
            files(d)
        mount_tmpfs(d / "full", size)
    return setup


def _frames_in(d: Path) -> None:
    for i in range(4):
        image(d / "in" / f"f{i}.png", (np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8))


def whole_or_absent(rel: str):
    """A check: every file under {d}/rel decodes whole and no .tmp / .partial is left."""
    def check(d: Path, r: Result) -> str | None:
        for p in (d / rel).rglob("*"):
            if p.is_file():
                if ".tmp" in p.name or ".partial" in p.name:
                    return f"{p.name} left"
                if p.suffix in (".png", ".mp4", ".mkv"):
                    bad = decodes(p)
                    if bad:
                        return bad
        return None
    return check


NEED_MOUNT = can_mount()
case("full_disk_upscale", "faults", full_disk("64k", _frames_in),
     ["upscale", "bicubic", "{d}/in", "--out", "{d}/full/up", "--threads", "1"], exit=(1, 2),
     says=("no space left",), check=whole_or_absent("full"), skip=NEED_MOUNT)
case("full_disk_video", "faults", full_disk("24k", lambda d: video(d / "in" / "v.mp4", 25, 96, 64)),
     ["upscale", "bicubic", "{d}/in/v.mp4", "--out", "{d}/full/up", "--threads", "1"], exit=1,
     says=("No space left",), check=both(whole_or_absent("full"), nothing_at("full/up/v.mp4")), skip=NEED_MOUNT)
case("full_disk_lut_build", "faults", full_disk("4k", lambda d: tiny_config(d, run_dir=str(d / "full"))), BUILD,
     says=("no space left",), check=whole_or_absent("full"), skip=NEED_MOUNT)
case("full_disk_training", "faults", full_disk("64k", lambda d: tiny_config(d, run_dir=str(d / "full"))),
     ["supernet", "train", "-c", "{d}/tiny.yaml"], says=("no space left",), check=whole_or_absent("full"),
     skip=NEED_MOUNT)
case("full_disk_export", "faults", full_disk("16k", lambda d: tiny_config(d)),
     ["export", "-c", "{d}/tiny.yaml", "--model", str(shipped_pt()), "--out", "{d}/full/x"],
     says=("no space left",), check=whole_or_absent("full"), skip=NEED_MOUNT)
case("full_disk_bench", "faults", full_disk("8k"),
     ["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8", "--repeats", "1", "--out",
      "{d}/full/b"], says=("no space left",), check=whole_or_absent("full"), skip=NEED_MOUNT)
case("full_disk_probes", "faults", full_disk("8k", lambda d: tiny_config(d)),
     ["latency", "probes", "-c", "{d}/tiny.yaml", "--out", "{d}/full/probes", "--backend", "onnxruntime"],
     says=("no space left",),
     check=whole_or_absent("full"), skip=NEED_MOUNT)


def cut_train_log(d: Path) -> None:
    killed_training(d)
    log = d / "runs" / "tiny" / "supernet" / "train_log.csv"
    if log.exists():
        log.write_text(log.read_text()[:-7])


case("damaged_train_log_resumed", "faults", cut_train_log, ["supernet", "train", "-c", "{d}/tiny.yaml"], exit=0,
     says=("damaged row",), check=lambda d, r: trained_whole(d, r, rows_lost=1), timeout=300)


def cut_checkpoint(d: Path) -> None:
    killed_training(d)
    cut(d / "runs" / "tiny" / "supernet" / "checkpoint.pt")


case("cut_checkpoint_resumed", "faults", cut_checkpoint, ["supernet", "train", "-c", "{d}/tiny.yaml"],
     says=("checkpoint.pt", "--redo"), timeout=300)


# ---------------------------------------------------------------------------------------------------------------
# output folders
# ---------------------------------------------------------------------------------------------------------------

def out_file(d: Path) -> None:
    img_in(d)
    write(d / "taken", "keep me")


def keeps(rel: str, text: str = "keep me"):
    return lambda d, r: None if (d / rel).read_text() == text else f"{rel} was changed"


def ro_folder(d: Path) -> None:
    img_in(d)
    tiny_config(d)
    mount_tmpfs(d / "ro", "64k", read_only=True)


case("upscale_out_a_file", "output", out_file, ["upscale", "bicubic", "{d}/in.png", "--out", "{d}/taken"],
     says=("is an existing file",), check=keeps("taken"))
case("upscale_out_under_a_file", "output", out_file,
     ["upscale", "bicubic", "{d}/in.png", "--out", "{d}/taken/sr"], says=("is a file",), check=keeps("taken"))
case("upscale_out_read_only", "output", ro_folder, ["upscale", "bicubic", "{d}/in.png", "--out", "{d}/ro"],
     says=("not writable",), skip=NEED_MOUNT)
case("upscale_out_read_only_below", "output", ro_folder,
     ["upscale", "bicubic", "{d}/in.png", "--out", "{d}/ro/new"], says=("{d}/ro",), skip=NEED_MOUNT)
case("upscale_video_out_read_only", "output", lambda d: (ro_folder(d), video(d / "v.mkv", 2)),
     ["upscale", "bicubic", "{d}/v.mkv", "--out", "{d}/ro"], says=("not writable",), skip=NEED_MOUNT)
case("upscale_out_is_the_input", "output", lambda d: image(d / "in" / "a.png", rgb()),
     ["upscale", "bicubic", "{d}/in", "--out", "{d}/in"], says=("overwrite",),
     check=lambda d, r: None if read(d / "in" / "a.png").shape == (16, 24, 3) else "the input was overwritten")
case("upscale_out_exists_with_results", "output", lambda d: (img_in(d), write(d / "out" / "in.png", "old")),
     upm("bicubic"), exit=0, check=expect_image("out/in.png", (32, 48, 3)))
case("bench_out_a_file", "output", lambda d: write(d / "taken", "keep me"),
     ["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8", "--repeats", "1", "--out",
      "{d}/taken"], says=("{d}/taken",), check=keeps("taken"))
case("bench_out_under_a_file", "output", lambda d: write(d / "taken", "keep me"),
     ["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8", "--repeats", "1", "--out",
      "{d}/taken/b"], says=("{d}/taken",), check=keeps("taken"))
case("bench_out_read_only", "output", ro_folder,
     ["bench", "--models", "bicubic", "--datasets", "skimage", "--lr-size", "8x8", "--repeats", "1", "--out",
      "{d}/ro"], says=("{d}/ro",), skip=NEED_MOUNT)
case("bench_without_out", "output", None, ["bench", "--models", "bicubic"], says=("--out",))
case("export_out_a_file", "output", lambda d: (tiny_config(d), write(d / "taken", "keep me")),
     ["export", "-c", "{d}/tiny.yaml", "--model", str(shipped_pt()), "--out", "{d}/taken"], says=("{d}/taken",),
     check=keeps("taken"))
case("export_out_read_only", "output", ro_folder,
     ["export", "-c", "{d}/tiny.yaml", "--model", str(shipped_pt()), "--out", "{d}/ro"], says=("{d}/ro",),
     skip=NEED_MOUNT)
case("probes_out_a_file", "output", lambda d: (tiny_config(d), write(d / "taken", "keep me")),
     ["latency", "probes", "-c", "{d}/tiny.yaml", "--out", "{d}/taken", "--backend", "onnxruntime"],
     says=("{d}/taken",), check=keeps("taken"))
case("run_dir_a_file", "output", lambda d: (write(d / "taken", "keep me"),
                                            tiny_config(d, "bad.yaml", run_dir=str(d / "taken"))),
     RUN, says=("{d}/taken",), check=keeps("taken"))
case("run_dir_read_only", "output", lambda d: (ro_folder(d), tiny_config(d, "bad.yaml", run_dir=str(d / "ro"))),
     ["latency", "build", "-c", "{d}/bad.yaml"], says=("{d}/ro",), skip=NEED_MOUNT)
case("run_out_a_file", "output", lambda d: (tiny_config(d), write(d / "taken", "keep me")),
     ["supernet", "train", "-c", "{d}/tiny.yaml", "--out", "{d}/taken"], says=("{d}/taken",), check=keeps("taken"))
case("lut_out_under_a_file", "output", lambda d: (tiny_config(d), write(d / "taken", "keep me")),
     ["latency", "build", "-c", "{d}/tiny.yaml", "--out", "{d}/taken/lut.csv"], says=("{d}/taken",),
     check=keeps("taken"))
case("import_out_a_folder", "output", lambda d: (tiny_config(d), (d / "dir").mkdir(), write(
    d / "phone.csv", "op,cin,cout,k,h,w,scheme,rate,latency_ms\nconv,8,16,3,4,4,none,0,2.5\n")),
     ["latency", "import", "-c", "{d}/tiny.yaml", "{d}/phone.csv", "--cpu-model", "phone", "--out", "{d}/dir",
      "--backend", "onnxruntime"], says=("{d}/dir",))
case("zoo_export_out_a_file", "output", lambda d: write(d / "taken", "keep me"),
     ["zoo", "export", "espcn", "--out", "{d}/taken"], says=("{d}/taken",), check=keeps("taken"))


# ---------------------------------------------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------------------------------------------

def run_case(c: Case, root: Path) -> tuple[str, str | None, Result | None]:
    """("passed" | "failed" | "skipped", why, result)."""
    if c.skip:
        return "skipped", c.skip, None
    d = root / c.kind / c.name
    d.mkdir(parents=True)
    cleanup = None
    try:
        try:
            cleanup = c.setup(d) if c.setup else None
        except Exception as e:  # noqa: BLE001
            return "failed", f"setup failed: {type(e).__name__}: {e}", None
        if not callable(cleanup):
            cleanup = None
        t0 = time.time()
        try:
            p = subprocess.run(c.command(d), cwd=d, env=ENV, capture_output=True, text=True, timeout=c.timeout,
                               errors="replace")
            r = Result(p.returncode, p.stdout, p.stderr, time.time() - t0)
        except subprocess.TimeoutExpired as e:
            r = Result(None, str(e.stdout or ""), str(e.stderr or ""), time.time() - t0)
        (d / "stdout.txt").write_text(r.out)
        (d / "stderr.txt").write_text(r.err)
        why = judge(c, d, r)
        return ("failed" if why else "passed"), why, r
    finally:
        if cleanup:
            cleanup()
        unmount_under(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=1, help="cases run at once")
    ap.add_argument("-k", default="", help="only cases whose name holds this")
    ap.add_argument("--kind", choices=KINDS, action="append", help="only cases of this kind (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the cases' folders")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()
    cases = [c for c in CASES if args.k in c.name and (not args.kind or c.kind in args.kind)]
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), f"two cases share a name: {[n for n in names if names.count(n) > 1]}"
    if args.list:
        for c in cases:
            print(f"{c.kind:12} {c.name}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="srnas-sweep-"))
    os.environ["SWEEP_SHARED"] = str(root / "_shared")
    results: dict[str, tuple[str, str | None, Result | None]] = {}
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {c.name: pool.submit(run_case, c, root) for c in cases}
        for c in cases:
            results[c.name] = futures[c.name].result()
            status, why, r = results[c.name]
            took = f"{r.seconds:5.1f}s exit {r.code}" if r else " " * 13
            print(f"{status:7} {took:>14} {c.kind:11} {c.name}" + (f"  ({why})" if why else ""), flush=True)
    print("\n| kind | cases | passed | failed | skipped |\n|---|---|---|---|---|")
    table = {}
    for kind in KINDS:
        st = [results[c.name][0] for c in cases if c.kind == kind]
        if st:
            table[kind] = {s: st.count(s) for s in ("passed", "failed", "skipped")} | {"cases": len(st)}
            t = table[kind]
            print(f"| {kind} | {t['cases']} | {t['passed']} | {t['failed']} | {t['skipped']} |")
    total = {s: sum(t[s] for t in table.values()) for s in ("cases", "passed", "failed", "skipped")}
    print(f"| all | {total['cases']} | {total['passed']} | {total['failed']} | {total['skipped']} |")
    failed = [c for c in cases if results[c.name][0] == "failed"]
    for c in failed:
        _, why, r = results[c.name]
        d = root / c.kind / c.name
        print(f"\n### {c.kind}/{c.name}: {why}\n$ {' '.join(c.command(d)) if c.argv else '(API) ' + c.api.strip()}")
        if r:
            print(f"exit {r.code}; stderr ends:")
            for ln in stderr_lines(r.err)[-8:]:
                print("    " + ln[:300])
    skipped = {c.name: c.skip for c in cases if c.skip}
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"\ncases' folders kept in {root}")
    print(json.dumps({"total": total, "by_kind": table, "failed": [c.name for c in failed], "skipped": skipped,
                      "seconds": round(time.time() - t0)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
