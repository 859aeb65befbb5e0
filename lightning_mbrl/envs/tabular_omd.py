"""The two-state, two-action MDP of OMD's tabular experiment, its exact oracles, and the projected-Adam
model fitting of Figure 2 (Nikishin et al. 2022, paper 003, Section 4.2, Figures 2-3; the MDP is
Dadashi et al. 2019, "The Value Function Polytope in Reinforcement Learning", App. A (d);
REFERENCE 3.3). Pure torch, float64, no Lightning.

Conventions (the official notebook's): ``transition [*B, A, S, S]`` indexed ``[a, s, s']``,
``reward [*B, S, A]``, ``q [*B, S, A]``, ``policy [*B, S, A]`` (each row sums to 1 over ``a``). Every
function is batched over any leading dims ``*B`` (seeds, norm bounds).

True MDP: ``p(.|s0, a0) = [0.7, 0.3]``, ``p(.|s1, a0) = [0.2, 0.8]``, ``p(.|s, a1) = [0.99, 0.01]``;
``r(s0, .) = [-0.45, -0.1]``, ``r(s1, .) = [0.5, 0.5]``; ``gamma = 0.9``; uniform initial distribution
``rho_0``; temperature ``tau = 0.01`` in the softmax and the log-sum-exp.

- Soft Bellman optimality operator (Eq. 3, with the temperature):
  ``(T Q)(s, a) = r(s, a) + gamma sum_s' p(s'|s, a) V_Q(s')``, ``V_Q(s) = tau logsumexp_a Q(s, a) / tau``.
  Its Jacobian is ``dT/dQ [(s, a), (s', a')] = gamma p(s'|s, a) pi_Q(a'|s')``.
- Softmax policy: ``pi_Q(a|s) = softmax_a Q(s, a) / tau``.
- Return, in closed form: ``J(pi) = rho_0^T V^pi``, ``V^pi = (I - gamma P_pi)^{-1} r_pi`` with
  ``P_pi(s, s') = sum_a pi(a|s) p(s'|s, a)``, ``r_pi(s) = sum_a pi(a|s) r(s, a)``: the plain discounted
  return in the true MDP, no entropy bonus (the notebook's ``objective_returns``).
- Model ``theta = (logits [A, S, S], reward table [S, A])``, ``p_theta = softmax(logits / tau)`` over
  ``s'``. Capacity: ``||theta|| <= kappa`` with ``||theta||`` the Euclidean norm of the flattened
  concatenation ``(logits / tau, reward)`` (the notebook's ``tree_norm``); the projection scales both
  parts by ``kappa / ||theta||`` when outside the ball (paper Section 4.2).
- OMD (Eqs. 2 and 5): maximise ``J(pi_{Q*(theta)})``, ``Q*(theta) = T_theta Q*(theta)`` the model's
  soft-optimal Q, true ``J``. Gradient by the implicit function theorem (Eq. 7) with an exact adjoint
  solve: ``(I - dT_theta/dQ)^T lambda = dJ/dQ*`` at ``Q*``, then ``dJ/dtheta = lambda^T dT_theta/dtheta``
  (``dT/dr(s, a) = 1``, ``dT(s, a)/dp(s'|s, a) = gamma V_Q*(s')``, then through the softmax). The
  notebook's fax ``two_phase_solve`` iterates the same adjoint fixed point to convergence.
  ``objective="omd_bellman"`` instead minimises the true Bellman error
  ``L_true(Q*) = mean_{s,a} (Q* - B Q*)^2`` (Eq. 6, the notebook's mean).
- MLE: ``mean_{s,a} (r_theta(s, a) - r(s, a))^2 + mean_{s,a} KL(p(.|s, a) || p_theta(.|s, a))``.
- Both by projected Adam (lr 0.01, betas (0.9, 0.999), eps 1e-8: ``jax.experimental.optimizers.adam``),
  10,000 iterations, ``U(0, 1)`` initial logits, rewards and Q from a per-seed generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

F64 = torch.float64
GAMMA = 0.9
TEMPERATURE = 0.01
OBJECTIVES = ("omd", "omd_bellman", "mle")


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP: ``transition [A, S, S]`` (``[a, s, s']``), ``reward [S, A]``, ``initial [S]``."""

    transition: Tensor
    reward: Tensor
    initial: Tensor
    gamma: float = GAMMA
    temperature: float = TEMPERATURE

    @property
    def n_states(self) -> int:
        return self.reward.shape[-2]

    @property
    def n_actions(self) -> int:
        return self.reward.shape[-1]


