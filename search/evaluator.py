"""Real evaluation of a candidate: inherit supernet weights, prune by its plan, short masked fine-tune, PSNR."""
from __future__ import annotations

import torch

from srnas.pruning import apply_plan, masked_finetune
from srnas.supernet.config import Config
from srnas.supernet.data import Pair, PatchSampler
from srnas.supernet.evaluate import evaluate
from srnas.supernet.model import SRNet, SuperNet

from .candidate import Candidate, Space

def center_crop_pairs(pairs: list[Pair], hr_side: int, scale: int) -> list[Pair]:
    """Centre crops of validation pairs (HR side ``hr_side``): cheaper, same ranking signal."""
    if hr_side <= 0:
        return pairs
    out = []
    lr_side = hr_side // scale
    for p in pairs:
        h, w = p.lr.shape[:2]
        if min(h, w) <= lr_side:
            out.append(p)
            continue
        y, x = (h - lr_side) // 2, (w - lr_side) // 2
        out.append(Pair(p.name, p.lr[y:y + lr_side, x:x + lr_side],
                        p.hr[y * scale:(y + lr_side) * scale, x * scale:(x + lr_side) * scale], p.grey))
    return out


def member_net(supernet: SuperNet, cand: Candidate) -> SRNet:
    """The standalone network of a candidate's path (of an elastic supernet: at the candidate's width)."""
    return supernet.extract(cand.path, cand.width) if cand.width else supernet.extract(cand.path)


class Evaluator:
    """Callable candidate -> {"psnr"}: the real evaluation of stage 2."""

    def __init__(self, supernet: SuperNet, space: Space, cfg: Config, sampler: PatchSampler, pairs: list[Pair],
                 device: torch.device = torch.device("cpu")):
        self.supernet, self.space, self.cfg = supernet, space, cfg
        self.sampler, self.pairs, self.device = sampler, pairs, device

    def build(self, cand: Candidate, steps: int | None = None, lr: float | None = None) -> tuple[SRNet, object]:
        """The pruned, fine-tuned network of a candidate and its masks."""
        torch.manual_seed(self.cfg.search.seed)
        net = member_net(self.supernet, cand).to(self.device)
        masks = apply_plan(net, cand.plan(self.space), self.cfg.pruning)
        steps = self.cfg.search.eval_steps if steps is None else steps
        # every candidate sees the same batches, so PSNR differences come from the candidate
        masked_finetune(net, self.sampler, steps, lr or self.cfg.search.eval_lr, masks, lr_floor=0.1,
                        progress=False, device=self.device, lr_key="the given lr" if lr else "search.eval_lr")
        return net, masks

    def __call__(self, cand: Candidate) -> dict:
        net, _ = self.build(cand)
        with torch.no_grad():
            r = evaluate(lambda x: net(x.to(self.device)).cpu(), self.pairs, self.space.scale, ssim=False)
        return {"psnr": float(r["psnr"])}

