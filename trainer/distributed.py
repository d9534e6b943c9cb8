"""Data-parallel training across the processes `accelerate launch` (or `torchrun`) starts on one machine.

DDP's arithmetic, done by hand: each optimizer step's records are split between the ranks, each rank weights its
micro-batches' losses by their tokens over the step's tokens on every rank, and the LoRA gradients are summed
across ranks before clipping — so every rank takes the step one process would take on the whole batch (to float
rounding), with the same global `batch_size`. Not `DistributedDataParallel` around the model: the methods call
the PEFT model's own methods (`disable_adapter`), which a wrapper hides, and only the LoRA gradients (megabytes)
need to cross. Rank 0 alone claims, writes the adapter and its report, gates and promotes (`trainer.run`).

A process that was not launched that way (no `WORLD_SIZE` above 1) gets no group, and the loop runs exactly as
it always has.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """This process's place among the launched ones."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self) -> str | None:
        """Each rank's own GPU where there are GPUs (the launcher starts one process per card); else the CPU."""
        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank (pickled: records, paths, settings)."""
        box = [value if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def shard(self, indices: Sequence[int]) -> list[int]:
        """This rank's share of one step's records: every `world`-th, so shares differ by at most one."""
        return list(indices[self.rank::self.world])

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each of `values` summed over the ranks."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._wire())
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum the gradients of `params` over the ranks, in one flat buffer (a rank whose share was empty sends
        zeros)."""
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
        torch.distributed.all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p))  # type: ignore[union-attr]
            offset += n

    def same_start(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Rank 0's trainable weights on every rank (they are seeded alike; this makes it certain)."""
        with torch.no_grad():
            for p in params:
                torch.distributed.broadcast(p.data, src=0)

    def _wire(self) -> str:
        return "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"


def current() -> Group | None:
    """The group this process was launched into (joined on first call), or None for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend=backend)
    return Group(torch.distributed.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def done(group: Group | None) -> None:
    """Leave the group at the end of a run."""
    if group is not None and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


__all__ = ["Group", "current", "done"]
