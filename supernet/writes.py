"""Writes that never leave half a file under its final name, and a full disk said as such, in one line.

A whole file is written beside its name and renamed over it; an appended line goes out in one write and,
when that write fails, the file is cut back to where it was, so no torn row is left for the next append to
glue onto. Every failure for want of space becomes :class:`DiskFull` (a UserError naming the file).
"""
from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError, first_line

# errno values that mean "no room": a full disk, or the user's quota spent
FULL = (errno.ENOSPC, errno.EDQUOT)
# what torch's C++ writers say when a write fails (torch.save to a path name, TorchScript save): they carry no errno
_TORCH_WRITE_FAILED = ("iostream error", "unexpected pos", "failed writing", "file write failed")


class DiskFull(UserError, OSError):
    """No space left on the device (or quota) while writing ``path``; nothing is left half-written under its name."""

    def __str__(self) -> str:   # the message alone, without OSError's "[Errno 28]"
        return self.strerror or super().__str__()


def is_full(e: BaseException) -> bool:
    """Whether ``e`` is an OSError for want of space."""
    return isinstance(e, OSError) and e.errno in FULL


def disk_full(path: str | Path | None, done: str = "") -> DiskFull:
    """The one-line error for a full disk while writing ``path`` (``done``: what was finished before it)."""
    where = f" writing {path}" if path else ""
    free = _free(Path(path).parent if path else Path.cwd())
    left = f" ({free} free)" if free else ""
    return DiskFull(errno.ENOSPC, f"no space left on device{where}{left}; {done + '; ' if done else ''}"
                                  f"free some space and run the command again (a run goes on from what is "
                                  f"complete; nothing is left half-written)")


def _free(folder: Path) -> str:
    """Free space on the file system of ``folder`` in words, '' when unknown."""
    for p in (folder, *folder.parents):
        if p.exists():
            try:
                n = shutil.disk_usage(p).free
            except OSError:
                return ""
            return f"{n / 2**20:.1f} MiB" if n < 2**30 else ""   # plenty free again: a quota, or freed since
    return ""


@contextmanager
def reporting_full_disk(path: str | Path, done: str = "") -> Iterator[None]:
    """Turn a failure for want of space inside the block into DiskFull naming ``path``.

    torch's C++ writers (torch.save to a file name) fail with a RuntimeError that has no errno; one of those
    is taken for a full disk too. The temporary ``<name>.tmp`` such a write was made under is removed.
    """
    try:
        yield
    except DiskFull:
        _remove_tmp(path)
        raise
    except OSError as e:
        if is_full(e):
            _remove_tmp(path)
            raise disk_full(path, done) from None
        raise
    except RuntimeError as e:
        if not torch_write_failed(e):
            raise
        err = write_failed(e, path, done)   # judged before the partial file's space is given back
        _remove_tmp(path)
        raise err from None


def _remove_tmp(path: str | Path) -> None:
    """Remove ``<name>.tmp`` beside ``path``: what an atomic write of ``path`` had written when it failed."""
    p = Path(path)
    p.with_name(p.name + ".tmp").unlink(missing_ok=True)


def write_failed(e: BaseException, path: str | Path | None = None, done: str = "") -> DiskFull:
    """The one-line error for torch's C++ writer failing on ``path`` (no errno: a full disk, mostly)."""
    if path is not None and _nearly_full(Path(path).parent):
        return disk_full(path, done)
    return DiskFull(errno.ENOSPC, f"writing {path or 'a file'} failed ({_first_line(e)}), most likely for want "
                                  f"of space; {done + '; ' if done else ''}free some space and run the command "
                                  f"again (nothing is left half-written)")


def torch_write_failed(e: BaseException) -> bool:
    """Whether ``e`` is torch's C++ writer failing to write (it carries no errno; a full disk, mostly)."""
    return isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_WRITE_FAILED)


def _first_line(e: BaseException) -> str:
    return first_line(e, 160)


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def make_folder(path: str | Path, what: str = "--out") -> Path:
    """Make output folder ``path`` (parents too) and try a write in it, or say in one line why it cannot be: a file
    there or above it, a read-only or forbidden place. Called before any work, so nothing is computed for nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is an existing file; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_probe(path)
    except (FileExistsError, NotADirectoryError):
        above = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise UserError(f"{what} {path} cannot be created: {above} is a file; give a folder") from None
    except OSError as e:
        if is_full(e):
            raise disk_full(path) from None
        raise UserError(f"{what} {path} is not writable ({e.strerror or first_line(e)}); give a folder you can "
                        f"write to") from None
    return path


def write_probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: OSError where it cannot be written (read-only, forbidden)."""
    probe = folder / f".srnas-write-probe-{os.getpid()}"
    probe.touch()
    probe.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` beside ``path``, fsync, rename over it; on failure the temporary file is removed. A ``path``
    that is a folder, or lies below a file, is a UserError (a --out that names the wrong thing)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder; name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        above = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise UserError(f"cannot write {path}: {above} is a file, not a folder") from None
    tmp = path.with_name(path.name + ".tmp")
    try:
        with reporting_full_disk(path), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """atomic_write_bytes for text (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str | Path, text: str, sync: bool = False) -> None:
    """Append whole line(s) ``text`` (ending in a newline) in one write; a failed write is cut back off.

    A file whose last line was torn (no newline: a kill mid-write of an older version) loses that torn tail
    first, so the new line never lands glued onto it; whoever reads the file warns about such a line on load.
    """
    assert text.endswith("\n"), "append whole lines"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with reporting_full_disk(path), open(path, "ab") as f:
        start = f.tell()
        if start:
            tail = _torn_tail(path, start)
            if tail:
                f.truncate(start - tail)
                start -= tail
        try:
            f.write(text.encode("utf-8"))
            f.flush()
            if sync:
                os.fsync(f.fileno())
        except BaseException:
            f.truncate(start)   # frees what the torn write took, so there is room for nothing half-done
            raise


def _torn_tail(path: Path, size: int) -> int:
    """How many bytes at the end of ``path`` (``size`` bytes long) follow its last newline."""
    with open(path, "rb") as f:
        back = min(size, 1 << 16)
        f.seek(size - back)
        chunk = f.read(back)
    if chunk.endswith(b"\n"):
        return 0
    i = chunk.rfind(b"\n")
    return len(chunk) - (i + 1) if i >= 0 or back == size else 0


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """``fig.savefig`` made in memory and written atomically (format from the suffix, png by default)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())