def two_state_mdp(dtype: torch.dtype = F64) -> TabularMDP:
    """The MDP of REFERENCE 3.3 (paper 003, Figure 3 top), gamma 0.9, temperature 0.01."""
    transition = torch.tensor([[[0.7, 0.3], [0.2, 0.8]], [[0.99, 0.01], [0.99, 0.01]]], dtype=dtype)
    reward = torch.tensor([[-0.45, -0.1], [0.5, 0.5]], dtype=dtype)
    return TabularMDP(transition, reward, torch.full((2,), 0.5, dtype=dtype))


# ---------------------------------------------------------------------------------------- soft Bellman
def soft_value(q: Tensor, temperature: float) -> Tensor:
    """``V(s) = tau logsumexp_a Q(s, a) / tau``: ``q [*B, S, A] -> [*B, S]``."""
    return temperature * torch.logsumexp(q / temperature, dim=-1)


def softmax_policy(q: Tensor, temperature: float) -> Tensor:
    """``pi_Q(a|s) = softmax_a Q(s, a) / tau``: ``[*B, S, A]``."""
    return torch.softmax(q / temperature, dim=-1)


def soft_bellman(q: Tensor, transition: Tensor, reward: Tensor, gamma: float, temperature: float) -> Tensor:
    """``(T Q)(s, a) = r(s, a) + gamma sum_s' p(s'|s, a) V_Q(s')`` (Eq. 3): ``[*B, S, A]``."""
    return reward + gamma * torch.einsum("...ast,...t->...sa", transition, soft_value(q, temperature))


def soft_bellman_jacobian(q: Tensor, transition: Tensor, gamma: float, temperature: float) -> Tensor:
    """``dT/dQ [*B, S A, S A]``, row ``(s, a)``, column ``(s', a')``: ``gamma p(s'|s, a) pi_Q(a'|s')``."""
    jac = gamma * torch.einsum("...ast,...tb->...satb", transition, softmax_policy(q, temperature))
    n = q.shape[-2] * q.shape[-1]
    return jac.reshape(*jac.shape[:-4], n, n)


def _broadcast(transition: Tensor, reward: Tensor) -> tuple[Tensor, Tensor]:
    batch = torch.broadcast_shapes(transition.shape[:-3], reward.shape[:-2])
    return transition.expand(*batch, *transition.shape[-3:]), reward.expand(*batch, *reward.shape[-2:])


def _start(reward: Tensor, q0: Tensor | None) -> Tensor:
    return torch.zeros_like(reward) if q0 is None else torch.broadcast_to(q0.detach(), reward.shape).clone()


def soft_value_iteration(transition: Tensor, reward: Tensor, gamma: float, temperature: float,
                         q0: Tensor | None = None, tol: float = 1e-12, max_iter: int = 100_000) -> Tensor:
    """``Q*`` by fixed-point iteration ``Q <- T Q`` (a gamma-contraction in the sup norm) until
    ``max |T Q - Q| <= tol`` over the whole batch. No graph."""
    with torch.no_grad():
        transition, reward = _broadcast(transition.detach(), reward.detach())
        q = _start(reward, q0)
        for _ in range(max_iter):
            nxt = soft_bellman(q, transition, reward, gamma, temperature)
            residual = float((nxt - q).abs().max())
            q = nxt
            if residual <= tol:
                return q
    raise RuntimeError(f"soft value iteration: residual {residual:.3g} > tol {tol:g} after max_iter={max_iter}")


