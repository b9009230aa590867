"""Atomic checkpoint files: a run killed at any moment leaves the last complete one intact."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> Any:
    """Load a checkpoint written by this project (on the CPU)."""
    return torch.load(path, map_location="cpu", weights_only=False)
