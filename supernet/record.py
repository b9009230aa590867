"""What each stage of a run was made from, in ``<run>/record.json``, so that no command mixes stages.

Every stage writes its entry when it starts (a killed stage is covered too): the config keys it depends on
(STAGE_KEYS, as the user gave them: ``auto``, ``0.85x``), the files it reads by content hash (the supernet's
weights, the LUT, the winner, the pruned model) and the paths it writes (to know whether it has begun). A
later command whose config or inputs differ from a begun stage's refuses in one line naming the stage, the
key (old -> new) and the flag that makes the stage again, before it writes anything. Paths are stored
relative to the run folder, so a copied or moved folder keeps its record. A stage without an entry (a run of
an older srnas) is taken as it is and gets its entry the first time a command passes it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .config import Config, config_to_dict
from .errors import UserError
from .rundir import RunDir
from .writes import atomic_write_text

STAGES = ("supernet", "lut", "search", "stage3", "export")
# what each stage is made from besides the config: redoing a stage redoes every stage made from it
MADE_FROM = {"supernet": (), "lut": (), "search": ("supernet", "lut"), "stage3": ("search",), "export": ("stage3",)}

_TRAIN_DATA = ("data.train", "data.patch_size", "data.batch_size", "data.augment")
_SPACE = ("pruning.schemes", "pruning.block_size", "pruning.pattern_taps", "pruning.n_patterns",
          "pruning.channel_multiple", "pruning.prune_tail", "latency.rates")
# The config keys each stage's output depends on: a section name takes all its keys, "-key" leaves one out.
# Left out everywhere: threads (speed only), name and run_dir (where the run lives), data.data_root (where the
# data is found on this machine), soft_target (the exit status only); the supernet also leaves out what only its
# validation log and checkpoints depend on (data.val, epoch_steps, val_paths) and stage 3's QAT steps.
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "supernet": (*_TRAIN_DATA, "data.scale", "model", "train", "-train.threads", "-train.qat_steps",
                 "-train.epoch_steps", "-train.val_paths"),
    "lut": ("data.scale", "model.blocks", "model.n_feats", "model.expansion_a", "model.expansion_b", "model.low_rank",
            "model.expansion_dws", "model.skip", "model.head_act", "model.tail", "model.clamp", "model.elastic",
            "latency.backend", "latency.precision", "latency.threads", "latency.lr_height", "latency.lr_width",
            "latency.granularity", "latency.lut"),
    "search": ("search", "-search.threads", "latency.target", "latency.targets", *_SPACE, *_TRAIN_DATA, "data.val"),
    "stage3": ("pruning", "latency.target", "latency.targets", "latency.backend", "latency.precision",
               "latency.lr_height", "latency.lr_width", "train.qat_steps", *_TRAIN_DATA),
    "export": ("latency.backend", "latency.precision", "data.benchmarks"),
}
HASH_LIMIT = 2 ** 31   # inputs larger than this are recorded by size: hashing them would cost more than it saves


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"n_feats": 16}} -> {"model.n_feats": 16}."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def stage_config(cfg: Config, stage: str) -> dict[str, Any]:
    """The values of the config keys ``stage`` depends on, by dotted key."""
    flat = _flatten(config_to_dict(cfg))
    keys: dict[str, None] = {}
    for spec in STAGE_KEYS[stage]:
        if spec.startswith("-"):
            keys.pop(spec[1:], None)
        else:
            keys.update((k, None) for k in flat if k == spec or k.startswith(spec + "."))
    return {k: flat[k] for k in keys}


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes ("size:N" for a file too large to read cheaply)."""
    size = path.stat().st_size
    if size > HASH_LIMIT:
        return f"size:{size}"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def downstream(stages: Iterable[str]) -> list[str]:
    """``stages`` and every stage made from them, in pipeline order."""
    out = set(stages)
    for s in STAGES:   # pipeline order: a stage's sources come before it
        if any(src in out for src in MADE_FROM[s]):
            out.add(s)
    return [s for s in STAGES if s in out]


@dataclass(frozen=True)
class Difference:
    """One way a begun stage differs from what a command would make it from."""
    stage: str
    key: str          # a dotted config key, or an input's path as stored
    old: Any
    new: Any
    is_input: bool = False

    def describe(self) -> str:
        """'model.n_feats 16 -> 24', or 'its input supernet/supernet.pt 3f2a91c0 -> missing'."""
        if self.is_input:
            return f"its input {self.key} {_short(self.old)} -> {_short(self.new)}"
        return f"{self.key} {_show(self.old)} -> {_show(self.new)}"


def _show(v: Any) -> str:
    """A config value as a user writes it."""
    if isinstance(v, str):
        return v if v.strip() else "''"
    return json.dumps(v, separators=(", ", ": "))


