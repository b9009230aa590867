"""Every path inside one run directory (<run_dir>/<name>/), named once for every command and --out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """The layout of a run directory; ``root`` is <run_dir>/<name> or the --out a command was given."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

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
