"""One process per run folder: every command that writes a run holds its lock while it works.

The lock is an OS file lock (flock, through ``filelock``) on ``<run>/.srnas.lock``: the kernel drops it when
its process ends, however it ends, so the lock of a killed run is simply taken over. Who holds it (pid,
command, start time, host) is written beside it in ``<run>/.srnas.holder.json``, for the message a second
process gets.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .errors import UserError
from .writes import make_folder

LOCK_NAME = ".srnas.lock"
HOLDER_NAME = ".srnas.holder.json"


class RunLocked(UserError):
    """Another process works on this run folder now."""


def _rank() -> int:
    """This process's rank under torchrun (0 when started alone): only rank 0 holds a run's lock."""
    return int(os.environ.get("RANK", "0") or 0)


def holder(root: str | Path) -> dict | None:
    """What the holder file of ``root`` says (pid, command, started, host), or None."""
    try:
        return json.loads((Path(root) / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return None


def _describe(root: Path, who: dict | None) -> str:
    if not who:
        return (f"run folder {root} is in use by another srnas process; wait for it to end (or stop it), "
                f"or give this command another run name / --out")
    started = time.strftime("%H:%M:%S", time.localtime(who.get("started", 0)))
    host = f" on {who['host']}" if who.get("host") and who["host"] != socket.gethostname() else ""
    return (f"run folder {root} is in use by process {who.get('pid')}{host} (`{who.get('command', '?')}`, "
            f"started {started}); wait for it to end (or stop it: its lock is then taken over), or give this "
            f"command another run name / --out")


@contextmanager
def run_lock(root: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the lock of run folder ``root`` (created if missing) for the block; RunLocked if another process does.

    Under torchrun only rank 0 takes it (the ranks of one command work together). A folder made only for the
    lock is removed again when the block leaves nothing else in it (e.g. the command stopped on bad input).
    """
    root = Path(root)
    if _rank() != 0:
        yield root
        return
    made = [d for d in (root, *root.parents) if not d.exists()]   # innermost first: removed again if left empty
    make_folder(root, "output folder")   # a file there or above it, a read-only place: one line, before any work
    lock = FileLock(str(root / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(_describe(root, holder(root))) from None
    info = root / HOLDER_NAME
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "command": command or " ".join(["srnas", *sys.argv[1:]]),
                                    "started": time.time(), "host": socket.gethostname()}))
        yield root
    finally:
        info.unlink(missing_ok=True)
        empty = made and {p.name for p in root.iterdir()} <= {LOCK_NAME}
        if empty:   # removed while still held: a process that opened it meanwhile finds it held, not free
            (root / LOCK_NAME).unlink(missing_ok=True)
        lock.release()
        if empty:
            try:
                for d in made:
                    d.rmdir()
            except OSError:   # another process made something there meanwhile
                pass


def lock_folder(run_root: str | Path, out: str | Path | None = None) -> Path:
    """The folder a command's lock goes on: the run folder, unless the command writes to ``out`` outside it."""
    run_root = Path(run_root)
    if out is None:
        return run_root
    out = Path(out)
    try:
        out.resolve().relative_to(run_root.resolve())
        return run_root
    except ValueError:
        return out
