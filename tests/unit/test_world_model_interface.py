"""T0: what the world model offers the algorithms still to come (MAAC's pathwise gradient and
STEVE targets): every member's prediction of a step, each equal to that member run alone, and a
differentiable rollout that records the policy's log-probabilities, whose gradient with respect to
the policy's parameters matches finite differences."""

from __future__ import annotations

import copy

import torch
from torch import nn

from lightning_mbrl import keys
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.world_model import EnsembleDynamics

OBS, ACT, N = 3, 2, 5
F64 = torch.float64


def make_dynamics(seed: int = 0, **kwargs) -> EnsembleDynamics:
    torch.manual_seed(seed)
    wm = EnsembleDynamics(OBS, ACT, n_members=4, n_elites=2, hidden=(16, 16), weight_decays=(0, 0, 0), **kwargs)
    wm = wm.double()
    with torch.no_grad():  # a non-trivial normaliser
        wm.ensemble.fit_normalizer(torch.randn(64, OBS + ACT, dtype=F64) * 2 + 1)
    return wm


def member_alone(wm: EnsembleDynamics, e: int) -> EnsembleDynamics:
    """A one-member model holding member ``e``'s weights (and the same normaliser and bounds)."""
    alone = EnsembleDynamics(OBS, ACT, n_members=1, n_elites=1, hidden=(16, 16), weight_decays=(0, 0, 0),
                             termination_fn=wm.termination_fn, learn_termination=wm.learn_termination).double()
    state = copy.deepcopy(wm.state_dict())
    for name, value in list(state.items()):
        if ".layers." in name:
            state[name] = value[e : e + 1]
    state["ensemble.elites"] = torch.zeros(1, dtype=torch.long)
    alone.load_state_dict(state)
    return alone


def test_per_member_predictions_equal_each_member_run_alone():
    done = lambda obs, act, nxt: nxt[..., 0] > 0.3  # noqa: E731 -- a known termination on the prediction
    wm = make_dynamics(termination_fn=done)
    obs, action = torch.randn(N, OBS, dtype=F64), torch.rand(N, ACT, dtype=F64) * 2 - 1
    next_obs, reward, terminated = wm.step_members(obs, action, sample=False)
    assert next_obs.shape == (4, N, OBS) and reward.shape == terminated.shape == (4, N)
    for e in range(4):
        alone = member_alone(wm, e)
        expected = alone.step(obs, action, mode="mean")
        torch.testing.assert_close(next_obs[e], expected[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(reward[e], expected[1], rtol=0, atol=1e-12)
        assert torch.equal(terminated[e], expected[2])
        # sampling: member e's mean plus its own sigma times the noise
        torch.manual_seed(7)
        sampled = wm.step_members(obs, action, sample=True)[1]
        torch.manual_seed(7)
        noise = torch.randn(4, N, 1 + OBS, dtype=F64)
        mean, logvar = alone.ensemble(alone.make_inputs(obs, action))
        torch.testing.assert_close(sampled[e], mean[0, :, 0] + (0.5 * logvar[0, :, 0]).exp() * noise[e, :, 0])
    assert terminated.any() and not terminated.all()  # the test sees both outcomes


def rollout_objective(wm: EnsembleDynamics, actor: TanhGaussianActor, start: torch.Tensor, seed: int = 3):
    """MAAC's shape of objective: sum of rewards minus 0.1 log pi along a 3-step sampled rollout."""
    torch.manual_seed(seed)
    td = wm.rollout(start, actor.sample, 3, mode="sample", differentiable=True)
    return (td[keys.REWARD] - 0.1 * td[keys.ACTION_LOG_PROB]).sum(), td


def test_differentiable_rollout_records_log_probs_and_its_policy_gradient_matches_finite_differences():
    wm = make_dynamics()
    torch.manual_seed(1)
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    start = torch.randn(N, OBS, dtype=F64)
    value, td = rollout_objective(wm, actor, start)
    assert td[keys.ACTION_LOG_PROB].shape == (3, N, 1) and td[keys.ACTION_LOG_PROB].requires_grad
    params = [p for p in actor.parameters()]
    grads = torch.autograd.grad(value, params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads):
            for index in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
                p[index] += eps
                up = rollout_objective(wm, actor, start)[0]
                p[index] -= 2 * eps
                down = rollout_objective(wm, actor, start)[0]
                p[index] += eps
                torch.testing.assert_close(g[index], (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)
    # the model's parameters are on the path too (MAAC leaves them out of its optimizer, not the graph)
    assert all(p.grad is None for p in wm.parameters())


def test_a_non_differentiable_rollout_builds_no_graph_and_plain_policies_record_no_log_prob():
    wm = make_dynamics()
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    td = wm.rollout(torch.randn(N, OBS, dtype=F64), actor.sample, 2, differentiable=False)
    assert not td[keys.REWARD].requires_grad and not td[keys.ACTION_LOG_PROB].requires_grad
    td = wm.rollout(torch.randn(N, OBS, dtype=F64), actor.mode, 2)
    assert keys.ACTION_LOG_PROB not in td.keys()
