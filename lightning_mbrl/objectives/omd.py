"""OMD's implicit model gradient and the soft-Bellman losses of its agents (Nikishin et al. 2022,
"Control-Oriented Model-Based Reinforcement Learning with Implicit Differentiation", paper 003; the
official code's choices in REFERENCE 3.1-3.2). Pure functions, no Lightning.

Bi-level problem (paper Section 6, Eq. 12). The inner problem fits the Q-function's parameters ``w`` to
the model ``theta``: ``w* = argmin_w L_inner(theta, w)``, the soft-Bellman loss of ``Q_w`` on the
model's predicted ``(r_hat, s_hat')`` for real ``(s, a)`` (Eq. 10). The outer loss ``L_outer(w)`` is
the same loss at ``w*`` on the real ``(r, s')`` (Eq. 11). ``w*`` is characterised by the constraint

    f(theta, w*) = grad_w L_inner(theta, w*) = 0,

so by the implicit function theorem (Theorem 1, Eq. 7), with ``v = dL_outer/dw (w*)``,

    dL_outer/dtheta = -(df/dtheta)^T (df/dw)^{-T} v.                                        (Eq. 7, 13)

``approx="identity"`` (the official code's default, and the paper's Eq. 13) replaces
``(df/dw)^{-T}`` by the identity: ``-(df/dtheta)^T v``. ``approx="cg"`` (the code's
``--with_inv_jac``) solves ``(df/dw + damping I)^T u = v`` by conjugate gradient (damping 1e-5, at
most 100 iterations, the tolerance of ``jax.scipy.sparse.linalg.cg``: 1e-5 relative) and returns
``-(df/dtheta)^T u``. ``df/dw`` is the Hessian of ``L_inner`` in ``w``: CG assumes it symmetric
positive definite (a strict local minimum; the damping helps).

Everything is a vector-Jacobian product through ``torch.func``: ``(df/dw)^T u`` is a Hessian-vector
product of ``L_inner`` (reverse over reverse), ``(df/dtheta)^T u`` a mixed second derivative. No
Jacobian is materialised and no inner optimiser is unrolled: ``w*`` is whatever the caller's inner
solver returned (the code makes K = 1 Adam step, warm-started; the IFT treats it as exact).

Parameters are dicts of tensors, as ``dict(module.named_parameters())`` and
``torch.func.functional_call`` use them; the returned gradient has ``theta``'s keys, detached, ready
to be set as the model parameters' ``.grad``.

Soft-Bellman losses for discrete actions (CartPole, REFERENCE 3.2): temperature ``alpha`` (0.01 in the
code), ``V(s') = alpha logsumexp_a' Q'(s', a') / alpha`` (``hard``: ``max_a' Q'(s', a')``), double Q
with the elementwise minimum of the two target networks' Q-values, and the bootstrap mask
``1 - terminated`` (the code's ``not_done_no_max``: a time-limit truncation keeps the bootstrap).
Which parameters each function reaches:

- ``soft_q_target``, ``double_soft_q_target`` -> none by default (the target is a constant of the
  loss: a named stop-gradient, computed under ``no_grad``, which ``torch.func`` transforms respect); with
  ``grad_to_inputs=True`` a differentiable function of ``reward`` and ``next_observation`` only (the
  target networks frozen): the model's predictions then receive gradient, which is what makes
  ``df/dtheta`` non-zero in OMD's inner loss;
- ``soft_bellman_loss`` -> the online Q-networks, plus whatever the target reaches;
- ``implicit_gradient`` -> nothing: it returns the model's gradient as tensors and touches no
  ``.grad``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl.models.utils import frozen

#: Parameters by name, as ``dict(module.named_parameters())``.
Params = dict[str, Tensor]
#: ``(theta, w, batch) -> scalar``: the inner loss (model-predicted Bellman loss of ``Q_w``).
InnerLoss = Callable[[Params, Params, Any], Tensor]
#: ``(theta, w, batch) -> dict like w``: a constraint ``f`` with ``f(theta, w*) = 0``.
Constraint = Callable[[Params, Params, Any], Params]
#: ``w -> scalar``: the outer loss (real-data Bellman loss of ``Q_w``).
OuterLoss = Callable[[Params], Tensor]
#: ``observation [B, D] -> Q-values [B, n_actions]``.
QAll = Callable[[Tensor], Tensor]

APPROXIMATIONS = ("identity", "cg")


# ---------------------------------------------------------------------------------------- soft Bellman losses
def soft_value(q: Tensor, alpha: float, hard: bool = False) -> Tensor:
    """``V = alpha logsumexp(Q / alpha)`` over the last (action) dimension: the soft-Q-learning value
    at temperature ``alpha``; ``hard=True``: ``max_a Q``. ``q [*B, n_actions] -> [*B]``."""
    if hard:
        return q.amax(dim=-1)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 for the soft value (or pass hard=True), got {alpha!r}")
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def _target_scope(grad_to_inputs: bool, nets: Sequence[QAll]):
    """No graph at all (``no_grad``), or the networks frozen so that only the inputs get gradient."""
    if not grad_to_inputs:
        return torch.no_grad()
    scope = contextlib.ExitStack()
    for net in nets:
        if isinstance(net, nn.Module):
            scope.enter_context(frozen(net))
    return scope


def _bootstrap(reward: Tensor, terminated: Tensor, gamma: float, next_value: Tensor) -> Tensor:
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_value.to(reward.dtype)


def soft_q_target(
    reward: Tensor,
    terminated: Tensor,
    next_observation: Tensor,
    target_net: QAll,
    *,
    alpha: float,
    gamma: float,
    hard: bool = False,
    grad_to_inputs: bool = False,
) -> Tensor:
    """Soft Q-learning target ``y = r + gamma (1 - terminated) alpha logsumexp_a' Q'(s', a') / alpha``
    (``hard``: ``max_a' Q'(s', a')``), ``Q'`` the target network.

    Shapes: ``reward, terminated [B]``, ``next_observation [B, D]`` -> ``[B]``. Gradient routing: by
    default ``y`` carries no graph (``no_grad``: a constant of the loss); with ``grad_to_inputs=True``
    it carries the graph of ``reward`` and ``next_observation`` and no parameter of ``target_net`` gets
    gradient.
    """
    with _target_scope(grad_to_inputs, (target_net,)):
        return _bootstrap(reward, terminated, gamma, soft_value(target_net(next_observation), alpha, hard))


def double_soft_q_target(
    reward: Tensor,
    terminated: Tensor,
    next_observation: Tensor,
    target_net_1: QAll,
    target_net_2: QAll,
    *,
    alpha: float,
    gamma: float,
    hard: bool = False,
    grad_to_inputs: bool = False,
) -> Tensor:
    """Double-Q soft target: ``soft_q_target`` on ``min(Q'_1(s', .), Q'_2(s', .))``, the elementwise
    minimum over the two target networks' Q-values of every action, then the (log-sum-exp or hard)
    value, as the official CartPole code. Shapes and gradient routing as ``soft_q_target``."""
    with _target_scope(grad_to_inputs, (target_net_1, target_net_2)):
        next_q = torch.minimum(target_net_1(next_observation), target_net_2(next_observation))
        return _bootstrap(reward, terminated, gamma, soft_value(next_q, alpha, hard))


def soft_bellman_loss(observation: Tensor, action: Tensor, target: Tensor, q_nets: Sequence[QAll]) -> TensorDict:
    """``L = mean_j E[(Q_j(s, a) - y)^2]`` over the online networks ``q_nets`` (one, or two for double
    Q: ``0.5 (MSE_1 + MSE_2)``, the official code's ``mse_Q``; no 0.5 inside the square).

    Shapes: ``observation [B, D]``, ``action long [B]``, ``target [B]``. Returns ``loss_q`` and the
    detached diagnostic ``q_mean`` (mean ``Q_j(s, a)`` over networks and batch).
    """
    if len(q_nets) == 0:
        raise ValueError("q_nets must hold at least one Q-network, got an empty sequence")
    index = action.long().unsqueeze(-1)
    q = torch.stack([net(observation).gather(-1, index).squeeze(-1) for net in q_nets])  # [J, B]
    loss = (q - target).square().mean(dim=-1).mean()
    return TensorDict({"loss_q": loss, "q_mean": q.detach().mean()}, batch_size=[])


# ---------------------------------------------------------------------------------------- conjugate gradient
#: What ``conjugate_gradient`` does on a direction of non-positive curvature.
NEGATIVE_CURVATURE = ("stop", "continue")


class CGResult(NamedTuple):
    solution: Tensor
    iterations: int
    residual_norm: float  # ||b - A x|| of the returned x (the recursive residual)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, *, tol: float = 1e-5, max_iter: int = 100,
                       atol: float = 0.0, negative_curvature: str = "stop") -> CGResult:
    """Solve ``A x = b`` for a symmetric positive-definite ``A`` given as ``matvec(x) = A x`` (flat
    vectors ``[n]``), from ``x_0 = 0``. Stops when ``||r|| <= max(tol ||b||, atol)`` (the criterion of
    ``jax.scipy.sparse.linalg.cg``) or after ``max_iter`` products.

    A search direction with non-positive curvature (``A`` not positive definite, e.g. the Hessian of a
    loss in ReLU network weights) either stops the solve, returning the current iterate
    (``negative_curvature="stop"``; zero if it happens on the first direction), or is stepped along
    like any other (``"continue"``: what ``jax.scipy.sparse.linalg.cg``, the OMD code's solver, does;
    only an exactly zero curvature stops it)."""
    if b.dim() != 1:
        raise ValueError(f"b must be a flat vector [n], got shape {tuple(b.shape)}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter!r}")
    if tol < 0 or atol < 0:
        raise ValueError(f"tol and atol must be >= 0, got tol={tol!r}, atol={atol!r}")
    if negative_curvature not in NEGATIVE_CURVATURE:
        raise ValueError(f"negative_curvature must be one of {NEGATIVE_CURVATURE}, got {negative_curvature!r}")
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = torch.dot(r, r)
    threshold = max(tol * float(b.norm()), atol)
    iterations = 0
    while iterations < max_iter and float(rs.sqrt()) > threshold:
        ap = matvec(p)
        curvature = torch.dot(p, ap)
        if float(curvature) == 0.0 or (float(curvature) < 0.0 and negative_curvature == "stop"):
            break
        step = rs / curvature
        x = x + step * p
        r = r - step * ap
        rs_next = torch.dot(r, r)
        p = r + (rs_next / rs) * p
        rs = rs_next
        iterations += 1
    return CGResult(x, iterations, float(rs.sqrt()))


# ---------------------------------------------------------------------------------------- implicit gradient
def _flatten(params: Params) -> Tensor:
    return torch.cat([t.reshape(-1) for t in params.values()])


def _unflatten(flat: Tensor, like: Params) -> Params:
    out, start = {}, 0
    for name, t in like.items():
        out[name] = flat[start:start + t.numel()].view_as(t)
        start += t.numel()
    return out


def _detached(params: Params) -> Params:
    return {name: t.detach() for name, t in params.items()}


def gradient_constraint(inner_loss: InnerLoss) -> Constraint:
    """``f(theta, w, batch) = grad_w L_inner(theta, w, batch)``: the first-order optimality condition
    of the inner problem, OMD's constraint for function approximation (paper Section 6)."""
    return torch.func.grad(inner_loss, argnums=1)


def implicit_vjp(
    constraint: Constraint,
    theta: Params,
    w_star: Params,
    v: Params,
    batch: Any = None,
    *,
    approx: str = "identity",
    damping: float = 1e-5,
    max_iter: int = 100,
    tol: float = 1e-5,
    negative_curvature: str = "stop",
) -> tuple[Params, CGResult | None]:
    """``v^T dw*/dtheta`` for the implicit function ``w*(theta)`` of ``constraint(theta, w*, batch) = 0``
    (Eq. 7): ``-(df/dtheta)^T u`` with ``u = v`` (``approx="identity"``) or the CG solution of
    ``(df/dw + damping I)^T u = v`` (``approx="cg"``; ``tol`` relative, see ``conjugate_gradient``).

    ``theta``, ``w_star`` and ``v`` (``w_star``'s keys and shapes) are detached first. Returns the
    gradient (``theta``'s keys and shapes, no graph) and the CG result (``None`` for the identity).
    """
    if approx not in APPROXIMATIONS:
        raise ValueError(f"approx must be one of {APPROXIMATIONS}, got {approx!r}")
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}")
    if set(v) != set(w_star):
        raise ValueError(f"v must have w_star's keys {sorted(w_star)}, got {sorted(v)}")
    theta, w_star = _detached(theta), _detached(w_star)
    v = {name: v[name].detach() for name in w_star}
    cg = None
    u = v
    if approx == "cg":
        _, hvp = torch.func.vjp(lambda w: constraint(theta, w, batch), w_star)  # u -> (df/dw)^T u

        def operator(flat: Tensor) -> Tensor:
            (product,) = hvp(_unflatten(flat, w_star))
            return _flatten(product) + damping * flat

        cg = conjugate_gradient(operator, _flatten(v), tol=tol, max_iter=max_iter,
                                negative_curvature=negative_curvature)
        u = _unflatten(cg.solution, w_star)
    _, mixed = torch.func.vjp(lambda th: constraint(th, w_star, batch), theta)  # u -> (df/dtheta)^T u
    (grad_theta,) = mixed(u)
    return {name: -grad_theta[name] for name in theta}, cg


