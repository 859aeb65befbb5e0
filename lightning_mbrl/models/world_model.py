"""The world model of MBPO (Janner et al. 2019, Section 4.1; REFERENCE 1.3), no Lightning imports.

``EnsembleDynamics``: the world-model contract (``models.rollout.WorldModel``: ``step(td)``,
``rollout``, ``transition``) over a ``GaussianEnsemble`` (``lightning_mbrl.models.ensemble``) whose
targets are ``[reward, next_obs - obs]`` (MBPO), or ``[reward, next_obs]`` with Bernoulli
observation features (the gridworlds of paper 001). Steps say whether they are differentiable:
``differentiable=False`` (MBPO) runs under ``torch.no_grad()``; ``differentiable=True`` (MAAC, OMD)
keeps the graph to observations, actions, policy and model parameters through reparameterised
noise.

Fitting lives in ``lightning_mbrl.models.model_training``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.errors import ConfigError, require_positive
from lightning_mbrl.models.ensemble import GaussianEnsemble
from lightning_mbrl.models.rollout import WorldModel

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]


class EnsembleDynamics(WorldModel):
    """Learned dynamics ``(s, a) -> (s', r, terminated)`` over a ``GaussianEnsemble`` (MBPO's model
    and ``FakeEnv``), the world model of MBPO, MAAC, OMD and the BOOTS planner.

    Inputs are ``concat(obs, action)`` (``discrete_actions=True``: ``action_dim`` is the number of
    actions, given as ``long [*B]`` and fed one-hot); targets are ``concat(reward, next_obs - obs)``
    (``observation_model="delta"``, not normalised, as MBPO) or ``concat(reward, next_obs)`` with
    ``next_obs`` in ``{0, 1}`` (``"bernoulli"``: logit columns trained with binary cross-entropy),
    plus a Bernoulli logit column for ``terminated`` when ``learn_termination=True`` (predicted
    terminated iff logit > 0, ``continue_prob = sigmoid(-logit)``). Termination otherwise comes from
    ``termination_fn(obs, action, next_obs) -> bool [N]`` (MBPO's hand-written functions) or is
    never. The reward is always learned (a Gaussian column).

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
        observation_model: Literal["delta", "bernoulli"] = "delta",
        discrete_actions: bool = False,
        **ensemble_kwargs: Any,
    ) -> None:
        super().__init__()
        require_positive("observation_dim", observation_dim)
        require_positive("action_dim", action_dim)
        if observation_model not in ("delta", "bernoulli"):
            raise ConfigError(f"observation_model must be one of ['delta', 'bernoulli'], got {observation_model!r}")
        if termination_fn is not None and learn_termination:
            raise ValueError("learn_termination must be False when a termination_fn is given")
        out_dim = 1 + observation_dim + int(learn_termination)
        n_logits = int(learn_termination) + (observation_dim if observation_model == "bernoulli" else 0)
        if ensemble is None:
            ensemble = GaussianEnsemble(observation_dim + action_dim, out_dim, n_logits=n_logits, **ensemble_kwargs)
        elif ensemble_kwargs:
            raise ValueError(f"ensemble_kwargs ({sorted(ensemble_kwargs)}) cannot be combined with an ensemble")
        if ensemble.in_dim != observation_dim + action_dim or ensemble.out_dim != out_dim:
            raise ValueError(
                f"ensemble must map {observation_dim + action_dim} inputs to {out_dim} outputs, "
                f"got {ensemble.in_dim} -> {ensemble.out_dim}"
            )
        if ensemble.n_logits != n_logits:
            raise ValueError(
                f"ensemble.n_logits must be {n_logits} for learn_termination={learn_termination}, "
                f"observation_model={observation_model!r}"
            )
        self.observation_dim, self.action_dim = observation_dim, action_dim
        self.learn_termination = learn_termination
        self.observation_model, self.discrete_actions = observation_model, discrete_actions
        self.termination_fn = termination_fn
        self.ensemble = ensemble
        self.n_members = ensemble.n_members

    # ------------------------------------------------------------------------------ data
    def make_inputs(self, obs: Tensor, action: Tensor) -> Tensor:
        """``[*B, obs_dim], [*B, A] -> [*B, obs_dim + A]`` (discrete: ``long [*B]`` one-hot)."""
        if self.discrete_actions:
            action = F.one_hot(action.long(), self.action_dim).to(obs.dtype)
        return torch.cat([obs, action], dim=-1)

    def make_targets(
        self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminated: Tensor | None = None
    ) -> Tensor:
        """``concat(reward, next_obs - obs[, terminated])``: ``[*B, 1 + obs_dim (+1)]`` (``next_obs``
        itself for Bernoulli observations).

        ``reward`` and ``terminated`` may be ``[*B]`` or ``[*B, 1]``; ``terminated`` is required
        (and only used) with ``learn_termination``. ``action`` is accepted for symmetry."""
        batch = obs.shape[:-1]
        observed = next_obs - obs if self.observation_model == "delta" else next_obs
        parts = [reward.reshape(*batch, 1).to(obs.dtype), observed]
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
    def transition(
        self,
        obs: Tensor,
        action: Tensor,
        *,
        mode: str = "sample",
        differentiable: bool = False,
        generator: torch.Generator | None = None,
        draw: str = "independent",
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One model step in the planners' tensor form: ``obs [*B, obs_dim], action [*B, A]`` (long
        ``[*B]`` with ``discrete_actions``) -> ``next_obs [*B, obs_dim]``, ``reward [*B]``,
        ``terminated bool [*B]``; ``step(td)`` gives the same with ``continue_prob``.

        ``mode`` is ``GaussianEnsemble.predict``'s: ``"sample"`` (MBPO: a random elite per sample,
        mean + std * noise), ``"elite_mean"`` (a random elite's mean) or ``"mean"`` (the elites'
        average mean; deterministic); ``draw`` how the random elites are drawn (``"independent"``
        or ``"stratified"``, ``GaussianEnsemble.predict``). ``differentiable=False`` runs under ``torch.no_grad()`` (no
        graph is built); ``differentiable=True`` keeps the graph to ``obs``, ``action`` and the model
        parameters."""
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            return self._predict(obs, action, mode, generator, draw)[:3]

    def predict(
        self,
        td: TensorDictBase,
        *,
        members: bool | Tensor = False,
        member_inputs: bool = False,
        mode: str = "sample",
        generator: torch.Generator | None = None,
        draw: str = "independent",
    ) -> TensorDict:
        """``step(td)``'s ``"next"`` entries (``models.rollout``): one prediction per row in ``mode``
        (``transition``), or with ``members=True`` every member's (all ``E``, elites or not), each
        exactly as the member alone computes it: ``mode="sample"`` adds each member's own
        reparameterised Gaussian noise ``mu_e + sigma_e * xi``, other modes give the means. Logit
        columns are never noised. ``members`` may also be a ``long [M]`` tensor of member indices:
        only those members, batch ``[M, *B]`` (STEVE computes only the members it uses).
        ``member_inputs=True`` (with ``members``): ``td`` is already ``[M, *B]`` and the ``m``-th
        member predicts from row ``m`` (each member continues its own trajectory, STEVE); the
        result keeps the batch ``[M, *B]``. ``draw``: see ``transition``."""
        obs, action = td.get(keys.OBSERVATION), td.get(keys.ACTION)
        subset = members if isinstance(members, Tensor) else None
        members = subset is not None or bool(members)
        if member_inputs and not members:
            raise ValueError("member_inputs=True needs members=True")
        if members:
            next_obs, reward, terminated, cont = self._predict_members(
                obs, action, mode == "sample", generator, member_inputs, subset)
        else:
            next_obs, reward, terminated, cont = self._predict(obs, action, mode, generator, draw)
        return TensorDict(
            {keys.OBSERVATION: next_obs, "reward": reward.unsqueeze(-1), "terminated": terminated.unsqueeze(-1),
             "continue_prob": cont.unsqueeze(-1)},
            batch_size=next_obs.shape[:-1],
        )

    def _predict(
        self, obs: Tensor, action: Tensor, mode: str, generator: torch.Generator | None, draw: str = "independent"
    ):
        batch = obs.shape[:-1]
        x = self.make_inputs(obs, action).reshape(-1, self.ensemble.in_dim)
        y, _ = self.ensemble.predict(x, mode=mode, generator=generator, draw=draw)
        return self._outcome(obs, action, y.reshape(*batch, self.ensemble.out_dim), mode == "sample", generator)

    def _predict_members(
        self, obs: Tensor, action: Tensor, sample: bool, generator: torch.Generator | None,
        member_inputs: bool = False, subset: Tensor | None = None,
    ):
        n_members = self.ensemble.n_members if subset is None else subset.shape[0]
        if member_inputs:  # [M, *B, D]: the m-th member predicts row m
            if obs.shape[0] != n_members:
                raise ValueError(f"member_inputs: the leading batch dim must be the {n_members} members, "
                                 f"got {tuple(obs.shape)}")
            batch = obs.shape[1:-1]
            x = self.make_inputs(obs, action).reshape(n_members, -1, self.ensemble.in_dim)
        else:  # [*B, D]: every member predicts every row
            batch = obs.shape[:-1]
            x = self.make_inputs(obs, action).reshape(-1, self.ensemble.in_dim)
            obs = obs.expand(n_members, *obs.shape)
            action = action.expand(n_members, *action.shape)
        if subset is None:
            mean, logvar = self.ensemble(x)  # [E, N, out], [E, N, n_gaussian]
        else:
            mean, logvar = self.ensemble.forward_members(x, subset)  # [M, N, *]
        if sample:
            g = self.ensemble.n_gaussian
            noise = torch.randn(logvar.shape, generator=generator, device=x.device, dtype=x.dtype)
            mean = torch.cat([mean[..., :g] + (0.5 * logvar).exp() * noise, mean[..., g:]], dim=-1)
        y = mean.reshape(n_members, *batch, self.ensemble.out_dim)
        return self._outcome(obs, action, y, sample, generator)

    def _outcome(
        self, obs: Tensor, action: Tensor, y: Tensor, sample: bool, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Predicted targets ``y [*B, out]`` -> ``(next_obs, reward, terminated, continue_prob)``.

        ``"delta"`` observations: ``next_obs = obs + delta``. ``"bernoulli"``: the logits' probabilities,
        or with ``sample`` a draw from them (not differentiable)."""
        batch = obs.shape[:-1]
        reward = y[..., 0]
        head = y[..., 1 : 1 + self.observation_dim]
        if self.observation_model == "delta":
            next_obs = obs + head
        else:
            probs = torch.sigmoid(head)
            if sample:
                uniform = torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype)
                next_obs = (uniform < probs).to(probs.dtype)
            else:
                next_obs = probs
        if self.termination_fn is not None:
            flat = self.termination_fn(obs.reshape(-1, obs.shape[-1]), action.reshape(-1, *action.shape[len(batch):]),
                                       next_obs.reshape(-1, next_obs.shape[-1]))
            terminated = flat.reshape(batch).bool()
            cont = (~terminated).to(y.dtype)
        elif self.learn_termination:
            terminated = y[..., -1] > 0
            cont = torch.sigmoid(-y[..., -1])
        else:
            terminated = torch.zeros(batch, dtype=torch.bool, device=obs.device)
            cont = torch.ones(batch, dtype=y.dtype, device=obs.device)
        return next_obs, reward, terminated, cont
