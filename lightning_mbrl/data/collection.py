"""Real-data plumbing: the collector policy adapter and the real replay buffer. No Lightning."""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn
from torchrl.data import LazyTensorStorage, ReplayBuffer

from lightning_mbrl import keys


class ActorPolicy(nn.Module):
    """TensorDict adapter around ``act(observation) -> action``, for collectors and rollouts.

    Holds no parameters of its own (the algorithm owns them), so a collector built with it never
    copies weights: collection always uses the current policy.
    """

    def __init__(self, act: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self._act = act

    @torch.no_grad()
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict.set(keys.ACTION, self._act(tensordict.get(keys.OBSERVATION)))
        return tensordict


def make_replay_buffer(capacity: int, device: torch.device | str = "cpu") -> ReplayBuffer:
    """A uniform replay buffer of transitions, preallocated lazily on first write (on ``device``)."""
    return ReplayBuffer(storage=LazyTensorStorage(capacity, device=device))


class ReplayView:
    """Read-only access to a replay buffer (``protocols.ReplayView``): ``len``, indexing and
    ``sample``; no writes. What callbacks get of an algorithm's real replay. ``source`` returns the
    buffer at each access (it may be created after the view, or replaced on a resume)."""

    __slots__ = ("_source",)

    def __init__(self, source: Callable[[], ReplayBuffer]) -> None:
        self._source = source

    def __len__(self) -> int:
        return len(self._source())

    def __getitem__(self, index: int | slice | Tensor) -> TensorDictBase:
        return self._source()[index]

    def sample(self, batch_size: int) -> TensorDictBase:
        return self._source().sample(batch_size)
