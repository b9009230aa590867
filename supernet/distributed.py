"""torch.distributed set-up shared by every stage: the same command runs in one process or under torchrun."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


# the process's own thread count, which a stage's threads: 0 means (a stage before it may have set another)
PROCESS_THREADS = torch.get_num_threads()


def init_distributed(threads: int = 0) -> DistInfo:
    """Join the torchrun process group if launched by torchrun (gloo on CPU, NCCL on GPUs); set this stage's
    torch threads: ``threads``, or with 0 the process default (shared out among ranks on one host)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if threads > 0:
        torch.set_num_threads(threads)
    elif local_world > 1:
        # ranks on one host share its cores; oversubscription makes all of them slow
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    else:
        torch.set_num_threads(PROCESS_THREADS)
    return DistInfo(rank, world, local, device)


def barrier() -> None:
    """Wait for all ranks (no-op in one process)."""
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's value of ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
