"""Typed results of a run's stages: what the search found and what stage 3 measured (final.json)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from srnas.supernet.errors import UserError, first_line
from srnas.supernet.rundir import RunDir

from .candidate import Candidate
from .history import History, atomic_write_json


@dataclass
class SearchResult:
    """The guided search's winner, its history row, the ablation summary and both histories."""
    winner: Candidate
    row: dict
    ablation: dict
    guided: History
    random: History | None = None

    @property
    def val_psnr(self) -> float:
        return float(self.row["psnr"])

    @property
    def lut_ms(self) -> float:
        return float(self.row["lat_pred_ms"])


@dataclass
class Stage3Result:
    """The pruned, exported winner as measured in the run's executor; saved as stage3/final.json."""
    benchmark: str                        # the first benchmark (psnr, ssim, bicubic_psnr are its figures)
    psnr: float
    ssim: float
    bicubic_psnr: float
    gain_db: float
    benchmarks: dict[str, dict]           # every benchmark of the config: psnr, ssim, bicubic_psnr
    measured_ms: float
    measured_iqr_ms: float | None
    lut_ms: float                         # NaN where no LUT priced it
    target_ms: float
    backend: str
    precision: str
    layout: str
    lr_hw: list[int]
    threads: int
    candidate: dict
    plan: dict[str, list]
    files: dict[str, str]
    qat_steps: int = 0                    # quantization-aware fine-tune steps of the winner (INT8 executors)
    judged_by: str = "measured"           # "lut": the LUT is another device's, so this machine's ms cannot judge
    ratio_to_target: float | None = field(init=False)
    meets_target: bool | None = field(init=False)

    BOUND = 1.05     # measured may exceed the target by this factor and still meet it (timing noise)

    def __post_init__(self):
        t, ms = self.target_ms, (self.lut_ms if self.judged_by == "lut" else self.measured_ms)
        self.ratio_to_target = ms / t if t > 0 else None
        self.meets_target = ms <= self.BOUND * t if t > 0 else None

    def to_json(self) -> dict:
        """Plain dict as written to final.json (derived fields included for readers)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Stage3Result":
        """Read back what to_json wrote (derived fields are recomputed)."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        defaults = {f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        missing = names - set(data) - defaults   # a field added later with a default reads older files
        if missing:
            raise KeyError(f"final.json lacks {sorted(missing)}")
        return cls(**{k: data[k] for k in names if k in data})

    def save(self, path: Path, root: Path | None = None) -> None:
        """Write final.json; the files it names relative to the run folder ``root`` (default: the folder above
        stage3/), so a copied or moved run names its own."""
        run = RunDir(root or Path(path).parent.parent)
        atomic_write_json({**self.to_json(), "files": {k: run.store(v) for k, v in self.files.items()}}, path)

    @classmethod
    def load(cls, path: Path, root: Path | None = None) -> "Stage3Result":
        """Read final.json; its files as paths of the run folder where it lies now (RunDir.resolve)."""
        res = cls.from_json(json.loads(Path(path).read_text()))
        run = RunDir(root or Path(path).parent.parent)
        return dataclasses.replace(res, files={k: str(run.resolve(v)) for k, v in res.files.items()})


def read_winner(path: Path) -> tuple[float, Path]:
    """(target ms, model file) of a final.json, for a command that benches a run's winner (an older file too: only
    these two are read); a damaged or edited one is a UserError naming it."""
    try:
        data = json.loads(Path(path).read_text())
        target, model = float(data["target_ms"]), data["files"]["model"]
        if not isinstance(model, str):
            raise TypeError(f"files.model is {model!r}, not a path")
    except (KeyError, TypeError, ValueError) as e:   # JSON cut or edited, a field missing or of another type
        raise UserError(f"{path} is damaged ({type(e).__name__}: {first_line(e, 80)}): run `srnas run` on its run "
                        f"folder again, which writes it anew") from None
    return target, RunDir(Path(path).parent.parent).resolve(model)
