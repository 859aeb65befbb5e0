"""The deterministic world model of SLBO (Luo et al. 2019) used by MBSAC and BOOTS (REFERENCE 2.1).

One network, no ensemble: ``Linear(norm(s) ++ clip(a), n_units) -> ReLU -> n_blocks Fixup residual
blocks -> Linear(obs_dim)``, predicting the *normalised* state change. Rewards come from the task's
known reward function on ``(s, a, s')``, as in the BOOTS code, or from a learned reward head when the
task has none; termination from a known termination function or never. Discrete actions enter the
network one-hot. No Lightning imports.

Loss (SLBO, one step): the batch mean of the non-squared l2 norm of the normalised error,

    L = mean_b sqrt( mean_d ((s'_hat - s')_d / std(delta)_d)^2 )  +  wd * sum_W ||W||^2 / 2,

with ``std(delta)`` from a running normaliser of ``s' - s`` (``wd`` = 1e-5 in the code), plus
``loss_reward = mean_b (r_hat - r)^2`` when the reward is learned.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from lightning_mbrl import keys
from lightning_mbrl.errors import require_non_negative, require_positive
from lightning_mbrl.models.mlp import OutputLinear
from lightning_mbrl.models.normalizer import RunningNormalizer
from lightning_mbrl.models.rollout import WorldModel
from lightning_mbrl.models.utils import truncated_normal_
from lightning_mbrl.models.world_model import TerminationFn
from lightning_mbrl.precision import parameters_changed

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


class DeterministicDynamics(WorldModel):
    """SLBO's dynamics model, a ``models.rollout.WorldModel`` (``step(td)``, ``rollout``,
    ``transition``) of one member.

    Shapes: ``obs [*B, obs_dim]``, ``action [*B, A]`` (``discrete_actions``: ``action_dim`` is the
    number of actions, ``long [*B]``) -> ``next_obs [*B, obs_dim]``; rewards ``[*B]``. ``reward_fn
    = None`` learns the reward with a linear head on the last hidden layer (``loss_reward``).
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
        reward_fn: RewardFn | None,
        termination_fn: TerminationFn | None = None,
        weight_decay: float = 1e-5,
        init_std: float = 1e-5,
        discrete_actions: bool = False,
    ) -> None:
        super().__init__()
        require_positive("n_units", n_units)
        require_non_negative("n_blocks", n_blocks)
        require_non_negative("weight_decay", weight_decay)
        self.observation_dim, self.action_dim, self.discrete_actions = observation_dim, action_dim, discrete_actions
        self.reward_fn, self.termination_fn = reward_fn, termination_fn
        self.weight_decay = weight_decay
        self.state_normalizer = RunningNormalizer(observation_dim)
        self.diff_normalizer = RunningNormalizer(observation_dim)
        self.input = nn.Linear(observation_dim + action_dim, n_units)
        self.blocks = nn.Sequential(*(FixupBlock(n_units, n_blocks) for _ in range(n_blocks)))
        self.output = OutputLinear(n_units, observation_dim)  # fp32 under autocast (models.mlp)
        nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu")
        nn.init.zeros_(self.input.bias)
        truncated_normal_(self.output.weight, init_std)  # starts predicting the mean change
        nn.init.zeros_(self.output.bias)
        self.reward_head = OutputLinear(n_units, 1) if reward_fn is None else None

    # ------------------------------------------------------------------------------ data
    @torch.no_grad()
    def update_normalizers(self, obs: Tensor, next_obs: Tensor) -> None:
        self.state_normalizer.update(obs)
        self.diff_normalizer.update(next_obs - obs)

    def encode_action(self, action: Tensor) -> Tensor:
        """The network's action input: clipped to ``[-1, 1]``, or one-hot for discrete actions."""
        if self.discrete_actions:
            return F.one_hot(action.long(), self.action_dim).to(self.input.weight.dtype)
        return action.clamp(-1.0, 1.0)

    def features(self, obs: Tensor, action: Tensor) -> Tensor:
        """The last hidden layer ``[*B, n_units]``."""
        x = torch.cat([self.state_normalizer(obs), self.encode_action(action)], dim=-1)
        return self.blocks(torch.relu(self.input(x)))

    def normalized_delta(self, obs: Tensor, action: Tensor) -> Tensor:
        """The network: ``[*B, obs_dim], [*B, A] -> [*B, obs_dim]`` (normalised ``s' - s``)."""
        return self.output(self.features(obs, action))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        """Predicted next observation ``s + denorm(delta)``."""
        return obs + self.diff_normalizer.denormalize(self.normalized_delta(obs, action))

    def loss(self, obs: Tensor, action: Tensor, next_obs: Tensor, reward: Tensor | None = None) -> TensorDict:
        """SLBO's one-step loss on real transitions (module docstring): ``loss_l2``,
        ``loss_weight_decay``, and ``loss_reward`` (``reward [*B]`` or ``[*B, 1]`` required) when
        the reward is learned."""
        target = self.diff_normalizer(next_obs - obs)
        hidden = self.features(obs, action)
        error = self.output(hidden) - target
        loss_l2 = error.square().mean(-1).add(1e-12).sqrt().mean()
        weights = [self.input.weight, self.output.weight, *(w for b in self.blocks for w in (b.fc1.weight, b.fc2.weight))]
        if self.reward_head is not None:
            weights.append(self.reward_head.weight)
        decay = 0.5 * self.weight_decay * sum(w.square().sum() for w in weights)
        losses = {"loss_l2": loss_l2, "loss_weight_decay": decay}
        if self.reward_head is not None:
            if reward is None:
                raise ValueError("reward is required: this model learns the reward (reward_fn=None)")
            losses["loss_reward"] = (self.reward_head(hidden).squeeze(-1) - reward.reshape(obs.shape[:-1])).square().mean()
        return TensorDict(losses, batch_size=[])

    # ------------------------------------------------------------------------------ verbs
    def transition(
        self, obs: Tensor, action: Tensor, *, differentiable: bool = False, **_: object
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One model step: ``next_obs [*B, obs_dim]``, ``reward [*B]`` (the known reward function on
        the prediction, on the action as the env takes it, or the learned head), ``terminated bool
        [*B]`` (the known termination function, else never). The model is deterministic: prediction
        options (``mode``) are accepted for interface parity and ignored. ``differentiable=False``
        runs under ``torch.no_grad()``."""
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            return self._predict(obs, action)[:3]

    def predict(self, td: TensorDictBase, *, members: bool = False, **_: object) -> TensorDict:
        """``step(td)``'s ``"next"`` entries (``models.rollout``); ``members=True`` gives the one
        member's, ``[1, *B]``."""
        next_obs, reward, terminated, cont = self._predict(td.get(keys.OBSERVATION), td.get(keys.ACTION))
        out = TensorDict(
            {keys.OBSERVATION: next_obs, "reward": reward.unsqueeze(-1), "terminated": terminated.unsqueeze(-1),
             "continue_prob": cont.unsqueeze(-1)},
            batch_size=next_obs.shape[:-1],
        )
        return out.unsqueeze(0) if members else out

    def _predict(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.reward_head is None:
            next_obs = self(obs, action)
            reward = self.reward_fn(obs, action, next_obs)
        else:
            hidden = self.features(obs, action)
            next_obs = obs + self.diff_normalizer.denormalize(self.output(hidden))
            reward = self.reward_head(hidden).squeeze(-1)
        if self.termination_fn is not None:
            terminated = self.termination_fn(obs, action, next_obs).reshape(obs.shape[:-1]).bool()
            cont = (~terminated).to(next_obs.dtype)
        else:
            terminated = torch.zeros(obs.shape[:-1], dtype=torch.bool, device=obs.device)
            cont = torch.ones(obs.shape[:-1], dtype=next_obs.dtype, device=obs.device)
        return next_obs, reward, terminated, cont


def slbo_losses(model: DeterministicDynamics, batch: TensorDictBase) -> TensorDict:
    """``model.loss`` on a batch of real transitions (``lightning_mbrl.keys.TRANSITION_KEYS``)."""
    reward = batch.get(keys.REWARD) if model.reward_head is not None else None
    return model.loss(batch.get(keys.OBSERVATION), batch.get(keys.ACTION), batch.get(keys.NEXT_OBSERVATION), reward)


#: ``apply(loss, optimizer, max_grad_norm)``: zero, backward, clip and step (``OffPolicyAlgorithm.apply_gradients``
#: averages across ranks first).
ApplyFn = Callable[[Tensor, torch.optim.Optimizer, float], None]


def _apply_locally(loss: Tensor, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    parameters_changed()


def fit_slbo(
    model: DeterministicDynamics,
    optimizer: torch.optim.Optimizer,
    sample: Callable[[int], TensorDictBase],
    steps: int,
    *,
    batch_size: int = 64,
    grad_clip: float = 1000.0,
    apply: ApplyFn | None = None,
    on_step: Callable[[], None] | None = None,
) -> TensorDict | None:
    """``steps`` Adam steps of SLBO's loss (the sum of ``loss_*``) on minibatches ``sample(batch_size)``
    of real transitions, the gradient norm clipped at ``grad_clip`` (SLBO: 64, 1000); MBSAC's model
    step and the planning callbacks' own model. ``apply`` applies each loss (default: this process
    alone); ``on_step()`` after each step. Returns the last step's losses, detached (``None`` if
    ``steps == 0``). The normalisers are the caller's to update (``update_normalizers``)."""
    losses = None
    with torch.enable_grad():
        for _ in range(steps):
            losses = slbo_losses(model, sample(batch_size))
            total = sum(value for name, value in losses.items() if name.startswith("loss_"))
            (apply or _apply_locally)(total, optimizer, grad_clip)
            if on_step is not None:
                on_step()
    return None if losses is None else losses.detach()
