"""T0: MAAC's losses (paper 004; objectives/maac.py): the pathwise actor gradient against finite
differences, H = 0 against SAC's actor loss, the routing of every term, and STEVE's targets against a
loop over members, critics and horizons written out by hand."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.world_model import EnsembleDynamics
from lightning_mbrl.objectives.maac import inverse_variance_weights, pathwise_actor_loss, steve_target
from lightning_mbrl.objectives.sac import actor_loss

OBS, ACT, N = 3, 2, 6
F64 = torch.float64


def make_parts(seed: int = 0, **model_kwargs):
    torch.manual_seed(seed)
    wm = EnsembleDynamics(OBS, ACT, n_members=4, n_elites=3, hidden=(16, 16), weight_decays=(0, 0, 0),
                          **model_kwargs).double()
    with torch.no_grad():
        wm.ensemble.fit_normalizer(torch.randn(64, OBS + ACT, dtype=F64))
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    critic = EnsembleQ(OBS, ACT, (8,), n_critics=2).double()
    return wm, actor, critic


def known_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    return next_obs[:, 0] - obs[:, 0] - 0.1 * action.square().sum(-1)


def objective(actor, wm, critic, start, horizon, seed=5, **kwargs):
    torch.manual_seed(seed)  # the same policy and model noise at every evaluation
    losses, _ = pathwise_actor_loss(start, actor, wm, critic, torch.tensor(0.2, dtype=F64), horizon=horizon,
                                    gamma=0.9, mode="sample", **kwargs)
    return losses["loss_actor"]


@pytest.mark.parametrize("horizon", [1, 3])
def test_the_pathwise_actor_gradient_matches_finite_differences(horizon: int):
    done = lambda o, a, nxt: nxt[:, 1] > 1.0  # noqa: E731 -- some paths terminate
    wm, actor, critic = make_parts(termination_fn=done)
    start = torch.randn(N, OBS, dtype=F64)
    params = list(actor.parameters())
    loss = objective(actor, wm, critic, start, horizon, reward_fn=known_reward)
    grads = torch.autograd.grad(loss, params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads):
            for index in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
                p[index] += eps
                up = objective(actor, wm, critic, start, horizon, reward_fn=known_reward)
                p[index] -= 2 * eps
                down = objective(actor, wm, critic, start, horizon, reward_fn=known_reward)
                p[index] += eps
                torch.testing.assert_close(g[index], (up - down) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_horizon_zero_with_one_action_is_sacs_actor_loss():
    wm, actor, critic = make_parts()
    start = torch.randn(N, OBS, dtype=F64)
    alpha = torch.tensor(0.2, dtype=F64)
    torch.manual_seed(3)
    maac, _ = pathwise_actor_loss(start, actor, wm, critic, alpha, horizon=0, gamma=0.9, n_value_actions=1)
    maac_grads = torch.autograd.grad(maac["loss_actor"], list(actor.parameters()))
    torch.manual_seed(3)
    sac, _ = actor_loss(start, actor, critic, alpha)
    sac_grads = torch.autograd.grad(sac["loss_actor"], list(actor.parameters()))
    torch.testing.assert_close(maac["loss_actor"], sac["loss_actor"], rtol=0, atol=0)
    for a, b in zip(maac_grads, sac_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_actor_loss_reaches_only_the_actor():
    wm, actor, critic = make_parts()
    alpha = torch.tensor(0.2, dtype=F64, requires_grad=True)
    losses, log_prob = pathwise_actor_loss(torch.randn(N, OBS, dtype=F64), actor, wm, critic, alpha, horizon=3,
                                           gamma=0.99, reward_fn=known_reward)
    losses["loss_actor"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())
    assert all(p.grad is None for p in [*critic.parameters(), *wm.parameters()]) and alpha.grad is None
    assert all(p.requires_grad for p in [*critic.parameters(), *wm.parameters()])  # unfrozen afterwards
    assert log_prob.shape == (N,) and log_prob.requires_grad


def test_inverse_variance_weights_by_hand():
    variances = torch.tensor([[1.0, 0.0], [3.0, 1.0], [1.5, 1.0]], dtype=F64)  # [H + 1 = 3, N = 2]
    weights = inverse_variance_weights(variances)
    # column 0: 1/1, 1/3, 1/1.5 = 1, 1/3, 2/3 -> / 2
    torch.testing.assert_close(weights[:, 0], torch.tensor([0.5, 1 / 6, 1 / 3], dtype=F64))
    # column 1: a zero variance takes (almost) all the weight
    assert weights[0, 1] > 1 - 1e-6 and torch.allclose(weights.sum(0), torch.ones(2, dtype=F64))


class DeterministicPolicy(nn.Module):
    """``sample`` without noise, so that STEVE's candidates can be recomputed by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(OBS, ACT).double()

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return torch.tanh(self.linear(obs)), -0.5 * obs.square().sum(-1)