def implicit_gradient(
    inner_loss: InnerLoss,
    outer_loss: OuterLoss,
    theta: Params,
    w_star: Params,
    batch: Any = None,
    *,
    approx: str = "identity",
    damping: float = 1e-5,
    max_iter: int = 100,
    tol: float = 1e-5,
    negative_curvature: str = "stop",
) -> tuple[Params, TensorDict]:
    """OMD's model gradient ``dL_outer(w*(theta))/dtheta`` (Eq. 7 / Eq. 13, module docstring) for
    ``w*`` solving ``grad_w inner_loss(theta, w, batch) = 0``.

    ``inner_loss(theta, w, batch)`` must depend on ``theta`` differentiably (a target built with
    ``grad_to_inputs=True`` from the model's predictions), else the gradient is zero.
    ``outer_loss(w)`` closes over the real batch. Returns the gradient (``theta``'s keys, detached:
    set it as the model parameters' ``.grad``) and a TensorDict of detached diagnostics:
    ``loss_outer`` and, for ``approx="cg"``, ``cg_iterations`` and ``cg_residual``.
    """
    w = _detached(w_star)
    v, value = torch.func.grad_and_value(outer_loss)(w)
    grads, cg = implicit_vjp(gradient_constraint(inner_loss), theta, w, v, batch, approx=approx, damping=damping,
                             max_iter=max_iter, tol=tol, negative_curvature=negative_curvature)
    logs = {"loss_outer": value.detach()}
    if cg is not None:
        logs["cg_iterations"] = torch.tensor(cg.iterations)
        logs["cg_residual"] = torch.tensor(cg.residual_norm, dtype=value.dtype)
    return grads, TensorDict(logs, batch_size=[])
