"""The deterministic world model of SLBO (Luo et al. 2019) used by MBSAC and BOOTS (REFERENCE 2.1).

One network, no ensemble: ``Linear(norm(s) ++ clip(a), n_units) -> ReLU -> n_blocks Fixup residual
blocks -> Linear(obs_dim)``, predicting the *normalised* state change. Rewards come from the task's
known reward function on ``(s, a, s')``, as in the BOOTS code; termination from a known termination
function or never. No Lightning imports.

Loss (SLBO, one step): the batch mean of the non-squared l2 norm of the normalised error,

    L = mean_b sqrt( mean_d ((s'_hat - s')_d / std(delta)_d)^2 )  +  wd * sum_W ||W||^2 / 2,

with ``std(delta)`` from a running normaliser of ``s' - s`` (``wd`` = 1e-5 in the code).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl.errors import require_non_negative, require_positive
from lightning_mbrl.models.normalizer import RunningNormalizer
from lightning_mbrl.models.rollout import model_rollout
from lightning_mbrl.models.utils import truncated_normal_
from lightning_mbrl.models.world_model import TerminationFn

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]


class FixupBlock(nn.Module):
    """Fixup residual block (Zhang et al. 2019) of two linear layers, as SLBO uses:

        y = relu(x + scale * W2(relu(W1(x + b1) + b2) + b3) + b4)

    with scalar biases ``b1..b4`` and ``scale``. Fixup initialisation for ``n_blocks`` blocks of two
    layers: ``W1`` He-normal times ``n_blocks ** -1/2``, ``W2 = 0``, biases 0, scale 1 -- so each
    block starts as the identity (after the ReLU) and no normalisation layer is needed.
    """

    def __init__(self, width: int, n_blocks: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.bias = nn.Parameter(torch.zeros(4))
        self.scale = nn.Parameter(torch.ones(()))
        nn.init.normal_(self.fc1.weight, std=math.sqrt(2.0 / width) / math.sqrt(n_blocks))
        nn.init.zeros_(self.fc2.weight)

    def forward(self, x: Tensor) -> Tensor:
        b1, b2, b3, b4 = self.bias
        h = torch.relu(self.fc1(x + b1) + b2)
        return torch.relu(x + self.scale * self.fc2(h + b3) + b4)


class DeterministicDynamics(nn.Module):
    """SLBO's dynamics model with the verbs of ``EnsembleDynamics`` (``step``, ``rollout``).

    Shapes: ``obs [*B, obs_dim]``, ``action [*B, A]`` -> ``next_obs [*B, obs_dim]``; rewards ``[*B]``.
    ``update_normalizers(obs, next_obs)`` must see the real data (it is what the network's inputs
    and targets are normalised by); MBSAC feeds it every collected frame.
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        n_units: int = 200,
        n_blocks: int = 2,
        *,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None = None,
        weight_decay: float = 1e-5,
        init_std: float = 1e-5,
    ) -> None:
        super().__init__()
        require_positive("n_units", n_units)
        require_non_negative("n_blocks", n_blocks)
        require_non_negative("weight_decay", weight_decay)
        self.observation_dim, self.action_dim = observation_dim, action_dim
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.weight_decay = weight_decay
        self.state_normalizer = RunningNormalizer(observation_dim)
        self.diff_normalizer = RunningNormalizer(observation_dim)
        self.input = nn.Linear(observation_dim + action_dim, n_units)
        self.blocks = nn.Sequential(*(FixupBlock(n_units, n_blocks) for _ in range(n_blocks)))
        self.output = nn.Linear(n_units, observation_dim)
        nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu")
        nn.init.zeros_(self.input.bias)
        truncated_normal_(self.output.weight, init_std)  # starts predicting the mean change
        nn.init.zeros_(self.output.bias)

    # ------------------------------------------------------------------------------ data
    @torch.no_grad()
    def update_normalizers(self, obs: Tensor, next_obs: Tensor) -> None:
        self.state_normalizer.update(obs)
        self.diff_normalizer.update(next_obs - obs)

    def normalized_delta(self, obs: Tensor, action: Tensor) -> Tensor:
        """The network: ``[*B, obs_dim], [*B, A] -> [*B, obs_dim]`` (normalised ``s' - s``)."""
        x = torch.cat([self.state_normalizer(obs), action.clamp(-1.0, 1.0)], dim=-1)
        return self.output(self.blocks(torch.relu(self.input(x))))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        """Predicted next observation ``s + denorm(delta)``."""
        return obs + self.diff_normalizer.denormalize(self.normalized_delta(obs, action))

    def loss(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> TensorDict:
        """SLBO's one-step loss on real transitions (module docstring): ``loss_l2``,
        ``loss_weight_decay``."""
        target = self.diff_normalizer(next_obs - obs)
        error = self.normalized_delta(obs, action) - target
        loss_l2 = error.square().mean(-1).add(1e-12).sqrt().mean()
        weights = [self.input.weight, self.output.weight, *(w for b in self.blocks for w in (b.fc1.weight, b.fc2.weight))]
        decay = 0.5 * self.weight_decay * sum(w.square().sum() for w in weights)
        return TensorDict({"loss_l2": loss_l2, "loss_weight_decay": decay}, batch_size=[])

    # ------------------------------------------------------------------------------ verbs
    def step(
        self, obs: Tensor, action: Tensor, *, mode: str = "mean", differentiable: bool = False, **_: object
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One model step: ``next_obs [*B, obs_dim]``, ``reward [*B]`` (the known reward function on
        the prediction), ``terminated bool [*B]`` (the known termination function, else never).
        The model is deterministic, so ``mode`` is accepted for interface parity and ignored.
        ``differentiable=False`` runs under ``torch.no_grad()``."""
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            next_obs = self(obs, action)
            reward = self.reward_fn(obs, action, next_obs)
            if self.termination_fn is not None:
                terminated = self.termination_fn(obs, action, next_obs).reshape(obs.shape[:-1]).bool()
            else:
                terminated = torch.zeros(obs.shape[:-1], dtype=torch.bool, device=obs.device)
        return next_obs, reward, terminated

    def rollout(
        self, start_obs: Tensor, policy: Callable[[Tensor], Tensor], horizon: int, *, differentiable: bool = False
    ) -> TensorDict:
        """``horizon`` model steps under ``policy``: see ``models.rollout.model_rollout``."""
        return model_rollout(self.step, start_obs, policy, horizon, differentiable=differentiable)
