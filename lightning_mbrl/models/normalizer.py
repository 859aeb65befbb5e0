"""Running Gaussian normaliser (SLBO/BOOTS ``GaussianNormalizer``). No Lightning imports."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningNormalizer(nn.Module):
    """``x -> (x - mean) / max(std, min_std)`` with mean and variance of all data seen so far.

    ``update(x [N, D])`` merges a batch into the statistics exactly (Chan et al.'s parallel
    variance formula), so feeding the data in pieces or at once gives the same result. The
    statistics are buffers: they follow the module's device and enter the checkpoint. Before the
    first update the map is the identity. ``min_std`` keeps dimensions that have not varied yet (a
    contact force that was always zero) from being divided by ~0.
    """

    def __init__(self, dim: int, min_std: float = 1e-4) -> None:
        super().__init__()
        self.min_std = min_std
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean.dtype)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.mean.add_(delta * (n / total))
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> Tensor:
        return self.var.sqrt().clamp_min(self.min_std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean
