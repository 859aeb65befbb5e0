"""MAAC's losses (Clavera, Fu and Abbeel 2020, "Model-Augmented Actor-Critic: Backpropagating through
Paths", paper 004; the official code's estimator, REFERENCE 5.1). Pure functions, no Lightning.

Actor (paper Eq. 4): from real start states ``s_0``, ``H`` steps of the reparameterised policy through
the learned model (``world_model.rollout(differentiable=True)``: a random member per sample in
``mode="sample"``), rewards ``r_t = r(s_t, a_t, s_{t+1})`` from the task's known reward function on the
predictions (or the model's own reward), done masks from the model's termination, and

    J(s_0) = sum_{t<H} gamma^t m_t r_t + gamma^H m_H mean_{k<K} min_j Q_j(s_H, a_H^k) - alpha log pi(a_0|s_0),
    a_H^k ~ pi(.|s_H)  (K = ``n_value_actions``, 5 in the code)

``loss_actor = -mean J``; the gradient is the pathwise one into the policy's parameters only: the
model and the critics are ``frozen`` (named stop-gradients; the graph goes through them). ``H = 0``:
``J = mean_k [min_j Q_j(s_0, a_0^k) - alpha log pi(a_0^k|s_0)]``, SAC's actor objective (``K = 1``: the
same value and gradient as ``objectives.sac.actor_loss``).

Critic: STEVE targets (Buckman et al. 2018) as the code uses them: for a real transition
``(s, a, r, d, s')`` and horizons ``h = 0..H_c`` the soft ``h``-step targets

    T_h = r + gamma (1 - d) [ sum_{i<h} gamma^i m_i (r'_i - alpha log pi(a'_i|s'_i))
                              + gamma^h m_h (Q_j(s'_h, a'_h) - alpha log pi(a'_h|s'_h)) ],   s'_0 = s'

computed for each critic ``j`` of the target twin (STEVE's Q ensemble) and, for ``h >= 1``, each model
member ``e`` continuing its own trajectory (``step(members=...)``); per horizon a random
``round(used_ratio * E)`` of the members are the candidates (the code: 4 of 8). Candidates of horizon
``h`` have mean ``mu_h`` and variance ``var_h`` (over members and critics); the target is
``sum_h w_h mu_h`` with ``w_h ∝ 1 / (var_h + 1e-8)`` normalised over horizons (inverse-variance
weighting). ``h = 0`` has only the critics' spread. Everything is a constant of the critic loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.rollout import WorldModel
from lightning_mbrl.models.utils import frozen
from lightning_mbrl.objectives.returns import discounted_return

#: ``(obs [N, D], action [N, A], next_obs [N, D]) -> reward [N]``: the task's known reward.
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


def _known_reward(reward_fn: RewardFn, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """``reward_fn`` on any batch shape ``[*B, D]`` -> ``[*B]``."""
    return reward_fn(_flat(obs), _flat(action), _flat(next_obs)).reshape(obs.shape[:-1])


def soft_value(obs: Tensor, actor: TanhGaussianActor, critic: EnsembleQ, alpha: Tensor, n_actions: int = 1,
               reduce_critics: bool = True) -> Tensor:
    """``mean_{k<K} [Q(s, a^k) - alpha log pi(a^k|s)]``, ``a^k ~ pi(.|s)``, for ``obs [*B, D]``.
    ``reduce_critics``: ``min_j Q_j`` -> ``[*B]``; else every critic's -> ``[n_critics, *B]``."""
    batch = obs.shape[:-1]
    tiled = obs.expand(n_actions, *obs.shape)
    action, log_prob = actor.sample(_flat(tiled))
    q = critic(_flat(tiled), action)  # [J, K * B]
    if reduce_critics:
        q = q.min(dim=0).values
    value = (q - alpha * log_prob).reshape(*q.shape[:-1], n_actions, *batch)
    return value.mean(dim=-1 - len(batch))


