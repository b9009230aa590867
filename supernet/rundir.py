"""Every path inside one run directory (<run_dir>/<name>/), named once for every command and --out."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """The layout of a run directory; ``root`` is <run_dir>/<name> or the --out a command was given."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def store(self, path: str | Path) -> str:
        """``path`` as the run's own files (final.json, front.json) keep it: relative to the run folder when it
        lies inside it (a copied or moved folder then names its own files), else absolute."""
        p = Path(os.path.abspath(path))
        try:
            return str(p.relative_to(os.path.abspath(self.root)))
        except ValueError:
            return str(p)

    def resolve(self, stored: str | Path) -> Path:
        """The file a stored path names now: relative ones under the run folder; an absolute one (older srnas)
        that lies under a folder of this run's name, which is gone or whose file this folder holds too (a moved
        or copied run), here as well; any other absolute one as it is."""
        p = Path(stored)
        if not p.is_absolute():
            return self.root / p
        parts = p.parts
        for i in range(len(parts) - 2, 0, -1):   # the innermost folder of this run's name
            if parts[i] == self.root.name:
                here = self.root.joinpath(*parts[i + 1:])
                return here if here.exists() or not Path(*parts[:i + 1]).exists() else p
        return p

    @property
    def record(self) -> Path:
        """What each stage was made from (supernet/record.py)."""
        return self.root / "record.json"

    @property
    def config(self) -> Path:
        """The config as resolved (absolute latency target included)."""
        return self.root / "config.yaml"

    @property
    def supernet_dir(self) -> Path:
        return self.root / "supernet"

    @property
    def supernet(self) -> Path:
        """The trained supernet's weights."""
        return self.supernet_dir / "supernet.pt"

    @property
    def latency_dir(self) -> Path:
        return self.root / "latency"

    def lut(self, backend: str, precision: str = "fp32") -> Path:
        """The LUT of one executor: lut-<backend>[-<precision>].csv (fp32 keeps the plain name)."""
        return self.latency_dir / (f"lut-{backend}" + ("" if precision == "fp32" else f"-{precision}") + ".csv")

    @property
    def executor(self) -> Path:
        """Which executor `auto` chose here, with the timings that decided it."""
        return self.latency_dir / "executor.json"

    @property
    def size(self) -> Path:
        """Which cell count and width a list / auto in the model section settled on, and why."""
        return self.latency_dir / "size.json"

    @property
    def target(self) -> Path:
        """How a relative target was resolved to ms."""
        return self.latency_dir / "target.json"

    @property
    def search_dir(self) -> Path:
        return self.root / "search"

    @property
    def winner(self) -> Path:
        return self.root / "winner.yaml"

    @property
    def stage3_dir(self) -> Path:
        return self.root / "stage3"

    @property
    def final(self) -> Path:
        """Stage 3's measured result of the winner."""
        return self.stage3_dir / "final.json"

    @property
    def prune_dir(self) -> Path:
        """Where `srnas prune` (outside `srnas run`) writes."""
        return self.root / "prune"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def zoo_dir(self) -> Path:
        return self.root / "zoo"
