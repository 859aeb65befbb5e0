"""The model replay of MBPO: imagined transitions, capacity tied to the rollout length.

Pure data handling, no Lightning. MBPO (Janner et al. 2019; REFERENCE.md 1.2) keeps the imagined
transitions of the last ``retain_epochs`` epochs:

    capacity = retain_epochs * rollout_length * rollout_batch_size * (epoch_length / model_train_freq)

and reallocates the pool whenever the rollout length changes, keeping the newest transitions.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from tensordict import TensorDictBase
from torchrl.data import LazyTensorStorage, ReplayBuffer

from lightning_mbrl.errors import ConfigError


def check_rollout_schedule(schedule: Sequence[int]) -> tuple[int, int, int, int]:
    """Validate ``[min_epoch, max_epoch, min_length, max_length]``."""
    if len(schedule) != 4:
        raise ConfigError(f"rollout_schedule must be [min_epoch, max_epoch, min_length, max_length], got {list(schedule)}")
    min_epoch, max_epoch, min_len, max_len = (int(v) for v in schedule)
    if min_len < 1 or max_len < min_len:
        raise ConfigError(f"rollout_schedule lengths must satisfy 1 <= min_length <= max_length, got {list(schedule)}")
    if max_epoch < min_epoch or min_epoch < 0:
        raise ConfigError(f"rollout_schedule epochs must satisfy 0 <= min_epoch <= max_epoch, got {list(schedule)}")
    return min_epoch, max_epoch, min_len, max_len


def rollout_length(epoch: int, schedule: Sequence[int]) -> int:
    """MBPO's schedule: ``min_length`` up to ``min_epoch``, then linear in the epoch up to
    ``max_length`` at ``max_epoch`` (truncated to an int, as the MBPO code), constant after."""
    min_epoch, max_epoch, min_len, max_len = check_rollout_schedule(schedule)
    if epoch <= min_epoch or max_epoch == min_epoch:
        return min_len if epoch <= min_epoch else max_len
    frac = min((epoch - min_epoch) / (max_epoch - min_epoch), 1.0)
    return int(min_len + frac * (max_len - min_len))


def model_replay_capacity(retain_epochs: int, length: int, rollout_batch_size: int, epoch_length: int,
                          model_train_freq: int) -> int:
    return int(retain_epochs * length * rollout_batch_size * math.ceil(epoch_length / model_train_freq))


class ModelReplay:
    """A uniform replay of imagined transitions whose capacity can change (keeping the newest)."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.capacity = capacity
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(capacity, device=device))

    def __len__(self) -> int:
        return len(self.buffer)

    def resize(self, capacity: int) -> None:
        """Reallocate to ``capacity``, keeping the newest ``min(len, capacity)`` transitions."""
        if capacity == self.capacity:
            return
        keep = min(len(self.buffer), capacity)
        newest = self.newest(keep) if keep else None
        self.capacity = capacity
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(capacity, device=self.device))
        if newest is not None:
            self.buffer.extend(newest)

    def newest(self, n: int) -> TensorDictBase:
        """The ``n`` most recently written transitions, oldest first."""
        size = len(self.buffer)
        if not 0 <= n <= size:
            raise ValueError(f"n must be in [0, {size}], got {n}")
        cursor = self.buffer.write_count % self.capacity if size == self.capacity else size
        idx = torch.arange(cursor - n, cursor) % self.capacity
        return self.buffer.storage[idx]

    def extend(self, data: TensorDictBase) -> None:
        self.buffer.extend(data)

    def sample(self, batch_size: int) -> TensorDictBase:
        return self.buffer.sample(batch_size)