def member_alone(wm: EnsembleDynamics, e: int) -> EnsembleDynamics:
    alone = copy.deepcopy(wm)
    state = alone.state_dict()
    for name, value in list(state.items()):
        if ".layers." in name:
            state[name] = value[e : e + 1]
    alone.ensemble = type(wm.ensemble)(OBS + ACT, 1 + OBS, n_members=1, n_elites=1, hidden=(16, 16),
                                       weight_decays=(0, 0, 0)).double()
    state["ensemble.elites"] = torch.zeros(1, dtype=torch.long)
    alone.load_state_dict(state)
    alone.n_members = 1
    return alone


@pytest.mark.parametrize("horizon, draws_seed", [(0, 4), (1, 4), (2, 4), (2, 0), (2, 1), (2, 2), (2, 3)])
def test_steve_targets_equal_the_candidates_written_out_by_hand(horizon: int, draws_seed: int):
    """Several draws of the used members: STEVE steps only the members still needed (those used at
    this horizon or a later one), so the draws decide which paths are kept between the steps."""
    done = lambda o, a, nxt: nxt[:, 2] > 0.8  # noqa: E731
    wm, _, critic = make_parts(termination_fn=done)
    torch.manual_seed(1)
    policy = DeterministicPolicy()
    reward, next_obs = torch.randn(N, dtype=F64), torch.randn(N, OBS, dtype=F64)
    terminated = torch.tensor([False, True, False, False, False, True])
    alpha, gamma = torch.tensor(0.3, dtype=F64), 0.9
    out = steve_target(reward, terminated, next_obs, policy, wm, critic, alpha, gamma=gamma, horizon=horizon,
                       reward_fn=known_reward, generator=torch.Generator().manual_seed(draws_seed), mode="mean")

    def soft_v(s: Tensor) -> Tensor:  # [J, N]
        a, lp = policy.sample(s)
        return critic(s, a) - alpha * lp

    boot = gamma * (1 - terminated.double())
    expected_means, expected_vars = [], []
    cands0 = reward + boot * soft_v(next_obs)
    expected_means.append(cands0.mean(0))
    expected_vars.append(cands0.var(0, unbiased=False))
    draws = torch.Generator().manual_seed(draws_seed)
    alone = [member_alone(wm, e) for e in range(4)]
    for h in range(1, horizon + 1):
        used = torch.randperm(4, generator=draws)[:2].tolist()
        cands = []
        for e in used:
            s, total, alive = next_obs, torch.zeros(N, dtype=F64), torch.ones(N, dtype=torch.bool)
            for i in range(h):
                a, lp = policy.sample(s)
                nxt, _, d = alone[e].transition(s, a, mode="mean")
                total = total + gamma**i * torch.where(alive, known_reward(s, a, nxt) - alpha * lp, 0.0)
                alive = alive & ~d
                s = nxt
            cands.append(reward + boot * (total + gamma**h * torch.where(alive, soft_v(s), 0.0)))  # [J, N]
        cands = torch.stack(cands)
        expected_means.append(cands.mean(dim=(0, 1)))
        expected_vars.append(cands.var(dim=(0, 1), unbiased=False))
    means, variances = torch.stack(expected_means), torch.stack(expected_vars)
    torch.testing.assert_close(out["means"].T, means)
    torch.testing.assert_close(out["variances"].T, variances)
    weights = (1 / (variances + 1e-8)) / (1 / (variances + 1e-8)).sum(0)
    torch.testing.assert_close(out["target"], (weights * means).sum(0))
    if horizon:
        assert not torch.allclose(out["target"], means[0])  # the model horizons count


def test_the_actor_objective_value_is_the_masked_discounted_sum_written_out_by_hand():
    done = lambda o, a, nxt: nxt[:, 1] > 0.0  # noqa: E731 -- about half the paths end early
    wm, _, critic = make_parts(termination_fn=done)
    torch.manual_seed(2)
    policy = DeterministicPolicy()
    start = torch.randn(N, OBS, dtype=F64)
    alpha, gamma, horizon = torch.tensor(0.3, dtype=F64), 0.9, 3
    losses, log_prob0 = pathwise_actor_loss(start, policy, wm, critic, alpha, horizon=horizon, gamma=gamma,
                                            reward_fn=known_reward, mode="mean")
    s, total, alive, ended = start, torch.zeros(N, dtype=F64), torch.ones(N, dtype=torch.bool), []
    for t in range(horizon):
        a, _ = policy.sample(s)
        nxt, _, d = wm.transition(s, a, mode="mean")
        total = total + gamma**t * torch.where(alive, known_reward(s, a, nxt), 0.0)
        alive = alive & ~d
        ended.append(~alive)
        s = nxt
    value = critic(s, policy.sample(s)[0]).min(0).values
    expected = total + gamma**horizon * torch.where(alive, value, 0.0) - alpha * policy.sample(start)[1]
    assert ended[-1].any() and not ended[0].all()  # the masks are exercised
    torch.testing.assert_close(losses["loss_actor"], -expected.mean())
    torch.testing.assert_close(log_prob0, policy.sample(start)[1])
