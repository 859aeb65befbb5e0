"""T0: OMD's implicit model gradient and soft-Bellman losses (lightning_mbrl.objectives.omd; paper 003,
Eq. 7 and Eq. 13; REFERENCE 3.1-3.2).

Oracles: inner problems whose solution ``w*(theta)`` is exact (a quadratic inner loss solved by
``torch.linalg.solve``; a Q-function linear in its parameters fitted by least squares), so that central
finite differences of ``L_outer(w*(theta))`` and autograd through the closed form are the true gradient;
CG against the exact inverse; the losses against hand-written formulas; which parameters each loss and
the implicit gradient reach.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor, nn

from lightning_mbrl.objectives.omd import (
    conjugate_gradient,
    double_soft_q_target,
    gradient_constraint,
    implicit_gradient,
    implicit_vjp,
    soft_bellman_loss,
    soft_q_target,
    soft_value,
)

F64 = torch.float64


def central_difference(fn, params: dict[str, Tensor], eps: float = 1e-6) -> dict[str, Tensor]:
    """``d fn(params) / d params`` by central differences, entry by entry."""
    grads = {}
    for name, value in params.items():
        grad = torch.zeros_like(value)
        for i in range(value.numel()):
            bump = torch.zeros(value.numel(), dtype=value.dtype)
            bump[i] = eps
            plus = {**params, name: value + bump.view_as(value)}
            minus = {**params, name: value - bump.view_as(value)}
            grad.view(-1)[i] = (fn(plus) - fn(minus)) / (2 * eps)
        grads[name] = grad
    return grads


# ---------------------------------------------------------------------------------------- a quadratic inner problem
class Quadratic:
    """``L_inner(theta, w) = 0.5 w^T A(theta) w - b(theta)^T w`` with ``A(theta) = A_0 + diag(softplus(D p))``
    (symmetric positive definite, theta-dependent: the mixed derivative has an ``A'(theta) w`` term) and
    ``b(theta) = tanh(C p) * exp(0.3 q)``; ``w*(theta) = A(theta)^{-1} b(theta)`` exactly. ``L_outer(w) =
    0.5 ||w - t||^2 + sum sin(w)``. With ``identity_hessian=True``, ``A = I`` (then the identity
    approximation is exact)."""

    def __init__(self, n: int = 5, seed: int = 0, identity_hessian: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(n, n, generator=g, dtype=F64)
        self.a0 = torch.eye(n, dtype=F64) if identity_hessian else m @ m.T + n * torch.eye(n, dtype=F64)
        self.identity_hessian = identity_hessian
        self.c = torch.randn(n, 3, generator=g, dtype=F64)
        self.d = torch.randn(n, 3, generator=g, dtype=F64)
        self.t = torch.randn(n, generator=g, dtype=F64)
        self.theta = {"p": torch.randn(3, generator=g, dtype=F64), "q": torch.randn(n, generator=g, dtype=F64)}

    def a(self, theta):
        if self.identity_hessian:
            return self.a0
        return self.a0 + torch.diag(nn.functional.softplus(self.d @ theta["p"]))

    def b(self, theta):
        return torch.tanh(self.c @ theta["p"]) * torch.exp(0.3 * theta["q"])

    def inner(self, theta, w, batch=None):
        x = w["x"]
        return 0.5 * x @ self.a(theta) @ x - self.b(theta) @ x

    def outer(self, w):
        return 0.5 * (w["x"] - self.t).square().sum() + torch.sin(w["x"]).sum()

    def w_star(self, theta):
        return {"x": torch.linalg.solve(self.a(theta), self.b(theta))}

    def total(self, theta):
        return self.outer(self.w_star(theta))


def autograd_through_solution(problem: Quadratic) -> dict[str, Tensor]:
    theta = {k: v.clone().requires_grad_(True) for k, v in problem.theta.items()}
    grads = torch.autograd.grad(problem.total(theta), list(theta.values()))
    return dict(zip(theta, grads))


def assert_dicts_close(actual, expected, **tol):
    assert set(actual) == set(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], **tol)


def test_cg_implicit_gradient_matches_finite_differences_of_the_solved_problem():
    problem = Quadratic()
    fd = central_difference(problem.total, problem.theta)
    exact = autograd_through_solution(problem)
    assert_dicts_close(exact, fd, rtol=1e-6, atol=1e-8)
    grads, logs = implicit_gradient(problem.inner, problem.outer, problem.theta, problem.w_star(problem.theta),
                                    approx="cg", damping=0.0, tol=1e-13)
    assert_dicts_close(grads, fd, rtol=1e-6, atol=1e-8)
    assert 0 < int(logs["cg_iterations"]) <= 5 + 2  # n = 5: CG is exact in n steps up to rounding
    torch.testing.assert_close(logs["loss_outer"], problem.outer(problem.w_star(problem.theta)))
    assert min(float(g.abs().max()) for g in fd.values()) > 1e-3  # a gradient that is not trivially zero


def test_the_code_defaults_damping_1e5_and_relative_tol_1e5_are_close_to_exact():
    problem = Quadratic()
    grads, logs = implicit_gradient(problem.inner, problem.outer, problem.theta, problem.w_star(problem.theta),
                                    approx="cg")
    assert_dicts_close(grads, autograd_through_solution(problem), rtol=1e-4, atol=1e-5)
    assert float(logs["cg_residual"]) <= 1e-5 * float(autograd_through_solution(problem)["p"].norm()) * 1e3


def test_identity_approximation_is_minus_mixed_derivative_times_v_and_differs_from_exact():
    """``-(df/dtheta)^T v`` against explicit Jacobians of this small problem (the test may build them)."""
    problem = Quadratic()
    theta, w = problem.theta, problem.w_star(problem.theta)
    grads, logs = implicit_gradient(problem.inner, problem.outer, theta, w, approx="identity")
    assert set(logs.keys()) == {"loss_outer"}
    v = torch.func.grad(problem.outer)(w)["x"]
    f = gradient_constraint(problem.inner)
    for name in theta:
        jac = torch.func.jacrev(lambda t: f({**theta, name: t}, w)["x"])(theta[name])  # [n_w, n_theta]
        torch.testing.assert_close(grads[name], -jac.T @ v)
    exact = autograd_through_solution(problem)
    assert (grads["p"] - exact["p"]).abs().max() > 1e-2  # A(theta) != I: the approximation is not exact


def test_identity_equals_cg_when_the_inner_hessian_is_the_identity():
    problem = Quadratic(identity_hessian=True)
    w = problem.w_star(problem.theta)
    identity, _ = implicit_gradient(problem.inner, problem.outer, problem.theta, w, approx="identity")
    cg, logs = implicit_gradient(problem.inner, problem.outer, problem.theta, w, approx="cg", damping=0.0, tol=1e-14)
    assert_dicts_close(cg, identity, rtol=1e-12, atol=1e-12)
    assert int(logs["cg_iterations"]) == 1  # H = I: one CG step
    assert_dicts_close(identity, central_difference(problem.total, problem.theta), rtol=1e-6, atol=1e-8)
    damped, _ = implicit_gradient(problem.inner, problem.outer, problem.theta, w, approx="cg", tol=1e-14)
    assert_dicts_close(damped, {k: g / (1 + 1e-5) for k, g in identity.items()}, rtol=1e-12, atol=1e-14)


def test_cg_solves_the_damped_transposed_system():
    """``u = (df/dw + lambda I)^{-T} v`` with a large damping, against explicit matrices."""
    problem = Quadratic()
    theta, w = problem.theta, problem.w_star(problem.theta)
    v = {"x": torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(3))}
    damping = 0.7
    grads, cg = implicit_vjp(gradient_constraint(problem.inner), theta, w, v, approx="cg", damping=damping, tol=1e-14)
    f = gradient_constraint(problem.inner)
    dfdw = torch.func.jacrev(lambda x: f(theta, {"x": x})["x"])(w["x"])
    u = torch.linalg.solve((dfdw + damping * torch.eye(5, dtype=F64)).T, v["x"])
    for name in theta:
        dfdtheta = torch.func.jacrev(lambda t: f({**theta, name: t}, w)["x"])(theta[name])
        torch.testing.assert_close(grads[name], -dfdtheta.T @ u)
    assert cg.iterations > 0


# ---------------------------------------------------------------------------------------- conjugate gradient
def spd(n: int, seed: int) -> Tensor:
    m = torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(seed))
    return m @ m.T + 0.5 * torch.eye(n, dtype=F64)


def test_conjugate_gradient_matches_the_exact_inverse():
    a = spd(8, 0)
    b = torch.randn(8, dtype=F64, generator=torch.Generator().manual_seed(1))
    result = conjugate_gradient(lambda x: a @ x, b, tol=1e-13, max_iter=100)
    torch.testing.assert_close(result.solution, torch.linalg.solve(a, b), rtol=1e-9, atol=1e-10)
    assert result.iterations <= 8 + 4
    assert result.residual_norm <= 1e-13 * float(b.norm()) * 10


def test_conjugate_gradient_respects_max_iter_and_tolerance():
    a = spd(8, 0)
    b = torch.randn(8, dtype=F64, generator=torch.Generator().manual_seed(1))
    capped = conjugate_gradient(lambda x: a @ x, b, tol=1e-13, max_iter=2)
    assert capped.iterations == 2
    assert (capped.solution - torch.linalg.solve(a, b)).abs().max() > 1e-4
    loose = conjugate_gradient(lambda x: a @ x, b, tol=1e-1, max_iter=100)
    assert loose.residual_norm <= 1e-1 * float(b.norm())
    assert loose.iterations < conjugate_gradient(lambda x: a @ x, b, tol=1e-13).iterations
    zero = conjugate_gradient(lambda x: a @ x, torch.zeros(8, dtype=F64))
    assert zero.iterations == 0 and zero.solution.abs().max() == 0
    with pytest.raises(ValueError, match="b must be a flat vector"):
        conjugate_gradient(lambda x: x, torch.zeros(2, 2))


def test_implicit_arguments_are_validated():
    problem = Quadratic()
    w = problem.w_star(problem.theta)
    with pytest.raises(ValueError, match=r"approx must be one of \('identity', 'cg'\), got 'exact'"):
        implicit_gradient(problem.inner, problem.outer, problem.theta, w, approx="exact")
    with pytest.raises(ValueError, match="damping must be >= 0"):
        implicit_gradient(problem.inner, problem.outer, problem.theta, w, approx="cg", damping=-1.0)
    with pytest.raises(ValueError, match="v must have w_star's keys"):
        implicit_vjp(gradient_constraint(problem.inner), problem.theta, w, {"y": w["x"]})


# ---------------------------------------------------------------------------------------- soft-Bellman losses
def test_soft_value_is_alpha_logsumexp_and_hard_is_max():
    q = torch.tensor([[1.0, 2.0, 0.5], [-1.0, -1.0, -3.0]], dtype=F64)
    alpha = 0.3
    expected = alpha * torch.log(torch.exp(q / alpha).sum(-1))
    torch.testing.assert_close(soft_value(q, alpha), expected)
    torch.testing.assert_close(soft_value(q, alpha, hard=True), torch.tensor([2.0, -1.0], dtype=F64))
    torch.testing.assert_close(soft_value(q, 1e-4), q.amax(-1) + 1e-4 * torch.log(torch.tensor([1.0, 2.0], dtype=F64)))
    with pytest.raises(ValueError, match="alpha must be > 0"):
        soft_value(q, 0.0)


def table_net(values: Tensor):
    """A 'network' that looks its Q-values up by the first observation coordinate (an index)."""
    return lambda obs: values[obs[:, 0].long()]


def test_soft_targets_against_formulas_and_the_bootstrap_mask():
    q1 = torch.tensor([[1.0, 0.2], [0.0, 3.0], [2.0, 2.0]], dtype=F64)
    q2 = torch.tensor([[0.5, 0.4], [1.0, -1.0], [2.5, 1.0]], dtype=F64)
    next_obs = torch.tensor([[0.0], [1.0], [2.0]], dtype=F64)
    reward = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    terminated = torch.tensor([False, True, False])
    alpha, gamma = 0.5, 0.9
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=F64)  # a truncated step is not terminated: it keeps its bootstrap

    y = soft_q_target(reward, terminated, next_obs, table_net(q1), alpha=alpha, gamma=gamma)
    torch.testing.assert_close(y, reward + gamma * mask * alpha * torch.logsumexp(q1 / alpha, -1))
    y_hard = soft_q_target(reward, terminated, next_obs, table_net(q1), alpha=alpha, gamma=gamma, hard=True)
    torch.testing.assert_close(y_hard, reward + gamma * mask * q1.amax(-1))

    q_min = torch.tensor([[0.5, 0.2], [0.0, -1.0], [2.0, 1.0]], dtype=F64)  # elementwise min, then the value
    y2 = double_soft_q_target(reward, terminated, next_obs, table_net(q1), table_net(q2), alpha=alpha, gamma=gamma)
    torch.testing.assert_close(y2, reward + gamma * mask * alpha * torch.logsumexp(q_min / alpha, -1))
    y2_hard = double_soft_q_target(reward, terminated, next_obs, table_net(q1), table_net(q2), alpha=alpha,
                                   gamma=gamma, hard=True)
    torch.testing.assert_close(y2_hard, reward + gamma * mask * q_min.amax(-1))


def test_soft_bellman_loss_is_the_mean_over_networks_of_the_mse():
    obs = torch.tensor([[0.0], [1.0], [2.0]], dtype=F64)
    action = torch.tensor([1, 0, 1])
    target = torch.tensor([0.5, 0.0, 1.0], dtype=F64)
    q1 = torch.tensor([[1.0, 0.2], [0.0, 3.0], [2.0, 2.0]], dtype=F64)
    q2 = torch.tensor([[0.5, 0.4], [1.0, -1.0], [2.5, 1.0]], dtype=F64)
    mse1 = ((torch.tensor([0.2, 0.0, 2.0], dtype=F64) - target) ** 2).mean()
    mse2 = ((torch.tensor([0.4, 1.0, 1.0], dtype=F64) - target) ** 2).mean()
    single = soft_bellman_loss(obs, action, target, [table_net(q1)])
    torch.testing.assert_close(single["loss_q"], mse1)
    double = soft_bellman_loss(obs, action, target, [table_net(q1), table_net(q2)])
    torch.testing.assert_close(double["loss_q"], 0.5 * (mse1 + mse2))
    torch.testing.assert_close(double["q_mean"], torch.tensor((0.2 + 0.0 + 2.0 + 0.4 + 1.0 + 1.0) / 6, dtype=F64))
    with pytest.raises(ValueError, match="q_nets must hold at least one"):
        soft_bellman_loss(obs, action, target, [])


# ---------------------------------------------------------------------------------------- a Bellman problem, routed
OBS, N_ACTIONS, B = 3, 2, 64


class Model(nn.Module):
    """A tiny deterministic model: ``s' = s + tanh(W [s, onehot(a)])``, ``r = u^T [s, onehot(a)]``."""

    def __init__(self) -> None:
        super().__init__()
        self.dynamics = nn.Linear(OBS + N_ACTIONS, OBS)
        self.reward = nn.Linear(OBS + N_ACTIONS, 1)

    def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([obs, nn.functional.one_hot(action, N_ACTIONS).to(obs.dtype)], -1)
        return self.reward(x).squeeze(-1), obs + torch.tanh(self.dynamics(x))


class LinearQ(nn.Module):
    """``Q_w(s, .) = phi(s) W`` with fixed features ``phi(s) = [s, sin(s), 1]``: linear in ``w``, so the
    inner problem (a least-squares fit to a fixed target) has an exact solution."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2 * OBS + 1, N_ACTIONS, dtype=F64) * 0.3)

    @staticmethod
    def features(obs: Tensor) -> Tensor:
        return torch.cat([obs, torch.sin(obs), torch.ones_like(obs[..., :1])], -1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.features(obs) @ self.weight


def bellman_setup(seed: int = 0):
    torch.manual_seed(seed)
    model, q_net = Model().double(), LinearQ()
    target_q = copy.deepcopy(q_net).requires_grad_(False)
    g = torch.Generator().manual_seed(seed + 1)
    batch = {
        "observation": torch.randn(B, OBS, dtype=F64, generator=g),
        "action": torch.randint(N_ACTIONS, (B,), generator=g),
        "reward": torch.randn(B, dtype=F64, generator=g),
        "next_observation": torch.randn(B, OBS, dtype=F64, generator=g),
        "terminated": torch.rand(B, generator=g) < 0.1,
        "target": {k: v.detach() for k, v in target_q.named_parameters()},
    }
    return model, q_net, target_q, batch


ALPHA, GAMMA = 0.3, 0.9


def make_losses(model: Model, q_net: LinearQ, real: dict, grad_to_model: bool = True):
    """OMD's inner loss (the model's predicted ``(r, s')`` for real ``(s, a)``) and outer loss (real
    ``(r, s')``), both against the same frozen target network, as functions of parameter dicts."""
    call = torch.func.functional_call

    def inner(theta, w, batch):
        reward, next_obs = call(model, theta, (batch["observation"], batch["action"]))
        target = soft_q_target(reward, batch["terminated"], next_obs, lambda o: call(q_net, batch["target"], (o,)),
                               alpha=ALPHA, gamma=GAMMA, grad_to_inputs=grad_to_model)
        return soft_bellman_loss(batch["observation"], batch["action"], target,
                                 [lambda o: call(q_net, w, (o,))])["loss_q"]

    def outer(w):
        target = soft_q_target(real["reward"], real["terminated"], real["next_observation"],
                               lambda o: call(q_net, real["target"], (o,)), alpha=ALPHA, gamma=GAMMA)
        q_w = lambda o: call(q_net, w, (o,))  # noqa: E731
        return soft_bellman_loss(real["observation"], real["action"], target, [q_w])["loss_q"]

    return inner, outer


def least_squares_w(model: Model, q_net: LinearQ, theta, batch) -> dict[str, Tensor]:
    """The exact inner solution: ``Q_w(s, a) = x(s, a)^T vec(W)`` fitted to the model's target."""
    with torch.no_grad():
        reward, next_obs = torch.func.functional_call(model, theta, (batch["observation"], batch["action"]))
        target_net = lambda o: torch.func.functional_call(q_net, batch["target"], (o,))  # noqa: E731
        y = soft_q_target(reward, batch["terminated"], next_obs, target_net, alpha=ALPHA, gamma=GAMMA)
        phi = LinearQ.features(batch["observation"])  # [B, F]
        onehot = nn.functional.one_hot(batch["action"], N_ACTIONS).to(F64)  # [B, A]
        x = (phi.unsqueeze(-1) * onehot.unsqueeze(-2)).reshape(B, -1)  # column (f, a) of vec(W)
        w = torch.linalg.solve(x.T @ x, x.T @ y)
        return {"weight": w.reshape(phi.shape[-1], N_ACTIONS)}


def test_implicit_gradient_of_a_soft_bellman_problem_matches_finite_differences():
    model, q_net, _, batch = bellman_setup()
    inner, outer = make_losses(model, q_net, batch)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    w_star = least_squares_w(model, q_net, theta, batch)
    assert float(torch.func.grad(inner, argnums=1)(theta, w_star, batch)["weight"].abs().max()) < 1e-12  # f = 0

    def total(th):
        return outer(least_squares_w(model, q_net, th, batch))

    fd = central_difference(total, theta)
    grads, _ = implicit_gradient(inner, outer, theta, w_star, batch, approx="cg", damping=0.0, tol=1e-13)
    assert_dicts_close(grads, fd, rtol=1e-5, atol=1e-8)
    assert float(fd["reward.weight"].abs().max()) > 1e-2 and float(fd["dynamics.weight"].abs().max()) > 1e-3


# ---------------------------------------------------------------------------------------- gradient routing
def grads_of(module: nn.Module) -> dict[str, bool]:
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()}


def test_the_inner_loss_reaches_only_the_q_network_by_default():
    model, q_net, target_q, batch = bellman_setup()
    reward, next_obs = model(batch["observation"], batch["action"])
    target = soft_q_target(reward, batch["terminated"], next_obs, target_q.requires_grad_(True), alpha=ALPHA,
                           gamma=GAMMA)
    soft_bellman_loss(batch["observation"], batch["action"], target, [q_net])["loss_q"].backward()
    assert all(grads_of(q_net).values())
    assert not any(grads_of(model).values()) and not any(grads_of(target_q).values())
    assert all(p.grad is None for p in [*model.parameters(), *target_q.parameters()])


def test_grad_to_inputs_reaches_the_model_but_never_the_target_network():
    model, q_net, target_q, batch = bellman_setup()
    target_q.requires_grad_(True)
    twin = copy.deepcopy(target_q)
    for double in (False, True):
        reward, next_obs = model(batch["observation"], batch["action"])
        if double:
            target = double_soft_q_target(reward, batch["terminated"], next_obs, target_q, twin, alpha=ALPHA,
                                          gamma=GAMMA, grad_to_inputs=True)
        else:
            target = soft_q_target(reward, batch["terminated"], next_obs, target_q, alpha=ALPHA, gamma=GAMMA,
                                   grad_to_inputs=True)
        model.zero_grad()
        soft_bellman_loss(batch["observation"], batch["action"], target, [q_net])["loss_q"].backward()
        assert all(grads_of(model).values())
    assert all(p.grad is None for p in [*target_q.parameters(), *twin.parameters()])
    assert all(p.requires_grad for p in [*target_q.parameters(), *twin.parameters()])  # frozen only inside


def test_the_implicit_gradient_reaches_only_the_model_and_writes_no_grad():
    model, q_net, _, batch = bellman_setup()
    inner, outer = make_losses(model, q_net, batch)
    theta = dict(model.named_parameters())
    w_star = dict(q_net.named_parameters())  # any w: the routing does not depend on optimality
    for approx in ("identity", "cg"):
        grads, _ = implicit_gradient(inner, outer, theta, w_star, batch, approx=approx)
        assert list(grads) == list(theta)
        assert all(grads[name].shape == theta[name].shape and not grads[name].requires_grad for name in theta)
        assert all(float(g.abs().max()) > 0 for g in grads.values())
    assert all(p.grad is None for p in [*model.parameters(), *q_net.parameters()])
    for name, p in model.named_parameters():  # what a LightningModule does with it
        p.grad = grads[name]
    assert all(grads_of(model).values()) and all(p.grad is None for p in q_net.parameters())


def test_without_grad_to_inputs_the_inner_loss_gives_the_model_no_gradient():
    model, q_net, _, batch = bellman_setup()
    inner, outer = make_losses(model, q_net, batch, grad_to_model=False)
    grads, _ = implicit_gradient(inner, outer, dict(model.named_parameters()), dict(q_net.named_parameters()), batch)
    assert all(float(g.abs().max()) == 0 for g in grads.values())


def test_conjugate_gradient_on_negative_curvature_stops_or_continues_like_jax() -> None:
    # An indefinite symmetric system: b's first direction has negative curvature (b^T A b < 0).
    a = torch.tensor([[-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, 0.5], dtype=F64)
    stopped = conjugate_gradient(lambda x: a @ x, b, tol=1e-12)
    assert stopped.iterations == 0 and torch.equal(stopped.solution, torch.zeros(2, dtype=F64))
    # jax.scipy.sparse.linalg.cg's recursion has no curvature check: on this 2 x 2 system it reaches the
    # exact solution in 2 steps.
    continued = conjugate_gradient(lambda x: a @ x, b, tol=1e-12, negative_curvature="continue")
    assert continued.iterations == 2
    torch.testing.assert_close(continued.solution, torch.linalg.solve(a, b))
    with pytest.raises(ValueError, match="negative_curvature must be one of"):
        conjugate_gradient(lambda x: a @ x, b, negative_curvature="ignore")
