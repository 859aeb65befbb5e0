"""The world-model contract in TensorDict form, and rolling any world model forward under a policy.

A world model is an ``nn.Module`` with TorchRL's step convention (``torchrl.envs.EnvBase.step``,
``torchrl.envs.model_based``): ``step(td)`` reads the current step at the root of ``td`` and writes
its outcome under ``"next"``:

    root   observation [*B, D], action [*B, A] (discrete: long [*B]), latent keys (``state_keys``)
    next   observation [*B, D], reward [*B, 1], terminated bool [*B, 1], continue_prob [*B, 1],
           the latent keys' next values

``continue_prob`` is ``P(not terminated)``: a learned termination head's probability (what MAAC
and the gridworld models of paper 001 weigh returns with), ``1 - terminated`` for known or absent
termination. ``step(td, members=True)`` gives every ensemble member's prediction (STEVE, MAAC):
a new TensorDict of batch ``[E, *B]`` (the root entries expanded); ``members=`` a ``long [M]`` tensor
gives those members' only (``[M, *B]``). ``differentiable=False`` runs
under ``torch.no_grad()``; ``differentiable=True`` keeps the graph to the inputs and the model's
parameters (reparameterised noise).

``WorldModel`` implements ``step`` and ``rollout`` once from one method a model writes,
``predict(td, members=..., **options) -> TensorDict`` of the "next" entries, and offers the planners'
tensor form ``transition(obs, action) -> (next_obs [*B, D], reward [*B], terminated bool [*B])``
(observation-space models override it with a direct tensor path). No Lightning imports.
"""

from __future__ import annotations

import abc
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from lightning_mbrl import keys

#: ``obs [N, D] -> action`` or ``(action, log_prob [N])`` (a reparameterised sample and its
#: log-probability, e.g. ``TanhGaussianActor.sample``).
RolloutPolicy = Callable[[Tensor], "Tensor | tuple[Tensor, Tensor]"]


class WorldModel(nn.Module, abc.ABC):
    """Base class of the library's world models: ``step``, ``rollout`` and ``transition`` from
    ``predict``. ``state_keys`` names the latent entries a model carries from step to step (``()``
    for observation-space models)."""

    state_keys: tuple[str, ...] = ()
    n_members: int = 1

    @abc.abstractmethod
    def predict(self, td: TensorDictBase, *, members: bool | Tensor = False, **options: Any) -> TensorDict:
        """The ``"next"`` entries (module docstring) for the root entries of ``td``; batch
        ``[*B]``, or ``[n_members, *B]`` with ``members=True`` (``[M, *B]`` for a ``long [M]`` tensor
        of member indices)."""

    def step(
        self, td: TensorDictBase, *, differentiable: bool = False, members: bool | Tensor = False, **options: Any
    ) -> TensorDictBase:
        """Writes ``td["next"]`` (in place, as TorchRL envs do) and returns ``td``; with
        ``members=True`` (or a tensor of member indices) returns a new TensorDict of batch
        ``[n_members, *B]`` (``[M, *B]``)."""
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            outcome = self.predict(td, members=members, **options)
        if isinstance(members, Tensor) or members:
            td = td.exclude(keys.NEXT).expand(outcome.batch_size)
        td.set(keys.NEXT, outcome)
        return td

    def transition(
        self, obs: Tensor, action: Tensor, *, differentiable: bool = False, **options: Any
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The planners' form of ``step``: ``obs [*B, D], action -> next_obs [*B, D], reward [*B],
        terminated bool [*B]`` (models with latent state cannot be stepped from observations)."""
        if self.state_keys:
            raise TypeError(f"{type(self).__name__} carries latent state {self.state_keys}: use step(td)")
        return _transition_by_step(self, obs, action, differentiable=differentiable, **options)

    def rollout(
        self,
        start: TensorDictBase | Tensor,
        policy: RolloutPolicy,
        horizon: int,
        *,
        differentiable: bool = False,
        **options: Any,
    ) -> TensorDict:
        """``horizon`` steps from ``start`` (a TensorDict with ``observation`` and the latent keys,
        or an observation tensor ``[N, D]``) under ``policy``: see ``model_rollout``."""
        return model_rollout(self, start, policy, horizon, differentiable=differentiable, **options)


def model_rollout(
    model: WorldModel,
    start: TensorDictBase | Tensor,
    policy: RolloutPolicy,
    horizon: int,
    *,
    differentiable: bool = False,
    **options: Any,
) -> TensorDict:
    """``horizon`` calls of ``model.step(td, **options)`` with ``action = policy(observation)``.

    Returns a TensorDict of batch ``[horizon, *B]``: the root entries of each step (``observation``,
    ``action``, the latent keys, and ``action_log_prob [horizon, *B, 1]`` when ``policy`` returns
    ``(action, log_prob)``: MAAC's entropy bonus along the path) and its ``"next"`` entries. The
    tensor stays rectangular: a terminated rollout keeps being stepped from its last prediction;
    ``objectives.returns.alive_mask(td["next", "terminated"])`` marks the steps before termination
    (the terminating step included), ``discounted_return`` sums it.

    ``differentiable=False`` runs the whole rollout, policy included, under ``torch.no_grad()``;
    ``differentiable=True`` keeps the graph through the policy and the model (pathwise, MAAC).
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    if isinstance(start, Tensor):
        start = TensorDict({keys.OBSERVATION: start}, batch_size=start.shape[:-1])
    carried = (keys.OBSERVATION, *model.state_keys)
    steps = []
    with contextlib.nullcontext() if differentiable else torch.no_grad():
        td = start.select(*carried)
        for _ in range(horizon):
            action = policy(td.get(keys.OBSERVATION))
            if isinstance(action, tuple):
                action, log_prob = action
                td.set(keys.ACTION_LOG_PROB, log_prob.unsqueeze(-1))
            td.set(keys.ACTION, action)
            td = model.step(td, differentiable=differentiable, **options)
            steps.append(td)
            td = td.get(keys.NEXT).select(*carried)
    return torch.stack(steps, dim=0)


def transition_of(model: Any) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """The planners' tensor form of any world model: its own ``transition`` (the library's models),
    else ``step(td)`` wrapped (a model that only follows ``protocols.WorldModel``)."""
    if hasattr(model, "transition"):
        return model.transition
    return functools.partial(_transition_by_step, model)


def _transition_by_step(model: Any, obs: Tensor, action: Tensor, **options: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``model.step`` on ``(obs, action)`` as ``(next_obs, reward [*B], terminated [*B])``."""
    td = TensorDict({keys.OBSERVATION: obs, keys.ACTION: action}, batch_size=obs.shape[:-1])
    nxt = model.step(td, **options).get(keys.NEXT)
    return nxt.get(keys.OBSERVATION), nxt.get("reward").squeeze(-1), nxt.get("terminated").squeeze(-1)
