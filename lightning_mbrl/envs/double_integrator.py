"""A discounted linear-quadratic double integrator with exact values and policy gradients (paper 004,
Section 5.2: the system on which MAAC's gradient error is measured against the analytic gradient).

State ``s = (position, velocity)``, action ``a`` (a force), step ``dt``:

    s' = A s + B a,   A = [[1, dt], [0, 1]],   B = [[dt^2 / 2], [dt]]
    r(s, a) = -(s^T Q s + a^T R a)

For a linear policy ``a = K s`` (``K [1, 2]``) with ``A + B K`` stable, the discounted value is
``V^K(s) = -s^T P_K s`` with ``P_K = Q + K^T R K + gamma (A + B K)^T P_K (A + B K)`` (a discrete
Lyapunov equation, solved exactly as a linear system in ``vec(P)``), and
``Q^K(s, a) = r(s, a) - gamma (A s + B a)^T P_K (A s + B a)``. Everything is differentiable in ``K``
(``torch.linalg.solve``), so ``torch.autograd`` gives the exact policy gradient of
``J(K) = mean_i V^K(s_i)``. Pure torch, no Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class DoubleIntegrator:
    dt: float = 0.1
    gamma: float = 0.95
    state_cost: tuple[float, float] = (1.0, 1.0)
    action_cost: float = 0.1
    dtype: torch.dtype = torch.float64
    A: Tensor = field(init=False)
    B: Tensor = field(init=False)
    Q: Tensor = field(init=False)
    R: Tensor = field(init=False)

    def __post_init__(self) -> None:
        dt = self.dt
        self.A = torch.tensor([[1.0, dt], [0.0, 1.0]], dtype=self.dtype)
        self.B = torch.tensor([[0.5 * dt * dt], [dt]], dtype=self.dtype)
        self.Q = torch.diag(torch.tensor(self.state_cost, dtype=self.dtype))
        self.R = torch.tensor([[self.action_cost]], dtype=self.dtype)

    # ------------------------------------------------------------------------------ the MDP
    def step(self, state: Tensor, action: Tensor) -> Tensor:
        """``state [*B, 2], action [*B, 1] -> next state [*B, 2]``."""
        return state @ self.A.T + action @ self.B.T

    def reward(self, state: Tensor, action: Tensor) -> Tensor:
        """``-(s^T Q s + a^T R a)`` -> ``[*B]``."""
        return -((state @ self.Q) * state).sum(-1) - ((action @ self.R) * action).sum(-1)

    # ------------------------------------------------------------------------------ exact values
    def value_matrix(self, gain: Tensor) -> Tensor:
        """``P_K [2, 2]`` of the linear policy ``a = K s`` (``gain [1, 2]``), differentiable in ``K``."""
        closed = self.A + self.B @ gain
        cost = self.Q + gain.T @ self.R @ gain
        n = closed.shape[0]
        eye = torch.eye(n * n, dtype=self.dtype)
        # vec(P) = vec(cost) + gamma (closed^T kron closed^T) vec(P)   (row-major vec)
        system = eye - self.gamma * torch.kron(closed.T, closed.T)
        return torch.linalg.solve(system, cost.reshape(-1)).reshape(n, n)

    def value(self, gain: Tensor, state: Tensor) -> Tensor:
        """``V^K(s) = -s^T P_K s`` -> ``[*B]``."""
        return -((state @ self.value_matrix(gain)) * state).sum(-1)

    def q_value(self, gain: Tensor, state: Tensor, action: Tensor) -> Tensor:
        """``Q^K(s, a) = r(s, a) + gamma V^K(A s + B a)`` -> ``[*B]``."""
        return self.reward(state, action) + self.gamma * self.value(gain, self.step(state, action))

    def expected_return(self, gain: Tensor, start: Tensor) -> Tensor:
        """``J(K) = mean_i V^K(s_i)`` over start states ``start [N, 2]``; its gradient in ``K`` is exact."""
        return self.value(gain, start).mean()
