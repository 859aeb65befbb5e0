"""T0: the two-state MDP of OMD's tabular experiment (lightning_mbrl.envs.tabular_omd; paper 003,
Section 4.2, Figures 2-3; REFERENCE 3.3) and the Figure-2 benchmark's entry point.

Oracles: value iteration for the Newton solver; the discounted state occupancy (a power series, no
linear solve) for the closed-form return; central finite differences of ``J(pi_{Q*(theta)})`` (and
of the true Bellman error) for the implicit gradient; the official notebook's pre-computed ``Q*`` and
optimal return; the norm of the flattened concatenation ``(logits / tau, reward)`` for the projection.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lightning_mbrl.envs.tabular_omd import (
    expected_return,
    fit_model,
    initial_parameters,
    mle_loss,
    model_transition,
    omd_return,
    optimal_return,
    parameter_norm,
    policy_value,
    project,
    soft_bellman,
    soft_value_iteration,
    softmax_policy,
    solve_soft_q,
    true_bellman_error,
    two_state_mdp,
)

F64 = torch.float64


def random_model(seed: int, batch: tuple[int, ...] = (), scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*batch, 2, 2, 2, dtype=F64, generator=g),
            torch.randn(*batch, 2, 2, dtype=F64, generator=g))


def test_the_mdp_is_reference_3_3_and_matches_the_notebooks_precomputed_values():
    mdp = two_state_mdp()
    assert mdp.transition.tolist() == [[[0.7, 0.3], [0.2, 0.8]], [[0.99, 0.01], [0.99, 0.01]]]
    assert mdp.reward.tolist() == [[-0.45, -0.1], [0.5, 0.5]]
    assert mdp.initial.tolist() == [0.5, 0.5] and mdp.gamma == 0.9 and mdp.temperature == 0.01
    q = solve_soft_q(mdp.transition, mdp.reward, mdp.gamma, mdp.temperature)
    notebook_q = torch.tensor([[0.16363807, 0.06282009], [1.89091046, 0.66282009]], dtype=F64)
    torch.testing.assert_close(q, notebook_q, rtol=0, atol=1e-7)
    assert abs(float(optimal_return(mdp)) - 1.0272727) < 1e-7  # the notebook's "optimal_value"
    assert abs(float(expected_return(softmax_policy(q, mdp.temperature), mdp)) - 1.0272727) < 1e-4


@pytest.mark.parametrize("temperature", [0.01, 0.5])
def test_newton_solver_matches_value_iteration(temperature):
    mdp = two_state_mdp()
    logits, reward = random_model(0, (4,), scale=0.02)
    transitions = torch.cat([mdp.transition[None], model_transition(logits, 0.01)])
    rewards = torch.cat([mdp.reward[None], reward])
    newton = solve_soft_q(transitions, rewards, 0.9, temperature, tol=1e-12)
    iterated = soft_value_iteration(transitions, rewards, 0.9, temperature, tol=1e-12)
    torch.testing.assert_close(newton, iterated, rtol=0, atol=1e-8)
    residual = soft_bellman(newton, transitions, rewards, 0.9, temperature) - newton
    assert float(residual.abs().max()) <= 1e-12
    warm = solve_soft_q(transitions, rewards, 0.9, temperature, q0=newton + 0.3)
    torch.testing.assert_close(warm, newton, rtol=0, atol=1e-11)


def test_the_closed_form_return_equals_the_discounted_occupancy_sum():
    mdp = two_state_mdp()
    g = torch.Generator().manual_seed(0)
    policy = torch.softmax(torch.randn(6, 2, 2, dtype=F64, generator=g) * 2, -1)
    p_pi = torch.einsum("ast,nsa->nst", mdp.transition, policy)
    r_pi = (policy * mdp.reward).sum(-1)
    state = mdp.initial.expand(6, 2)
    occupancy = torch.zeros(6, 2, dtype=F64)
    for t in range(600):  # 0.9^600 ~ 1e-28
        occupancy = occupancy + mdp.gamma**t * state
        state = torch.einsum("ns,nst->nt", state, p_pi)
    torch.testing.assert_close(expected_return(policy, mdp), (occupancy * r_pi).sum(-1), rtol=1e-12, atol=1e-12)
    value = policy_value(policy, mdp.transition, mdp.reward, mdp.gamma)
    torch.testing.assert_close(value, r_pi + mdp.gamma * torch.einsum("nst,nt->ns", p_pi, value))


@pytest.mark.parametrize("objective", ["return", "bellman"])
@pytest.mark.parametrize("temperature", [0.3, 1.0])
def test_the_omd_gradient_matches_finite_differences(objective, temperature):
    """``J`` is smooth but saturates at the paper's 0.01; higher temperatures give gradients of size."""
    mdp = dataclasses.replace(two_state_mdp(), temperature=temperature)
    logits, reward = random_model(1, scale=temperature)

    def value(lg, rw):
        j, q = omd_return(lg, rw, mdp)
        return j if objective == "return" else true_bellman_error(q, mdp)

    lg, rw = logits.clone().requires_grad_(True), reward.clone().requires_grad_(True)
    grad_logits, grad_reward = torch.autograd.grad(value(lg, rw), [lg, rw])
    eps = 1e-6
    for param, grad, which in ((logits, grad_logits, 0), (reward, grad_reward, 1)):
        fd = torch.zeros_like(param)
        for i in range(param.numel()):
            bump = torch.zeros(param.numel(), dtype=F64)
            bump[i] = eps
            bump = bump.view_as(param)
            args_plus = (logits + bump, reward) if which == 0 else (logits, reward + bump)
            args_minus = (logits - bump, reward) if which == 0 else (logits, reward - bump)
            fd.view(-1)[i] = (value(*args_plus) - value(*args_minus)) / (2 * eps)
        torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)
        assert float(fd.abs().max()) > 1e-3  # not trivially zero


