"""Produce the shipped zoo weights: train every trainable zoo model at the searched winner's step budget.

    .venv/bin/python experiments/train_zoo.py [-c experiments/configs/cpu_x2.yaml] [--models a,b] [--resume]
                                              [--set train.threads=1]

One training budget (issue 12): each model trains on the config's data for as many steps as
a winner of `srnas run -c CONFIG` sees in all (supernet + pruning regularization + fine-tune,
pruning.stage3.winner_steps), with the config's train recipe, into <run>/zoo/; the INT8
(QAT) forms (abpn_int8 and the <name>_int8 of experiments/zoo/int8.py) then get train.qat_steps more, as an INT8
winner does. The fp16 state dicts are
copied into experiments/weights/ (what `bench` and `upscale` load by default).
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from srnas.experiments import zoo  # noqa: E402
from srnas.experiments.zoo.training import train_zoo_model  # noqa: E402
from srnas.pruning.stage3 import winner_steps  # noqa: E402
from srnas.supernet.config import load_config  # noqa: E402
from srnas.supernet.data import PatchSampler  # noqa: E402
from srnas.supernet.train import load_train_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Train the listed models and copy their weights into experiments/weights/."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=str(ROOT / "experiments/configs/cpu_x2.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--models", default=",".join([n for n in zoo.names() if zoo.entry(n).trainable] + ["abpn_int8"]
                                                + list(zoo.INT8)))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-copy", action="store_true", help="leave experiments/weights/ alone")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.set)
    float_steps = winner_steps(dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, precision="fp32")))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=float_steps))
    print(f"zoo budget: {float_steps} steps per model (+{cfg.train.qat_steps} QAT for the INT8 forms), as a winner of "
          f"{args.config} sees")
    d = cfg.data
    sampler = PatchSampler(load_train_images(cfg), d.scale, d.patch_size, d.batch_size, d.augment, cfg.train.seed)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name == "abpn_int8":
            from srnas.experiments.quantize import train_abpn_int8
            out = train_abpn_int8(cfg, resume=args.resume, sampler=sampler)
        elif name in zoo.INT8:   # after its fp32 model (earlier in --models, or the shipped weights)
            from srnas.experiments.zoo.int8 import train_zoo_int8
            out = train_zoo_int8(cfg, name, resume=args.resume, sampler=sampler)
        else:
            out = train_zoo_model(cfg, name, resume=args.resume, sampler=sampler)
        if not args.no_copy:
            zoo.WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy2(out, zoo.WEIGHTS_DIR / out.name)
            print(f"{name}: {out} -> {zoo.WEIGHTS_DIR / out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