def solve_soft_q(transition: Tensor, reward: Tensor, gamma: float, temperature: float, q0: Tensor | None = None,
                 tol: float = 1e-12, max_iter: int = 100) -> Tensor:
    """``Q*`` with ``max |T Q* - Q*| <= tol`` by Newton's method on ``T Q - Q = 0``:
    ``Q <- Q + (I - dT/dQ)^{-1} (T Q - Q)``, which is soft policy iteration (the step is the soft value
    of ``pi_Q``), so it converges from any start, quadratically near ``Q*``. No graph."""
    with torch.no_grad():
        transition, reward = _broadcast(transition.detach(), reward.detach())
        q = _start(reward, q0)
        n = q.shape[-2] * q.shape[-1]
        eye = torch.eye(n, dtype=q.dtype, device=q.device)
        for _ in range(max_iter + 1):
            residual = soft_bellman(q, transition, reward, gamma, temperature) - q
            worst = float(residual.abs().max()) if residual.numel() else 0.0
            if worst <= tol:
                return q
            system = eye - soft_bellman_jacobian(q, transition, gamma, temperature)
            q = q + torch.linalg.solve(system, residual.reshape(*q.shape[:-2], n)).reshape(q.shape)
    raise RuntimeError(f"soft Newton solve: residual {worst:.3g} > tol {tol:g} after max_iter={max_iter}")


class _SoftFixedPoint(torch.autograd.Function):
    """``Q*(transition, reward)`` with the implicit-function-theorem backward (module docstring)."""

    @staticmethod
    def forward(ctx, transition: Tensor, reward: Tensor, q0: Tensor | None, gamma: float, temperature: float,
                tol: float) -> Tensor:
        q = solve_soft_q(transition, reward, gamma, temperature, q0, tol)
        ctx.save_for_backward(transition, q)
        ctx.gamma, ctx.temperature = gamma, temperature
        return q

    @staticmethod
    def backward(ctx, grad_q: Tensor):
        transition, q = ctx.saved_tensors
        n = q.shape[-2] * q.shape[-1]
        system = torch.eye(n, dtype=q.dtype, device=q.device) - soft_bellman_jacobian(q, transition, ctx.gamma,
                                                                                      ctx.temperature)
        adjoint = torch.linalg.solve(system.mT, grad_q.reshape(*q.shape[:-2], n)).reshape(q.shape)
        grad_transition = ctx.gamma * torch.einsum("...sa,...t->...ast", adjoint, soft_value(q, ctx.temperature))
        return grad_transition, adjoint, None, None, None, None


def implicit_soft_q(transition: Tensor, reward: Tensor, gamma: float, temperature: float, q0: Tensor | None = None,
                    tol: float = 1e-12) -> Tensor:
    """The soft-optimal ``Q*`` of ``(transition, reward)`` (``solve_soft_q``), differentiable in both by
    the implicit function theorem with an exact adjoint linear solve (Eq. 7): ``[*B, S, A]``."""
    transition, reward = _broadcast(transition, reward)
    return _SoftFixedPoint.apply(transition, reward, q0, gamma, temperature, tol)


# ---------------------------------------------------------------------------------------- exact returns
def policy_value(policy: Tensor, transition: Tensor, reward: Tensor, gamma: float) -> Tensor:
    """``V^pi = (I - gamma P_pi)^{-1} r_pi``: ``policy [*B, S, A] -> [*B, S]``, differentiable."""
    p_pi = torch.einsum("...ast,...sa->...st", transition, policy)
    r_pi = (policy * reward).sum(-1)
    eye = torch.eye(p_pi.shape[-1], dtype=p_pi.dtype, device=p_pi.device)
    return torch.linalg.solve(eye - gamma * p_pi, r_pi.unsqueeze(-1)).squeeze(-1)


def expected_return(policy: Tensor, mdp: TabularMDP) -> Tensor:
    """``J(pi) = rho_0^T V^pi`` in ``mdp``: ``policy [*B, S, A] -> [*B]``, differentiable in ``policy``."""
    return policy_value(policy, mdp.transition, mdp.reward, mdp.gamma) @ mdp.initial


