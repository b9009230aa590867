"""The pruned-model file (``pruned.pt``) that stage 3 and `srnas prune` write and `srnas export` reads.

One format for both writers: the file alone rebuilds the network (model config, path, scale,
state, masks) and says what it is (plan, pruning config, candidate, whether its weights were
adapted to an INT8 grid by quantization-aware training) and how fast it ran on which executor
(backend, precision, input layout, LR size, threads). Saved as a plain dict with a format tag,
so a later srnas can tell an old file from a damaged one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from srnas.supernet import checkpoint
from srnas.supernet.blocks import fuse_weight_norm
from srnas.supernet.config import ModelConfig, build_section
from srnas.supernet.errors import UserError
from srnas.supernet.model import build_path_net

from .compaction import compact
from .masks import Masks, Plan
from .model_checks import field_problems, refuse, structure_problems, weight_problems

FIX = "write it anew (stage 3 of `srnas run`, or `srnas prune`), or use an unedited copy"
FORMAT = "srnas-pruned/3"   # /3: masks saved as a plain dict, so the file loads weights-only


@dataclass(frozen=True)
class Executor:
    """What a model is measured (and exported) for: backend, precision, input layout, LR size, threads."""

    backend: str
    precision: str
    layout: str           # "nchw" or "nhwc" (channels_last, as the torch-cpu-cl backend runs)
    lr_hw: tuple[int, int]
    threads: int


@dataclass
class PrunedModel:
    """A masked path network with everything needed to rebuild, describe and export it."""

    model_cfg: dict
    path: list[str]
    scale: int
    plan: Plan
    masks: Masks
    state: dict[str, torch.Tensor]
    pruning_cfg: dict
    backend: str
    precision: str
    layout: str
    lr_hw: tuple[int, int]
    threads: int
    measured_ms: float | None = None      # median on that executor at lr_hw (None: not measured)
    measured_iqr_ms: float | None = None
    predicted_ms: float | None = None     # the latency estimate (LUT) of the plan, when one was used
    target_ms: float = 0.0
    candidate: dict | None = None         # the search candidate it was pruned from, if any
    # quantization-aware fine-tune steps the weights had after pruning (0: float-trained only); > 0: the
    # state holds float weights adapted to the INT8 grid ``qat_grid`` (pruning.quant.GRIDS), which the
    # executor's INT8 route then quantizes. A file without these keys (older srnas) is float-trained.
    qat_steps: int = 0
    qat_grid: str | None = None
    train_steps: int = 0                  # every optimizer step its weights saw (supernet, pruning, QAT); 0: unknown

    @property
    def executor(self) -> Executor:
        """The executor it was measured with."""
        return Executor(self.backend, self.precision, self.layout, tuple(self.lr_hw), self.threads)

    @property
    def qat_adapted(self) -> bool:
        """Whether the weights were fine-tuned through fake quantization (for an INT8 executor)."""
        return self.qat_steps > 0

    def net(self) -> nn.Module:
        """The masked path network (weight norm fused), in eval mode."""
        # the state holds plain convs: training-time branches were folded before it was saved
        mcfg = dataclasses.replace(build_section(ModelConfig, self.model_cfg), rep="none")
        net = fuse_weight_norm(build_path_net(mcfg, self.scale, self.path))
        net.load_state_dict(self.state)
        self.masks.apply(net)
        return net.eval()

    def compact(self) -> nn.Module:
        """The network with the pruned work removed: what is exported and measured."""
        return compact(self.net(), self.masks)

    def save(self, path: str | Path) -> None:
        """Write the file atomically (a plain dict: state dicts, not modules, which weight norm makes unpicklable)."""
        blob = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        checkpoint.atomic_save(checkpoint.plain(blob), path)

    @classmethod
    def load(cls, path: str | Path) -> "PrunedModel":
        """Read a pruned-model file; UserError naming the fix when it is missing, old or not one."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no pruned model at {path}: run stage 3 (`srnas run -c CONFIG`, or "
                            f"`srnas prune -c CONFIG ...`) first, or pass --model")
        blob = checkpoint.load(path, fix=FIX)
        if not isinstance(blob, dict) or "masks" not in blob:
            raise UserError(f"{path} is not a pruned model written by `srnas prune` or stage 3 of `srnas run` "
                            f"(it holds no masks); {FIX}")
        if blob.get("format") != FORMAT:
            raise UserError(f"{path} is a pruned model in an older format ({blob.get('format', 'untagged')}), "
                            f"without the model config, path and measurement needed to rebuild it: re-run stage 3 "
                            f"to write it anew with --redo (`srnas prune -c CONFIG --reweighted --redo ...`; for "
                            f"the stage3/pruned.pt of a run, remove that stage3 folder and run `srnas run -c CONFIG` "
                            f"again)")
        refuse(path, field_problems(blob), FIX)
        known = {f.name for f in fields(cls)}
        pm = cls(**{**{k: v for k, v in blob.items() if k in known}, "masks": Masks.from_dict(blob["masks"])})
        refuse(path, structure_problems(pm) or weight_problems(pm), FIX)
        return pm