def _short(digest: str | None) -> str:
    """A file's hash as a message shows it."""
    return "missing" if digest is None else digest if digest.startswith("size:") else digest[:8]


class StageChanged(UserError):
    """A begun stage of a run was made from another config or other inputs than a command would use now."""


def redo_hint(stages: Sequence[str]) -> str:
    """What `srnas run` takes to make ``stages`` again."""
    flags = " ".join(f"--redo {s}" for s in stages)
    return (f"make {'it' if len(stages) == 1 else 'them'} again with `srnas run -c CONFIG {flags}` (the stages made "
            f"from {'it' if len(stages) == 1 else 'them'} follow), or give this config another name (--set name=NEW)")


class RunRecord:
    """The record.json of one run folder (``root``); paths inside ``top`` (the outermost run folder: a front's
    own for its targets' folders) are stored relative to ``root``, others as they are."""

    def __init__(self, root: str | Path, top: str | Path | None = None):
        self.root = Path(root)
        self.top = Path(top) if top is not None else self.root
        self.path = RunDir(self.root).record

    def load(self) -> dict[str, dict]:
        """Every stage's entry; {} without a record (a damaged one warns, and is written anew as stages pass)."""
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {k: v for k, v in data["stages"].items() if isinstance(v, dict)}
        except (ValueError, KeyError, TypeError, AttributeError):
            warnings.warn(f"{self.path} is damaged (cut short?); its stages are taken as they are and recorded "
                          f"again", stacklevel=2)
            return {}

    def store(self, path: str | Path) -> str:
        """``path`` as the record keeps it: relative to the run folder where it lies in the run, else absolute."""
        p = Path(os.path.abspath(path))
        try:
            p.relative_to(os.path.abspath(self.top))
        except ValueError:
            return str(p)
        return os.path.relpath(p, os.path.abspath(self.root))

    def where(self, stored: str) -> Path:
        """The path a stored one names now."""
        return Path(os.path.normpath(self.root / stored))

    def write(self, stage: str, cfg: Config, inputs: Iterable[Path | None] = (), outputs: Iterable[Path] = ()) -> None:
        """Record that ``stage`` is made from ``cfg`` (as given) and the ``inputs`` that exist now (by hash)."""
        entries = self.load()
        entries[stage] = {"config": stage_config(cfg, stage),
                          "inputs": {self.store(p): file_hash(Path(p)) for p in inputs if p and Path(p).is_file()},
                          "outputs": [self.store(p) for p in outputs]}
        self._save(entries)

    def drop(self, stages: Iterable[str]) -> None:
        """Forget the entries of ``stages`` (their outputs were discarded)."""
        entries = self.load()
        if any(s in entries for s in stages):
            self._save({k: v for k, v in entries.items() if k not in set(stages)})

    def _save(self, entries: dict[str, dict]) -> None:
        """Write the entries, in pipeline order."""
        self.root.mkdir(parents=True, exist_ok=True)
        ordered = {s: entries[s] for s in STAGES if s in entries}
        atomic_write_text(self.path, json.dumps({"version": 1, "stages": ordered}, indent=1) + "\n")

    def begun(self, entry: dict) -> bool:
        """Whether the stage of ``entry`` has written any of its outputs."""
        return any(self.where(o).exists() for o in entry.get("outputs", []))

    def outputs(self, stage: str) -> list[Path]:
        """The paths the entry of ``stage`` says it writes (none without an entry)."""
        return [self.where(o) for o in self.load().get(stage, {}).get("outputs", [])]

    def differences(self, cfg: Config, skip: Iterable[str] = (), hashes: dict[Path, str] | None = None
                    ) -> list[Difference]:
        """How every begun stage (except ``skip``) differs from ``cfg`` and from its inputs as they are now
        (``hashes``: those already taken by this check, by path: a front's targets share the supernet's)."""
        out, skip, hashes = [], set(skip), {} if hashes is None else hashes
        for stage, entry in self.load().items():
            if stage in skip or stage not in STAGE_KEYS or not self.begun(entry):
                continue
            old, now = entry.get("config", {}), stage_config(cfg, stage)
            out += [Difference(stage, k, old[k], v) for k, v in now.items() if k in old and old[k] != v]
            for stored, digest in entry.get("inputs", {}).items():
                p = self.where(stored)
                if p not in hashes:
                    hashes[p] = file_hash(p) if p.is_file() else None
                current = hashes[p]
                if current != digest:
                    out.append(Difference(stage, stored, digest, current, is_input=True))
        return sorted(out, key=lambda d: STAGES.index(d.stage))


