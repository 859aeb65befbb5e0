"""T0: the double integrator of MAAC's gradient-error study (paper 004, Section 5.2): the closed-form
value against a long rollout, the Bellman equation of Q^K, and the exact policy gradient against
finite differences of the exact return."""

import torch

from lightning_mbrl.envs.double_integrator import DoubleIntegrator

F64 = torch.float64
GAIN = torch.tensor([[-1.0, -1.5]], dtype=F64)


def test_value_equals_the_discounted_sum_of_a_long_rollout():
    system = DoubleIntegrator()
    start = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    state, total = start, torch.zeros(16, dtype=F64)
    for t in range(2000):  # gamma^2000 ~ 1e-45
        action = state @ GAIN.T
        total = total + system.gamma**t * system.reward(state, action)
        state = system.step(state, action)
    torch.testing.assert_close(system.value(GAIN, start), total, rtol=1e-10, atol=1e-10)


def test_q_value_satisfies_the_bellman_equation_and_the_policy_value():
    system = DoubleIntegrator()
    s = torch.randn(8, 2, dtype=F64)
    a = torch.randn(8, 1, dtype=F64)
    nxt = system.step(s, a)
    torch.testing.assert_close(system.q_value(GAIN, s, a),
                               system.reward(s, a) + system.gamma * system.q_value(GAIN, nxt, nxt @ GAIN.T))
    torch.testing.assert_close(system.q_value(GAIN, s, s @ GAIN.T), system.value(GAIN, s))


def test_the_exact_policy_gradient_matches_finite_differences_of_the_exact_return():
    system = DoubleIntegrator()
    start = torch.randn(32, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    gain = GAIN.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(system.expected_return(gain, start), gain)
    eps = 1e-6
    for j in range(2):
        bump = torch.zeros_like(GAIN)
        bump[0, j] = eps
        fd = (system.expected_return(GAIN + bump, start) - system.expected_return(GAIN - bump, start)) / (2 * eps)
        torch.testing.assert_close(grad[0, j], fd, rtol=1e-6, atol=1e-9)
    assert grad.abs().min() > 1e-3  # a gain away from the optimum: the gradient is not trivially zero
