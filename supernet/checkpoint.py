"""Checkpoint and model files: written atomically, read as data only.

Every ``.pt`` that srnas writes holds plain containers (dict, list, tuple, str, numbers) and tensors, and is
read back with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds those types and
nothing else, so a file someone shares (a searched model, a run folder) cannot run code when it is opened.
Files of older srnas versions pickled Python objects; they are refused with the one-time conversion command
(:func:`convert_old`), which rebuilds only the classes srnas itself pickled.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import UserError, clip
from .writes import atomic_write_bytes

CONVERT = "srnas convert-model"


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save into memory, then written beside ``path`` and renamed over it (writes.atomic_write_bytes):
    a kill leaves the previous file, a full disk is one DiskFull line naming it."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: str | Path, fix: str = "") -> Any:
    """Load a file written by srnas (on the CPU) without running code; UserError when it is not one.

    ``fix`` says what to do when the file is damaged (default: remove it and run the command again).
    """
    path = Path(path)
    try:
        _check_kind(path, fix)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path} holds Python objects, not only tensors and plain data (a file of an older srnas, "
                        f"or one made to run code when opened), so srnas does not open it; a file of an older srnas "
                        f"converts once with `{CONVERT} {path}`") from e
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:  # cut: OSError EINVAL
        raise UserError(f"{path} is damaged (cut short, or not a torch file: {first_line(e)}); "
                        f"{fix or 'remove it and run the command again'}") from e


# what a torch.save file starts with: a zip archive (torch >= 1.6), or the legacy format's pickle protocol byte
TORCH_MAGIC = (b"PK", b"\x80")


def _check_kind(path: Path, fix: str) -> None:
    """UserError when ``path`` is plainly no torch file (text, an image): the unpickler would call it code or fail
    with its opcode (``KeyError: 101``)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head and not head.startswith(TORCH_MAGIC):
        raise UserError(f"{path} is not a torch file (it starts with {head!r}: text or another format); "
                        f"{fix or 'remove it and run the command again'}")


def first_line(e: Exception) -> str:
    """An exception's first message line (at most 120 characters), for one-line errors; its class if it has none."""
    lines = str(e).strip().splitlines()
    return clip(lines[0], 120) if lines else type(e).__name__   # cut at a word, marked ...


def plain(obj: Any) -> Any:
    """``obj`` with every object that has a ``to_dict()`` (e.g. pruning masks) replaced by that dict, recursively."""
    if hasattr(obj, "to_dict") and not isinstance(obj, (dict, torch.Tensor)):
        return plain(obj.to_dict())
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    return obj


def convert_old(path: str | Path, known: Sequence[type]) -> Path:
    """Rewrite an older srnas file as plain data in place (the original kept beside it); the path of the original.

    Only the ``known`` srnas classes those files pickled (e.g. pruning's Masks) are allowed to be rebuilt,
    through the same restricted unpickler: a file that would run code is refused here too.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file at {path}")
    try:
        load(path)
        raise UserError(f"{path} holds only tensors and plain data already: nothing to convert")
    except UserError as e:
        if CONVERT not in str(e):
            raise
    try:
        with torch.serialization.safe_globals(list(known)):
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"{path} holds Python objects that no srnas version wrote ({first_line(e)}); "
                        f"it is not converted: do not use it") from e
    if isinstance(blob, dict) and blob.get("format") == "srnas-pruned/2":
        blob["format"] = "srnas-pruned/3"   # /3 differs only in holding the masks as a dict
    backup = path.with_name(path.name + ".pickled")
    os.replace(path, backup)
    atomic_save(plain(blob), path)
    return backup