def stage_outputs(run: RunDir, stage: str, lut: Path | None = None) -> list[Path]:
    """What ``stage`` writes in a run folder (``lut``: the LUT's file, where the run has one): whether the stage
    has begun, and what --redo removes."""
    return {"supernet": [run.supernet_dir, run.size],
            "lut": [*([Path(lut)] if lut else []), run.executor, run.target],
            "search": [run.search_dir, run.winner, run.root / "targets", run.root / "front.json"],
            "stage3": [run.stage3_dir / "pruned.pt", run.stage3_dir / "checkpoint.pt", run.stage3_dir / "qat.pt"],
            "export": [run.export_dir, run.final]}[stage]


class Recorder:
    """Writes the entries of one run folder from the config as the command was given (before an `auto` executor,
    a relative target or a size list are settled: what the user would change); rank 0 alone writes."""

    def __init__(self, cfg: Config, run: RunDir, top: Path | None = None):
        self.cfg, self.run, self.record = cfg, run, RunRecord(run.root, top)
        self.main = int(os.environ.get("RANK", "0") or 0) == 0

    def __call__(self, stage: str, inputs: Iterable[Path | None] = (), lut: Path | None = None) -> None:
        """Record that ``stage`` starts (or was found made) from the config and ``inputs`` as they are now."""
        if self.main:
            self.record.write(stage, self.cfg, inputs, stage_outputs(self.run, stage, lut))

    def at(self, run: RunDir) -> "Recorder":
        """The recorder of a folder inside this run (a front's target), with the same config."""
        return Recorder(self.cfg, run, top=self.record.top)


def run_records(run: RunDir) -> list[RunRecord]:
    """The records of a run folder and of its targets' folders (a front: targets/<ms>ms/, stage 3 and export)."""
    targets = sorted(p.parent for p in (run.root / "targets").glob(f"*/{run.record.name}"))
    return [RunRecord(run.root)] + [RunRecord(t, top=run.root) for t in targets]


def check_run(cfg: Config, run: RunDir, only: Sequence[str] = STAGES,
              hint: Callable[[Sequence[str]], str] = redo_hint) -> None:
    """StageChanged when a begun stage among ``only`` of the run (its targets' too) was made otherwise than ``cfg``
    and the files there now would make it."""
    check_unchanged(run_records(run), cfg, [s for s in STAGES if s not in only], hint)


def check_unchanged(records: Sequence[RunRecord], cfg: Config, skip: Iterable[str] = (),
                    hint: Callable[[Sequence[str]], str] = redo_hint) -> None:
    """StageChanged (one line: the first stage that differs, its key old -> new, ``hint`` of what to redo) when
    a begun stage of these run folders was made otherwise than ``cfg`` and the files there now would make it."""
    hashes: dict[Path, str] = {}
    found = sorted(((d, r.root) for r in records for d in r.differences(cfg, skip, hashes)),
                   key=lambda dr: STAGES.index(dr[0].stage))
    if not found:
        return
    (first, where), stale = found[0], list(dict.fromkeys(d.stage for d, _ in found))
    # a stage made from another stale one is redone with it: name only the stages the others follow from
    roots = [s for s in stale if not any(s in downstream([o]) for o in stale if o != s)]
    more = sum(d.stage == first.stage for d, _ in found) - 1
    also = [s for s in roots if s != first.stage]
    raise StageChanged(f"stage '{first.stage}' of {where} was made from other settings than now: "
                       f"{first.describe()}{f' (and {more} more)' if more else ''}"
                       f"{''.join(f', stage {s!r} differs too' for s in also)}; {hint(roots)}")


def removals(record: RunRecord, stages: Sequence[str], defaults: dict[str, list[Path]]) -> list[Path]:
    """What discarding ``stages`` removes (their entries' outputs, else ``defaults``); UserError for a path outside
    the run folder (e.g. a LUT of latency.lut), which --redo leaves to the user."""
    paths: list[Path] = []
    for stage in stages:
        paths += record.outputs(stage) or defaults.get(stage, [])
    root = os.path.abspath(record.top)
    for p in paths:
        if not os.path.abspath(p).startswith(root + os.sep):
            raise UserError(f"--redo would remove {p}, which lies outside the run folder {record.top}: remove it "
                            f"yourself (or point the config at another file) and run again")
    return list(dict.fromkeys(paths))


def discard(record: RunRecord, stages: Sequence[str], defaults: dict[str, list[Path]],
            say: Callable[[str], None] = print) -> None:
    """Remove what ``stages`` wrote in the run folder (``removals``) and forget their entries."""
    gone = []
    for p in removals(record, stages, defaults):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        else:
            continue
        gone.append(record.store(p))
    record.drop(stages)
    if gone:
        say(f"redo {', '.join(stages)}: removed {', '.join(gone)} in {record.root}")
