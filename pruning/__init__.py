"""Pruning: schemes, masks, reweighted dynamic regularization, compaction and export.

The public API other packages code against (see DESIGN.md / the cross-package contract).
"""
from .schemes import SCHEMES, Scheme
from .masks import Masks, Plan, apply_plan, tied_layers
from .compaction import compact, pruned_path_net
from .reweighted import masked_finetune, reweighted_prune
from .export import export_model
from .stats import count_macs, mac_latency_fn
from .model_file import Executor, PrunedModel
from .stage3 import Timer, prune_to_target, record

__all__ = ["SCHEMES", "Scheme", "Masks", "Plan", "apply_plan", "compact", "pruned_path_net", "tied_layers",
           "reweighted_prune", "masked_finetune", "export_model", "count_macs", "mac_latency_fn", "Executor",
           "PrunedModel", "Timer", "prune_to_target", "record"]