def pathwise_actor_loss(
    observation: Tensor,
    actor: TanhGaussianActor,
    world_model: WorldModel,
    critic: EnsembleQ,
    alpha: Tensor,
    *,
    horizon: int,
    gamma: float,
    n_value_actions: int = 5,
    reward_fn: RewardFn | None = None,
    **model_options,
) -> tuple[TensorDict, Tensor]:
    """MAAC's actor loss (module docstring) for real start states ``observation [N, D]``.

    ``reward_fn`` (``None``: the model's predicted reward) is applied to the predictions;
    ``model_options`` go to every model step (``mode="sample"``, ``generator``). Returns the loss
    TensorDict (``loss_actor``, ``entropy``, ``model_return`` the mean of the masked reward sum) and the
    graph-carrying ``log pi(a_0|s_0) [N]`` (the temperature loss uses it detached). Reaches the actor's
    parameters only.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 0:
        raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
    alpha = alpha.detach()
    with frozen(critic), frozen(world_model) if isinstance(world_model, torch.nn.Module) else contextlib.nullcontext():
        if horizon == 0:
            tiled = observation.expand(n_value_actions, *observation.shape)
            action, log_prob = actor.sample(_flat(tiled))
            q = critic(_flat(tiled), action).min(dim=0).values
            log_prob0 = log_prob.reshape(n_value_actions, -1).mean(0)
            objective = (q - alpha * log_prob).reshape(n_value_actions, -1).mean(0)
            model_return = torch.zeros((), dtype=observation.dtype, device=observation.device)
        else:
            td = world_model.rollout(observation, actor.sample, horizon, differentiable=True, **model_options)
            reward = td.get(keys.REWARD).squeeze(-1)
            if reward_fn is not None:
                reward = _known_reward(reward_fn, td.get(keys.OBSERVATION), td.get(keys.ACTION),
                                       td.get(keys.NEXT_OBSERVATION))
            terminated = td.get(keys.TERMINATED).squeeze(-1)
            last = td.get(keys.NEXT_OBSERVATION)[-1]
            tiled = last.expand(n_value_actions, *last.shape)
            value = critic(_flat(tiled), actor.sample(_flat(tiled))[0]).min(dim=0).values
            value = value.reshape(n_value_actions, -1).mean(0)
            log_prob0 = td.get(keys.ACTION_LOG_PROB)[0].squeeze(-1)
            ret = discounted_return(reward, terminated, discount=gamma, bootstrap=value)
            objective = ret - alpha * log_prob0
            model_return = discounted_return(reward.detach(), terminated).mean()
    losses = TensorDict(
        {"loss_actor": -objective.mean(), "entropy": -log_prob0.detach().mean(), "model_return": model_return},
        batch_size=[],
    )
    return losses, log_prob0


def inverse_variance_weights(variances: Tensor, eps: float = 1e-8) -> Tensor:
    """``variances [H + 1, *B] -> weights [H + 1, *B]``: ``w_h ∝ 1 / (var_h + eps)``, summing to 1
    over horizons (STEVE)."""
    inverse = 1.0 / (variances + eps)
    return inverse / inverse.sum(dim=0, keepdim=True)


@torch.no_grad()
def steve_target(
    reward: Tensor,
    terminated: Tensor,
    next_observation: Tensor,
    actor: TanhGaussianActor,
    world_model: WorldModel,
    target_critic: EnsembleQ,
    alpha: Tensor,
    *,
    gamma: float,
    horizon: int = 2,
    used_ratio: float = 0.5,
    reward_fn: RewardFn | None = None,
    generator: torch.Generator | None = None,
    **model_options,
) -> TensorDict:
    """STEVE's soft target (module docstring) for real transitions ``reward, terminated [N]``,
    ``next_observation [N, D]``; ``world_model`` must offer ``step(td, members=<long [M]>,
    member_inputs=...)`` (``EnsembleDynamics``). ``generator`` draws the members used per horizon
    (all horizons first; a member is stepped only while some horizon still uses it);
    ``model_options`` go to the model steps (``mode="sample"`` adds each member's noise).

    Returns a TensorDict ``[N]``: ``target``, ``weights [N, H + 1]``, ``means``, ``variances``
    ``[N, H + 1]`` (the candidates' per horizon). No graph.
    """
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 0:
        raise ValueError(f"horizon must be an int >= 0, got {horizon!r}")
    n = reward.shape[0]
    bootstrap = gamma * (1.0 - terminated.to(reward.dtype))
    values = soft_value(next_observation, actor, target_critic, alpha, reduce_critics=False)  # [J, N]
    means = [(reward + bootstrap * values).mean(0)]
    variances = [(reward + bootstrap * values).var(0, unbiased=False)]
    if horizon > 0:
        # The members giving candidates at each horizon, drawn first, so that only the members
        # still needed are stepped: at step h those used at some horizon >= h (6 of 8 on average
        # at h = 1 for 4 of 8 used), and soft values only at the used ones.
        n_members = world_model.n_members
        n_used = max(1, round(used_ratio * n_members))
        used = [torch.randperm(n_members, generator=generator, device=torch.device("cpu"))[:n_used]
                for _ in range(horizon)]
        needed = [torch.unique(torch.cat(used[h:])) for h in range(horizon)]  # sorted member ids
        device = next_observation.device
        state = next_observation
        soft_rewards = terminals = None  # [h, M, N] along the paths of the members in `needed`
        for h in range(1, horizon + 1):
            members = needed[h - 1]
            action, log_prob = actor.sample(state)
            td = TensorDict({keys.OBSERVATION: state, keys.ACTION: action}, batch_size=state.shape[:-1])
            nxt = world_model.step(td, members=members.to(device), member_inputs=h > 1, **model_options).get(keys.NEXT)
            if h == 1:  # the first step branches the members from s'
                log_prob = log_prob.expand(len(members), n)
                state = state.expand(len(members), *state.shape)
                action = action.expand(len(members), *action.shape)
            step_reward = nxt.get("reward").squeeze(-1)
            if reward_fn is not None:
                step_reward = _known_reward(reward_fn, state, action, nxt.get(keys.OBSERVATION))
            step_soft, step_done = (step_reward - alpha * log_prob).unsqueeze(0), nxt.get("terminated").squeeze(-1)
            soft_rewards = step_soft if h == 1 else torch.cat([soft_rewards, step_soft])
            terminals = step_done.unsqueeze(0) if h == 1 else torch.cat([terminals, step_done.unsqueeze(0)])
            state = nxt.get(keys.OBSERVATION)
            at = torch.searchsorted(members, used[h - 1]).to(device)  # the used members' rows
            value = soft_value(state.index_select(0, at), actor, target_critic, alpha, reduce_critics=False)
            n_critics = value.shape[0]  # value [J, n_used, N]
            ret = discounted_return(
                soft_rewards.index_select(1, at).unsqueeze(1).expand(-1, n_critics, -1, -1),
                terminals.index_select(1, at).unsqueeze(1).expand(-1, n_critics, -1, -1),
                discount=gamma, bootstrap=value,
            )  # [J, n_used, N]
            candidates = reward + bootstrap * ret
            means.append(candidates.mean(dim=(0, 1)))
            variances.append(candidates.var(dim=(0, 1), unbiased=False))
            if h < horizon:  # keep the paths of the members still needed
                keep = torch.searchsorted(members, needed[h]).to(device)
                state, soft_rewards, terminals = (state.index_select(0, keep), soft_rewards.index_select(1, keep),
                                                  terminals.index_select(1, keep))
    means_t, variances_t = torch.stack(means), torch.stack(variances)  # [H + 1, N]
    weights = inverse_variance_weights(variances_t)
    return TensorDict(
        {"target": (weights * means_t).sum(0), "weights": weights.T, "means": means_t.T, "variances": variances_t.T},
        batch_size=[n],
    )