def test_the_omd_gradient_is_batched_run_by_run():
    mdp = two_state_mdp()
    logits, reward = random_model(2, (3,), scale=0.01)
    lg, rw = logits.clone().requires_grad_(True), reward.clone().requires_grad_(True)
    omd_return(lg, rw, mdp)[0].sum().backward()
    for i in range(3):
        one_lg, one_rw = logits[i].clone().requires_grad_(True), reward[i].clone().requires_grad_(True)
        omd_return(one_lg, one_rw, mdp)[0].backward()
        torch.testing.assert_close(lg.grad[i], one_lg.grad)
        torch.testing.assert_close(rw.grad[i], one_rw.grad)


def test_mle_loss_is_reward_mse_plus_mean_kl_and_zero_at_the_true_model():
    mdp = two_state_mdp()
    exact_logits = mdp.temperature * mdp.transition.log()  # softmax(logits / tau) = p exactly
    assert abs(float(mle_loss(exact_logits, mdp.reward, mdp))) < 1e-15
    logits, reward = random_model(3, scale=0.01)
    p, q = mdp.transition, model_transition(logits, mdp.temperature)
    kl = sum(float((p[a, s] * (p[a, s] / q[a, s]).log()).sum()) for a in range(2) for s in range(2)) / 4
    mse = float(((reward - mdp.reward) ** 2).sum()) / 4
    assert abs(float(mle_loss(logits, reward, mdp)) - (mse + kl)) < 1e-12


def test_projection_is_onto_the_ball_of_the_scaled_concatenation_and_identity_inside():
    tau = 0.01
    logits, reward = random_model(4, (5,), scale=0.01)
    flat = torch.cat([(logits / tau).reshape(5, -1), reward.reshape(5, -1)], -1)
    torch.testing.assert_close(parameter_norm(logits, reward, tau), flat.norm(dim=-1))
    norm = flat.norm(dim=-1)
    kappa = torch.stack([norm[0] * 2, norm[1], norm[2] / 2, norm[3] / 10, torch.zeros(())])
    new_logits, new_reward = project(logits, reward, kappa, tau)
    assert torch.equal(new_logits[:2], logits[:2]) and torch.equal(new_reward[:2], reward[:2])  # inside: unchanged
    torch.testing.assert_close(parameter_norm(new_logits, new_reward, tau)[2:], kappa[2:])
    for i in (2, 3):  # scaled, not clipped: the same direction
        torch.testing.assert_close(new_logits[i] / logits[i], torch.full_like(logits[i], float(kappa[i] / norm[i])))
        torch.testing.assert_close(new_reward[i] / reward[i], torch.full_like(reward[i], float(kappa[i] / norm[i])))
    assert new_logits[4].abs().max() == 0 and new_reward[4].abs().max() == 0
    zero_l, zero_r = project(torch.zeros(2, 2, 2, dtype=F64), torch.zeros(2, 2, dtype=F64), 0.0, tau)
    assert not zero_l.isnan().any() and not zero_r.isnan().any()
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        project(logits, reward, -1.0, tau)