def optimal_return(mdp: TabularMDP) -> Tensor:
    """``max_pi J(pi)``: the best of the ``A^S`` deterministic policies (an optimal one is among them)."""
    eye = torch.eye(mdp.n_actions, dtype=mdp.reward.dtype)
    policies = torch.stack([eye[list(choice)] for choice in itertools.product(range(mdp.n_actions),
                                                                              repeat=mdp.n_states)])
    return expected_return(policies, mdp).max()


def true_bellman_error(q: Tensor, mdp: TabularMDP) -> Tensor:
    """``L_true(Q) = mean_{s,a} (Q - B Q)^2`` with ``B`` the true soft Bellman operator (Eq. 6): ``[*B]``."""
    return (q - soft_bellman(q, mdp.transition, mdp.reward, mdp.gamma, mdp.temperature)).square().mean((-2, -1))


# ---------------------------------------------------------------------------------------- models and objectives
def model_transition(logits: Tensor, temperature: float) -> Tensor:
    """``p_theta(s'|s, a) = softmax_s' logits[a, s, s'] / tau``: ``[*B, A, S, S]``."""
    return torch.softmax(logits / temperature, dim=-1)


def omd_return(logits: Tensor, reward: Tensor, mdp: TabularMDP, q0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """OMD's objective ``J(pi_{Q*(theta)})`` in the true ``mdp`` (Eq. 2), differentiable in ``logits``
    and ``reward`` through the fixed point (``implicit_soft_q``). ``q0`` warm-starts the solver.
    Returns ``J [*B]`` and ``Q*(theta) [*B, S, A]``."""
    q = implicit_soft_q(model_transition(logits, mdp.temperature), reward, mdp.gamma, mdp.temperature, q0)
    return expected_return(softmax_policy(q, mdp.temperature), mdp), q


def mle_loss(logits: Tensor, reward: Tensor, mdp: TabularMDP) -> Tensor:
    """``mean_{s,a} (r_theta - r)^2 + mean_{s,a} sum_s' p log(p / p_theta)``: ``[*B]``."""
    log_model = torch.log_softmax(logits / mdp.temperature, dim=-1)
    p = mdp.transition
    kl = (torch.xlogy(p, p) - p * log_model).sum(-1).mean((-2, -1))
    return (reward - mdp.reward).square().mean((-2, -1)) + kl


def parameter_norm(logits: Tensor, reward: Tensor, temperature: float) -> Tensor:
    """``||(logits / tau, reward)||``, the Euclidean norm of the flattened concatenation: ``[*B]``."""
    return ((logits / temperature).square().sum((-3, -2, -1)) + reward.square().sum((-2, -1))).sqrt()


def project(logits: Tensor, reward: Tensor, kappa: Tensor | float, temperature: float) -> tuple[Tensor, Tensor]:
    """Projection onto ``{||(logits / tau, reward)|| <= kappa}`` (``parameter_norm``): both parts scaled
    by ``kappa / norm`` where the norm exceeds ``kappa`` (``kappa`` broadcasts against ``*B``), else
    unchanged."""
    kappa = torch.as_tensor(kappa, dtype=reward.dtype, device=reward.device)
    if bool((kappa < 0).any()):
        raise ValueError(f"kappa must be >= 0, got {kappa.tolist()!r}")
    norm = parameter_norm(logits, reward, temperature)
    scale = torch.where(norm > kappa, kappa / torch.where(norm > 0, norm, 1.0), torch.ones_like(norm))
    return logits * scale[..., None, None, None], reward * scale[..., None, None]


# ---------------------------------------------------------------------------------------- projected Adam
@dataclass
class FitResult:
    """Final models and their exact evaluation, ``[K, N]`` = (norm bounds, seeds) leading dims."""

    logits: Tensor  # [K, N, A, S, S]
    reward: Tensor  # [K, N, S, A]
    q: Tensor  # [K, N, S, A], Q*(theta) of the final model
    returns: Tensor  # [K, N], J(pi_{Q*(theta)}) in the true MDP
    q_error: Tensor  # [K, N], max_{s,a} |Q*(theta) - Q*_true|
    curve_iterations: list[int]
    curve: Tensor  # [len(curve_iterations), K, N], J along training


def initial_parameters(seeds: Sequence[int], mdp: TabularMDP) -> tuple[Tensor, Tensor, Tensor]:
    """``U(0, 1)`` Q, logits and rewards, drawn in this order from ``torch.Generator().manual_seed(seed)``
    per seed: ``q [N, S, A]``, ``logits [N, A, S, S]``, ``reward [N, S, A]``."""
    qs, logits, rewards = [], [], []
    S, A, dtype = mdp.n_states, mdp.n_actions, mdp.reward.dtype
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        qs.append(torch.rand(S, A, generator=g, dtype=dtype))
        logits.append(torch.rand(A, S, S, generator=g, dtype=dtype))
        rewards.append(torch.rand(S, A, generator=g, dtype=dtype))
    return torch.stack(qs), torch.stack(logits), torch.stack(rewards)


def evaluate(logits: Tensor, reward: Tensor, mdp: TabularMDP, q0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``J(pi_{Q*(theta)})`` and ``Q*(theta)`` without a graph."""
    with torch.no_grad():
        q = solve_soft_q(model_transition(logits, mdp.temperature), reward, mdp.gamma, mdp.temperature, q0)
        return expected_return(softmax_policy(q, mdp.temperature), mdp), q


def fit_model(objective: str, kappa: Sequence[float] | Tensor, seeds: Sequence[int], *, iters: int = 10_000,
              lr: float = 0.01, mdp: TabularMDP | None = None, record_every: int = 0) -> FitResult:
    """Projected Adam on ``objective`` (``"omd"``: maximise ``J(pi_{Q*(theta)})``; ``"omd_bellman"``:
    minimise ``L_true(Q*(theta))``; ``"mle"``: minimise ``mle_loss``) for every norm bound ``kappa [K]``
    and seed ``[N]`` at once: one batch of ``K N`` independent runs (Adam is elementwise and the loss is
    the sum of the runs' losses, so each run gets exactly its own update). Every run of a seed starts
    from that seed's ``initial_parameters``; the projection follows every step (not the start), as the
    notebook's ``padam``. ``record_every > 0`` records ``J`` every that many iterations."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be an int >= 0, got {iters!r}")
    if record_every < 0:
        raise ValueError(f"record_every must be >= 0, got {record_every!r}")
    mdp = two_state_mdp() if mdp is None else mdp
    dtype = mdp.reward.dtype
    kappa = torch.as_tensor(kappa, dtype=dtype).reshape(-1)
    if bool((kappa < 0).any()):
        raise ValueError(f"kappa must be >= 0, got {kappa.tolist()!r}")
    k, n = kappa.shape[0], len(seeds)
    q0, logits0, reward0 = initial_parameters(seeds, mdp)
    q = q0.expand(k, *q0.shape).clone()
    logits = logits0.expand(k, *logits0.shape).clone().requires_grad_(True)
    reward = reward0.expand(k, *reward0.shape).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits, reward], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    bound = kappa.view(k, 1)
    curve_iterations, curve = [], []
    for it in range(iters):
        if record_every and it % record_every == 0:
            returns, q = evaluate(logits, reward, mdp, q)
            curve_iterations.append(it)
            curve.append(returns)
        if objective == "mle":
            loss = mle_loss(logits, reward, mdp).sum()
        else:
            returns, q_star = omd_return(logits, reward, mdp, q)
            loss = -returns.sum() if objective == "omd" else true_bellman_error(q_star, mdp).sum()
            q = q_star.detach()
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            new_logits, new_reward = project(logits, reward, bound, mdp.temperature)
            logits.copy_(new_logits)
            reward.copy_(new_reward)
    logits, reward = logits.detach(), reward.detach()
    returns, q = evaluate(logits, reward, mdp, q)
    if record_every:
        curve_iterations.append(iters)
        curve.append(returns)
    q_true = solve_soft_q(mdp.transition, mdp.reward, mdp.gamma, mdp.temperature)
    return FitResult(logits, reward, q, returns, (q - q_true).abs().amax((-2, -1)), curve_iterations,
                     torch.stack(curve) if curve else torch.empty(0, k, n, dtype=dtype))
