"""The world model of MBPO (Janner et al. 2019, Section 4.1; REFERENCE 1.3), no Lightning imports.

``EnsembleDynamics``: the world-model verbs the algorithms use (``step``, ``rollout``) over a
``GaussianEnsemble`` (``lightning_mbrl.models.ensemble``) whose targets are
``[reward, next_obs - obs]``. Rollouts say whether they are differentiable:
``differentiable=False`` (MBPO) runs under ``torch.no_grad()``; ``differentiable=True`` (MAAC, OMD)
keeps the graph to observations, actions, policy and model parameters through reparameterised
noise.

Fitting lives in ``lightning_mbrl.models.model_training``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from lightning_mbrl import keys
from lightning_mbrl.errors import require_positive
from lightning_mbrl.models.ensemble import GaussianEnsemble
from lightning_mbrl.models.rollout import model_rollout

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]


class EnsembleDynamics(nn.Module):
    """Learned dynamics ``(s, a) -> (s', r, terminated)`` over a ``GaussianEnsemble`` (MBPO's model
    and ``FakeEnv``), the world model of MBPO, MAAC, OMD and the BOOTS planner.

    Inputs are ``concat(obs, action)``; targets are ``concat(reward, next_obs - obs)`` (not
    normalised, as MBPO), plus a Bernoulli logit column for ``terminated`` when
    ``learn_termination=True`` (trained with binary cross-entropy, ``n_logits=1``; predicted
    terminated iff logit > 0). Termination otherwise comes from ``termination_fn(obs, action,
    next_obs) -> bool [N]`` (MBPO's hand-written functions) or is never.

    ``ensemble`` may be given (its dims must match); else one is built from ``ensemble_kwargs``
    (``GaussianEnsemble``'s arguments; MBPO's defaults).
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        ensemble: GaussianEnsemble | None = None,
        *,
        termination_fn: TerminationFn | None = None,
        learn_termination: bool = False,
        **ensemble_kwargs: Any,
    ) -> None:
        super().__init__()
        require_positive("observation_dim", observation_dim)
        require_positive("action_dim", action_dim)
        if termination_fn is not None and learn_termination:
            raise ValueError("learn_termination must be False when a termination_fn is given")
        out_dim = 1 + observation_dim + int(learn_termination)
        if ensemble is None:
            ensemble = GaussianEnsemble(
                observation_dim + action_dim, out_dim, n_logits=int(learn_termination), **ensemble_kwargs
            )
        elif ensemble_kwargs:
            raise ValueError(f"ensemble_kwargs ({sorted(ensemble_kwargs)}) cannot be combined with an ensemble")
        if ensemble.in_dim != observation_dim + action_dim or ensemble.out_dim != out_dim:
            raise ValueError(
                f"ensemble must map {observation_dim + action_dim} inputs to {out_dim} outputs, "
                f"got {ensemble.in_dim} -> {ensemble.out_dim}"
            )
        if ensemble.n_logits != int(learn_termination):
            raise ValueError(
                f"ensemble.n_logits must be {int(learn_termination)} for learn_termination={learn_termination}"
            )
        self.observation_dim, self.action_dim = observation_dim, action_dim
        self.learn_termination = learn_termination
        self.termination_fn = termination_fn
        self.ensemble = ensemble

    # ------------------------------------------------------------------------------ data
    def make_inputs(self, obs: Tensor, action: Tensor) -> Tensor:
        """``[*B, obs_dim], [*B, A] -> [*B, obs_dim + A]``."""
        return torch.cat([obs, action], dim=-1)

    def make_targets(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminated: Tensor | None = None
    ) -> Tensor:
        """``concat(reward, next_obs - obs[, terminated])``: ``[*B, 1 + obs_dim (+1)]``.

        ``reward`` and ``terminated`` may be ``[*B]`` or ``[*B, 1]``; ``terminated`` is required
        (and only used) with ``learn_termination``. ``action`` is accepted for symmetry."""
        batch = obs.shape[:-1]
        parts = [reward.reshape(*batch, 1).to(obs.dtype), next_obs - obs]
        if self.learn_termination:
            if terminated is None:
                raise ValueError("terminated is required with learn_termination=True")
            parts.append(terminated.reshape(*batch, 1).to(obs.dtype))
        return torch.cat(parts, dim=-1)

    def training_data(self, batch: TensorDictBase) -> tuple[Tensor, Tensor]:
        """``(inputs, targets)`` from a transition TensorDict (``lightning_mbrl.keys.TRANSITION_KEYS``)."""
        obs, action = batch[keys.OBSERVATION], batch[keys.ACTION]
        targets = self.make_targets(
            obs, action, batch[keys.REWARD], batch[keys.NEXT_OBSERVATION], batch[keys.TERMINATED]
        )
        return self.make_inputs(obs, action), targets

    # ------------------------------------------------------------------------------ verbs
    def step(
        self,
        obs: Tensor,
        action: Tensor,
        *,
        mode: str = "sample",
        differentiable: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One model step: ``obs [*B, obs_dim], action [*B, A]`` -> ``next_obs [*B, obs_dim]``,
        ``reward [*B]``, ``terminated bool [*B]``.

        ``mode`` is ``GaussianEnsemble.predict``'s: ``"sample"`` (MBPO: a random elite per sample,
        mean + std * noise), ``"elite_mean"`` (a random elite's mean) or ``"mean"`` (the elites'
        average mean; deterministic). ``next_obs = obs + delta``, ``reward`` the first output.
        ``differentiable=False`` runs under ``torch.no_grad()`` (no graph is built);
        ``differentiable=True`` keeps the graph to ``obs``, ``action`` and the model parameters.
        """
        batch = obs.shape[:-1]
        grad_mode = contextlib.nullcontext() if differentiable else torch.no_grad()
        with grad_mode:
            x = self.make_inputs(obs, action).reshape(-1, self.ensemble.in_dim)
            y, _ = self.ensemble.predict(x, mode=mode, generator=generator)
            return self._outcome(obs, action, y.reshape(*batch, self.ensemble.out_dim))

    def step_members(
        self,
        obs: Tensor,
        action: Tensor,
        *,
        sample: bool = True,
        differentiable: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Every member's prediction of one step (STEVE's candidate targets, MAAC):
        ``obs [*B, obs_dim], action [*B, A]`` -> ``next_obs [E, *B, obs_dim]``, ``reward [E, *B]``,
        ``terminated bool [E, *B]``; member ``e`` (all ``E``, elites or not) predicts alone, exactly
        as ``GaussianEnsemble`` computes it. ``sample=True`` adds each member's own reparameterised
        Gaussian noise (``mu_e + sigma_e * xi``), ``False`` gives the means. Logit columns are never
        noised."""
        batch = obs.shape[:-1]
        grad_mode = contextlib.nullcontext() if differentiable else torch.no_grad()
        with grad_mode:
            x = self.make_inputs(obs, action).reshape(-1, self.ensemble.in_dim)
            mean, logvar = self.ensemble(x)  # [E, N, out], [E, N, n_gaussian]
            if sample:
                g = self.ensemble.n_gaussian
                noise = torch.randn(logvar.shape, generator=generator, device=x.device, dtype=x.dtype)
                mean = torch.cat([mean[..., :g] + (0.5 * logvar).exp() * noise, mean[..., g:]], dim=-1)
            y = mean.reshape(self.ensemble.n_members, *batch, self.ensemble.out_dim)
            members_obs = obs.expand(self.ensemble.n_members, *obs.shape)
            members_action = action.expand(self.ensemble.n_members, *action.shape)
            return self._outcome(members_obs, members_action, y)

    def _outcome(self, obs: Tensor, action: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Predicted targets ``y [*B, out]`` -> ``(next_obs = obs + delta, reward, terminated)``."""
        batch = obs.shape[:-1]
        reward = y[..., 0]
        next_obs = obs + y[..., 1 : 1 + self.observation_dim]
        if self.termination_fn is not None:
            flat = self.termination_fn(obs.reshape(-1, obs.shape[-1]), action.reshape(-1, action.shape[-1]),
                                       next_obs.reshape(-1, next_obs.shape[-1]))
            terminated = flat.reshape(batch).bool()
        elif self.learn_termination:
            terminated = y[..., -1] > 0
        else:
            terminated = torch.zeros(batch, dtype=torch.bool, device=obs.device)
        return next_obs, reward, terminated

    def rollout(
        self,
        start_obs: Tensor,
        policy: Callable[[Tensor], Tensor | tuple[Tensor, Tensor]],
        horizon: int,
        *,
        mode: str = "sample",
        differentiable: bool = False,
        generator: torch.Generator | None = None,
    ) -> TensorDict:
        """``horizon`` steps of ``step(mode=mode)`` from ``start_obs [N, obs_dim]`` under ``policy``:
        a TensorDict ``[horizon, N]`` with a termination ``mask``, see ``models.rollout.model_rollout``.
        MBPO keeps ``td[td["mask"].squeeze(-1)]``, the transitions before termination."""
        return model_rollout(
            functools.partial(self.step, mode=mode, generator=generator), start_obs, policy, horizon,
            differentiable=differentiable,
        )
