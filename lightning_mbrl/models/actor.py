"""Tanh-squashed Gaussian policy (Haarnoja et al. 2018, Appendix C). No Lightning imports."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_mbrl.models.mlp import mlp

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class TanhGaussianActor(nn.Module):
    """``a = tanh(mu(s) + sigma(s) * xi)``, ``xi ~ N(0, I)``; actions lie in ``(-1, 1)^A``.

    The trunk outputs ``[mu, log sigma]``; ``log sigma`` is clamped to ``log_std_bounds``
    (softlearning and BOOTS use [-20, 2]).
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        act: str = "relu",
        log_std_bounds: tuple[float, float] = (-20.0, 2.0),
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_bounds
        self.net = mlp(observation_dim, hidden, 2 * action_dim, act)

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """``observation [*B, obs_dim] -> (mu, log_std)``, each ``[*B, action_dim]``."""
        mu, log_std = self.net(observation).chunk(2, dim=-1)
        return mu, log_std.clamp(self.log_std_min, self.log_std_max)

    def squash(self, observation: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Action and log-probability for given standard-normal ``noise`` (reparameterised).

        ``log pi(a|s) = sum_i [log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2)]`` with
        ``u = mu + sigma * xi`` (Haarnoja et al. 2018, Eq. 21), using the stable identity
        ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``.
        Shapes: ``[*B, obs_dim], [*B, A] -> [*B, A], [*B]``.
        """
        mu, log_std = self(observation)
        u = mu + log_std.exp() * noise
        log_prob = -(0.5 * noise.square() + log_std + _HALF_LOG_2PI)
        log_prob = log_prob - 2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))
        return torch.tanh(u), log_prob.sum(-1)

    def sample(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """A reparameterised sample ``a ~ pi(.|s)`` and its log-probability ``[*B]``."""
        noise = torch.randn(*observation.shape[:-1], self.action_dim, device=observation.device, dtype=observation.dtype)
        return self.squash(observation, noise)

    def mode(self, observation: Tensor) -> Tensor:
        """The deterministic (mean) action ``tanh(mu(s))`` used for evaluation."""
        return torch.tanh(self(observation)[0])
