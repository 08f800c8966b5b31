"""Data parallelism over the processes torchrun starts for a job with resources.gpus > 1.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK: one process per device. Every process reads the same
data and builds the same batches; each optimizer step's micro-batches are shared out (rank r takes
every world-th one), DistributedDataParallel averages the gradients, and only rank 0 writes (events,
checkpoints, the adapter, samples, metrics). A stop signal on any rank stops all of them at the same
step. Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op on one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def sum(self, value: float, device: torch.device) -> float:
        """`value` summed over the ranks."""
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total[0])

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether `flag` is set on any rank: every rank gets the same answer at the same step."""
        return self.sum(float(flag), device) > 0 if self.distributed else flag

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order (each rank gets the whole list)."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values


def join(cuda: bool) -> Ranks:
    """This process's place among torchrun's, joining the process group when there are several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    ranks = Ranks(world=world, rank=rank_from_env(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ranks


def leave(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def rank_from_env() -> int:
    """torchrun's RANK before the process group exists (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))