def test_projected_adam_keeps_every_iterate_in_the_ball():
    """``fit_model`` is deterministic in its seed, so ``iters=t`` gives the t-th iterate of one run."""
    kappas = [0.0, 0.3, 1.5, 4.0]
    for t in range(1, 16):
        result = fit_model("omd", kappas, [1, 2], iters=t)
        norms = parameter_norm(result.logits, result.reward, 0.01)  # [K, N]
        assert bool((norms <= torch.tensor(kappas, dtype=F64)[:, None] * (1 + 1e-12)).all()), (t, norms)
        assert bool((norms[1:] > 0).all())


def test_initial_parameters_are_uniform_draws_from_a_generator_per_seed():
    mdp = two_state_mdp()
    q, logits, reward = initial_parameters([1, 2, 1], mdp)
    g = torch.Generator().manual_seed(2)
    expected = (torch.rand(2, 2, generator=g, dtype=F64), torch.rand(2, 2, 2, generator=g, dtype=F64),
                torch.rand(2, 2, generator=g, dtype=F64))
    for got, want in zip((q[1], logits[1], reward[1]), expected):
        assert torch.equal(got, want)
    assert torch.equal(logits[0], logits[2]) and not torch.equal(logits[0], logits[1])
    assert 0 <= float(logits.min()) and float(logits.max()) < 1


def test_fit_model_runs_are_independent_of_the_batch_they_share():
    batched = fit_model("omd", [0.5, 3.0], [1, 2], iters=40)
    for k, kappa in enumerate([0.5, 3.0]):
        for n, seed in enumerate([1, 2]):
            alone = fit_model("omd", [kappa], [seed], iters=40)
            torch.testing.assert_close(batched.logits[k, n], alone.logits[0, 0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(batched.returns[k, n], alone.returns[0, 0], rtol=1e-10, atol=1e-12)


def test_fit_model_improves_its_objective_and_validates_arguments():
    mdp = two_state_mdp()
    start = fit_model("mle", [6.0], [1], iters=0)
    mle = fit_model("mle", [6.0], [1], iters=200, record_every=50)
    assert float(mle_loss(mle.logits, mle.reward, mdp)) < float(mle_loss(start.logits, start.reward, mdp)) / 2
    assert mle.curve_iterations == [0, 50, 100, 150, 200] and mle.curve.shape == (5, 1, 1)
    omd = fit_model("omd", [3.0], [1, 2, 3], iters=200)
    assert float(omd.returns.mean()) > float(fit_model("omd", [3.0], [1, 2, 3], iters=0).returns.mean()) + 0.5
    assert omd.q_error.shape == (1, 3)
    with pytest.raises(ValueError, match=r"objective must be one of \('omd', 'omd_bellman', 'mle'\), got 'vep'"):
        fit_model("vep", [1.0], [1])
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        fit_model("omd", [-1.0], [1])


def test_the_benchmark_writes_its_json_and_figure(tmp_path, monkeypatch):
    from benchmarks import omd_tabular

    monkeypatch.setattr(omd_tabular, "commit", lambda: "test")
    payload = omd_tabular.main(["--quick", "--iters", "3", "--out", str(tmp_path)])
    assert payload["commit"] == "test" and len(payload["kappas"]) == 20 and payload["seeds"] == [1, 2]
    assert len(payload["summary"]["omd"]["returns"]["mean"]) == 20
    assert (tmp_path / "omd_tabular.json").is_file()
    assert (tmp_path / "omd_tabular.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
