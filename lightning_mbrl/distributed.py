"""Collectives across data-parallel ranks, as plain torch.distributed calls (no Lightning).

Every algorithm keeps its own env and replay buffer per rank and makes its ranks agree on what
they *learn* (DESIGN.md section 4):

- gradients of every optimizer are averaged with one flat all-reduce per backward
  (:meth:`RankSync.average_gradients`), so Adam sees the same gradient on every rank and the
  parameters stay bit-identical;
- statistics fitted on data (normalisers, holdout errors that pick elites and stop training) are
  summed or averaged across ranks before they are used (:meth:`RankSync.sum_`,
  :meth:`RankSync.mean_`, :meth:`RankSync.cat`).

With no process group (one process) every method is the identity, so the single-device code path
does no extra work and gives the same numbers as before. Every rank must call the same
collectives in the same order: callers only use them on paths all ranks take together (the
schedules count frames, which advance in lockstep).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor


class RankSync:
    """Collectives over the default process group; identities when there is none."""

    @property
    def world_size(self) -> int:
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def rank(self) -> int:
        return dist.get_rank() if self.world_size > 1 else 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over ranks, in place; returns it."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def mean_(self, tensor: Tensor) -> Tensor:
        """Average ``tensor`` over ranks, in place; returns it."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor.div_(self.world_size)
        return tensor

    def cat(self, tensor: Tensor) -> Tensor:
        """Every rank's ``tensor`` (same shape on all ranks) concatenated along dim 0 in rank order."""
        if not self.active:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, 0)

    def average_gradients(self, params: Iterable[Tensor]) -> None:
        """Replace each parameter's gradient by its mean over ranks: one all-reduce of one flat
        buffer. A parameter without a gradient counts as a zero gradient on that rank (and gets one),
        so every rank sends buffers of the same layout."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def gather_objects(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` on rank 0 (pickled through the process group);
        ``[]`` on the other ranks. One process: ``[obj]``."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out if out is not None else []


#: The library's one instance (stateless: it reads the process group on every call).
SYNC = RankSync()
