"""Unit tests (T0) for lightning_mbrl.models: batched MLPs, the tanh-Gaussian actor, the critic
ensemble and the parameter utilities, each against a hand-written oracle."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.mlp import BatchedMLP
from lightning_mbrl.models.utils import frozen, polyak_update

E, B, IN, HIDDEN, OUT = 3, 5, 4, (6, 7), 2


def member_forward(net: BatchedMLP, e: int, x: torch.Tensor) -> torch.Tensor:
    """Oracle: member ``e`` of ``net`` as a plain MLP, ``x @ W[e] + b[e]`` with ReLU between layers."""
    h = x
    for i, layer in enumerate(net.layers):
        if i > 0:
            h = torch.relu(h)
        h = h @ layer.weight[e] + layer.bias[e, 0]
    return h


# ----------------------------------------------------------------------------- BatchedMLP
def test_batched_mlp_shared_input_equals_independent_members() -> None:
    torch.manual_seed(0)
    net = BatchedMLP(E, IN, HIDDEN, OUT).double()
    x = torch.randn(B, IN, dtype=torch.float64)
    out = net(x)
    assert out.shape == (E, B, OUT)
    expected = torch.stack([member_forward(net, e, x) for e in range(E)])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_batched_mlp_per_member_input_equals_independent_members() -> None:
    torch.manual_seed(1)
    net = BatchedMLP(E, IN, HIDDEN, OUT).double()
    x = torch.randn(E, B, IN, dtype=torch.float64)
    out = net(x)
    assert out.shape == (E, B, OUT)
    expected = torch.stack([member_forward(net, e, x[e]) for e in range(E)])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # Member e must see its own input: member 0 applied to input 1 gives a different answer.
    assert not torch.allclose(out[0], member_forward(net, 0, x[1]))


def test_batched_mlp_members_are_initialised_differently() -> None:
    torch.manual_seed(2)
    net = BatchedMLP(E, IN, HIDDEN, OUT)
    for layer in net.layers:
        bound = 1.0 / math.sqrt(layer.in_dim)
        assert layer.weight.shape == (E, layer.in_dim, layer.out_dim)
        assert layer.bias.shape == (E, 1, layer.out_dim)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        for e in range(1, E):
            assert not torch.equal(layer.weight[0], layer.weight[e])


@pytest.mark.parametrize("shared_input", [True, False])
@pytest.mark.parametrize("member", [0, 2])
def test_batched_mlp_member_loss_only_reaches_member_slices(shared_input: bool, member: int) -> None:
    torch.manual_seed(3)
    net = BatchedMLP(E, IN, HIDDEN, OUT).double()
    x = torch.randn(B, IN, dtype=torch.float64) if shared_input else torch.randn(E, B, IN, dtype=torch.float64)
    net(x)[member].square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        others = [e for e in range(E) if e != member]
        assert torch.count_nonzero(p.grad[others]) == 0, name
        assert p.grad[member].abs().sum() > 0, name


# ----------------------------------------------------------------------------- actor
def make_actor(seed: int = 0, obs_dim: int = 3, act_dim: int = 2) -> TanhGaussianActor:
    torch.manual_seed(seed)
    return TanhGaussianActor(obs_dim, act_dim, hidden=(8, 8)).double()


def test_squash_log_prob_matches_change_of_variables() -> None:
    actor = make_actor(0)
    torch.manual_seed(10)
    obs = torch.randn(6, 3, dtype=torch.float64)
    noise = torch.randn(6, 2, dtype=torch.float64)
    action, log_prob = actor.squash(obs, noise)

    mu, log_std = actor(obs)
    std = log_std.exp()
    u = mu + std * noise
    assert u.abs().max() < 5  # moderate: the naive formula below is accurate here
    oracle = torch.distributions.Normal(mu, std).log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    assert action.shape == (6, 2) and log_prob.shape == (6,)
    torch.testing.assert_close(log_prob, oracle, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(action, torch.tanh(u), rtol=0, atol=0)
    assert action.abs().max() < 1


def test_squash_log_prob_is_stable_for_saturated_actions() -> None:
    """Far in the tail the naive ``log(1 - tanh(u)^2)`` is ``-inf`` in float32; the library's must
    equal the exact ``-2 log cosh(u)`` (computed here by a different identity)."""
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, hidden=(8,))
    obs = torch.zeros(2, 3)
    noise = torch.tensor([[30.0, -30.0], [60.0, 0.0]])
    action, log_prob = actor.squash(obs, noise)
    assert torch.isfinite(log_prob).all()
    assert torch.isinf(torch.log(1 - torch.tanh(torch.tensor(30.0)) ** 2))  # the naive formula fails

    mu, log_std = (t.double() for t in actor(obs))
    u = mu + log_std.exp() * noise.double()
    au = u.abs()
    log_cosh = au + torch.log1p(torch.exp(-2 * au)) - math.log(2.0)
    oracle = torch.distributions.Normal(mu, log_std.exp()).log_prob(u).sum(-1) + 2 * log_cosh.sum(-1)
    torch.testing.assert_close(log_prob.double(), oracle, rtol=1e-5, atol=1e-4)
    assert action.abs().max() <= 1


def test_mode_is_tanh_of_mean() -> None:
    actor = make_actor(1)
    obs = torch.randn(4, 3, dtype=torch.float64)
    mu, _ = actor(obs)
    torch.testing.assert_close(actor.mode(obs), torch.tanh(mu), rtol=0, atol=0)


def test_sample_is_squash_of_standard_normal_noise_and_reparameterised() -> None:
    actor = make_actor(2)
    obs = torch.randn(4, 3, dtype=torch.float64)
    torch.manual_seed(123)
    action, log_prob = actor.sample(obs)
    torch.manual_seed(123)
    noise = torch.randn(4, 2, dtype=torch.float64)
    expected_action, expected_log_prob = actor.squash(obs, noise)
    torch.testing.assert_close(action, expected_action, rtol=0, atol=0)
    torch.testing.assert_close(log_prob, expected_log_prob, rtol=0, atol=0)
    assert action.dtype == torch.float64 and action.abs().max() < 1

    # Reparameterised: the sampled action is a differentiable function of mu and log_std, so every
    # parameter of the last layer (both the mu rows and the log_std rows) gets gradient.
    action.sum().backward()
    last = actor.net[-1]
    assert last.weight.grad[:2].abs().sum() > 0  # mu rows
    assert last.weight.grad[2:].abs().sum() > 0  # log_std rows: only through the noise path
    for name, p in actor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bias, expected", [(10.0, 2.0), (-30.0, -20.0), (0.5, 0.5)])
def test_log_std_is_clamped_to_bounds(bias: float, expected: float) -> None:
    actor = make_actor(3)
    last = actor.net[-1]
    with torch.no_grad():
        last.weight[2:].zero_()
        last.bias[2:].fill_(bias)
    obs = torch.randn(5, 3, dtype=torch.float64)
    _, log_std = actor(obs)
    assert torch.equal(log_std, torch.full_like(log_std, expected))


def test_log_std_custom_bounds() -> None:
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 1, hidden=(4,), log_std_bounds=(-1.0, 0.5))
    with torch.no_grad():
        actor.net[-1].weight[1:].zero_()
        actor.net[-1].bias[1:].fill_(3.0)
    _, log_std = actor(torch.randn(2, 3))
    assert torch.equal(log_std, torch.full_like(log_std, 0.5))


# ----------------------------------------------------------------------------- critic
def test_ensemble_q_shape_members_and_oracle() -> None:
    torch.manual_seed(0)
    n_critics, obs_dim, act_dim = 3, 4, 2
    critic = EnsembleQ(obs_dim, act_dim, hidden=(8, 8), n_critics=n_critics).double()
    obs = torch.randn(B, obs_dim, dtype=torch.float64)
    act = torch.rand(B, act_dim, dtype=torch.float64) * 2 - 1
    q = critic(obs, act)
    assert q.shape == (n_critics, B)
    for j in range(1, n_critics):
        assert not torch.allclose(q[0], q[j])
    x = torch.cat([obs, act], dim=-1)
    expected = torch.stack([member_forward(critic.net, j, x)[:, 0] for j in range(n_critics)])
    torch.testing.assert_close(q, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- frozen
def test_frozen_passes_gradient_to_input_but_not_parameters() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    with frozen(net) as same:
        assert same is net
        assert all(not p.requires_grad for p in net.parameters())
        net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # The input gradient is the true one: sum_b d/dx of W2 tanh(W1 x + b1) + b2.
    w1, b1, w2 = net[0].weight, net[0].bias, net[2].weight
    pre = x.detach() @ w1.T + b1
    expected = ((1 - torch.tanh(pre) ** 2) * w2) @ w1
    torch.testing.assert_close(x.grad, expected.detach())
    for p in net.parameters():
        assert p.grad is None
        assert p.requires_grad


def test_frozen_restores_on_exception_and_keeps_already_frozen_params() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    net[0].bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"):
        with frozen(net):
            raise RuntimeError("boom")
    assert net[0].weight.requires_grad and net[1].weight.requires_grad and net[1].bias.requires_grad
    assert not net[0].bias.requires_grad  # frozen before the context: stays frozen


# ----------------------------------------------------------------------------- polyak_update
def _pair(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    target = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    source = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    return target, source


def test_polyak_update_is_convex_combination() -> None:
    target, source = _pair(0)
    before = [p.detach().clone() for p in target.parameters()]
    src = [p.detach().clone() for p in source.parameters()]
    polyak_update(target, source, 0.3)
    for p, t0, s in zip(target.parameters(), before, src):
        torch.testing.assert_close(p.detach(), 0.7 * t0 + 0.3 * s, rtol=1e-14, atol=1e-14)
    for p, s in zip(source.parameters(), src):  # the source is untouched
        assert torch.equal(p.detach(), s)


def test_polyak_update_tau_one_copies_and_tau_zero_keeps() -> None:
    target, source = _pair(1)
    before = copy.deepcopy(target.state_dict())
    polyak_update(target, source, 0.0)
    for name, p in target.state_dict().items():
        assert torch.equal(p, before[name])
    polyak_update(target, source, 1.0)
    for (name, p), s in zip(target.state_dict().items(), source.state_dict().values()):
        assert torch.equal(p, s), name


def test_polyak_update_works_on_trainable_target_without_recording_a_graph() -> None:
    """In-place updates of leaves that require grad are only legal (and graph-free) under no_grad."""
    target, source = _pair(2)
    polyak_update(target, source, 0.5)
    for p in target.parameters():
        assert p.is_leaf and p.grad_fn is None and p.requires_grad
