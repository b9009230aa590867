"""Progress files of the long pruning loops: a run killed at any step resumes where its last save left it."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from torch import nn

from srnas.supernet import checkpoint
from srnas.supernet.errors import UserError

REGULARIZATION, FINETUNE = "regularization", "finetune"


def save_every(steps: int) -> int:
    """Default save interval in steps: a tenth of the phase, at most 50, so a kill loses little work."""
    return max(1, min(50, steps // 10))


class Progress:
    """One file holding a pruning run's phase, step, net / optimiser / schedule state and extras.

    Saves are atomic (a kill mid-save leaves the previous file intact) and happen every
    ``every_steps`` steps or ``every_s`` seconds, whichever comes first. ``signature``
    names the settings the run was started with; a file from other settings is refused,
    so a changed config never silently continues an old run.
    """

    def __init__(self, path: str | Path, signature: dict, every_steps: int | None = None, every_s: float = 30.0,
                 log: Callable[[str], None] = print):
        self.path, self.signature = Path(path), signature
        self.every_steps, self.every_s, self.log = every_steps, every_s, log
        self._last = time.monotonic()

    def load(self) -> dict | None:
        """The saved state, or None when there is none; UserError when it belongs to other settings."""
        if not self.path.exists():
            return None
        blob = checkpoint.load(self.path, fix="remove it (or pass --redo) to start this pruning stage over")
        theirs = blob.get("signature", {}) if isinstance(blob, dict) else {}
        if theirs != self.signature:
            diff = sorted(k for k in {**self.signature, **theirs} if theirs.get(k) != self.signature.get(k))
            raise UserError(f"{self.path} holds a pruning run with other settings ({', '.join(diff)}); "
                            f"remove it (or pass --redo) to start stage 3 over")
        return blob

    def due(self, done: int, steps: int) -> bool:
        """Whether to save after ``done`` of ``steps`` steps."""
        every = self.every_steps or save_every(steps)
        return done == steps or done % every == 0 or time.monotonic() - self._last >= self.every_s

    def save(self, phase: str, step: int, net: nn.Module, optimizer: Any = None, scheduler: Any = None,
             **extra: Any) -> None:
        """Write the state after ``step`` steps of ``phase`` (optimiser/schedule state when given)."""
        blob = {"signature": self.signature, "phase": phase, "step": step, "net": net.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None, **extra}
        checkpoint.atomic_save(blob, self.path)
        self._last = time.monotonic()

    def phase(self, name: str, saved: dict | None, extra: Callable[[], dict] = dict) -> "Phase":
        """The hooks one training loop calls to restore and save phase ``name``."""
        return Phase(self, name, saved if saved is not None and saved["phase"] == name else None, extra)

    def clear(self) -> None:
        """Remove the file (the run it tracked has written its result)."""
        self.path.unlink(missing_ok=True)


class Phase:
    """One training phase of a Progress file: restore at its start, save as it goes."""

    def __init__(self, progress: Progress, name: str, saved: dict | None, extra: Callable[[], dict]):
        self.progress, self.name, self.saved, self.extra = progress, name, saved, extra

    def restore(self, net: nn.Module, optimizer: Any, scheduler: Any, steps: int) -> int:
        """Load the saved state of this phase into the live objects; the step to continue from (0 if none)."""
        if self.saved is None:
            return 0
        net.load_state_dict(self.saved["net"])
        if self.saved["optimizer"] is not None:
            optimizer.load_state_dict(self.saved["optimizer"])
        if scheduler is not None and self.saved["scheduler"] is not None:
            scheduler.load_state_dict(self.saved["scheduler"])
        step = int(self.saved["step"])
        self.progress.log(f"resuming {self.name} at step {step}/{steps} from {self.progress.path}")
        return step

    def step_done(self, done: int, steps: int, net: nn.Module, optimizer: Any, scheduler: Any) -> None:
        """Save after ``done`` steps when the interval says so (always after the last)."""
        if self.progress.due(done, steps):
            self.progress.save(self.name, done, net, optimizer, scheduler, **self.extra())
