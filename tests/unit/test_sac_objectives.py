"""Unit tests (T0) for lightning_mbrl.objectives.sac: exact oracles for the soft TD target and the
three losses, which parameters each loss reaches, and a finite-difference check of the actor loss.

Randomness: ``actor.sample`` draws ``torch.randn(*B, A)`` with the observation's dtype from the
global generator, so seeding with ``torch.manual_seed(s)`` right before a call and right before
drawing ``torch.randn(B, A, dtype=float64)`` by hand gives the library and the oracle the same noise.
"""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl import keys
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.objectives.sac import actor_loss, alpha_loss, critic_loss, soft_td_target

OBS, ACT, B, HIDDEN = 3, 2, 6, (8, 8)
F64 = torch.float64


def make_modules(seed: int = 0) -> tuple[TanhGaussianActor, EnsembleQ, EnsembleQ, nn.Parameter]:
    torch.manual_seed(seed)
    actor = TanhGaussianActor(OBS, ACT, HIDDEN).double()
    critic = EnsembleQ(OBS, ACT, HIDDEN, n_critics=2).double()
    target_critic = EnsembleQ(OBS, ACT, HIDDEN, n_critics=2).double().requires_grad_(False)
    log_alpha = nn.Parameter(torch.tensor(math.log(0.3), dtype=F64))
    return actor, critic, target_critic, log_alpha


def oracle_sample(actor: TanhGaussianActor, obs: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """``a = tanh(u)``, ``log pi = log N(u; mu, sigma) - log(1 - tanh(u)^2)`` by change of variables."""
    torch.manual_seed(seed)
    noise = torch.randn(obs.shape[0], ACT, dtype=obs.dtype)
    mu, log_std = actor(obs)
    std = log_std.exp()
    u = mu + std * noise
    log_prob = torch.distributions.Normal(mu, std).log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    return torch.tanh(u), log_prob


def transitions(terminated: list[bool], truncated: list[bool], seed: int = 1) -> TensorDict:
    """A replay-sample-shaped batch with TorchRL's keys (done = terminated or truncated)."""
    torch.manual_seed(seed)
    n = len(terminated)
    term = torch.tensor(terminated).unsqueeze(-1)
    trunc = torch.tensor(truncated).unsqueeze(-1)
    return TensorDict(
        {
            keys.OBSERVATION: torch.randn(n, OBS, dtype=F64),
            keys.ACTION: torch.rand(n, ACT, dtype=F64) * 2 - 1,
            keys.NEXT_OBSERVATION: torch.randn(n, OBS, dtype=F64),
            keys.REWARD: torch.randn(n, 1, dtype=F64),
            keys.TERMINATED: term,
            keys.TRUNCATED: trunc,
            keys.DONE: term | trunc,
        },
        batch_size=[n],
    )


def td_target_from_batch(batch: TensorDict, actor, target_critic, alpha, gamma) -> Tensor:
    """Called exactly as SAC.update calls it."""
    return soft_td_target(
        batch.get(keys.REWARD).squeeze(-1), batch.get(keys.TERMINATED).squeeze(-1),
        batch.get(keys.NEXT_OBSERVATION), actor, target_critic, alpha, gamma,
    )


# ----------------------------------------------------------------------------- soft TD target
def test_soft_td_target_matches_oracle_and_truncation_keeps_bootstrap() -> None:
    actor, _, target_critic, log_alpha = make_modules(0)
    gamma = 0.9
    alpha = log_alpha.detach().exp()
    # rows: plain step, time-limit truncation, termination, termination that is also truncated
    batch = transitions([False, False, True, True], [False, True, False, True])

    torch.manual_seed(7)
    y = td_target_from_batch(batch, actor, target_critic, alpha, gamma)

    next_obs, reward = batch.get(keys.NEXT_OBSERVATION), batch.get(keys.REWARD).squeeze(-1)
    with torch.no_grad():
        next_action, next_log_prob = oracle_sample(actor, next_obs, seed=7)
        q = target_critic(next_obs, next_action)
        soft_value = torch.minimum(q[0], q[1]) - alpha * next_log_prob
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64)
    expected = reward + gamma * mask * soft_value

    assert y.shape == (4,) and y.dtype == F64
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    # Truncated but not terminated: the bootstrap stays (Principle 10).
    assert (y[1] - reward[1]).abs() > 1e-3
    torch.testing.assert_close(y[1] - reward[1], gamma * soft_value[1], rtol=1e-10, atol=1e-10)
    # Terminated: the target is the reward, exactly.
    assert torch.equal(y[2:], reward[2:])


def test_soft_td_target_uses_min_over_critics_not_mean() -> None:
    actor, _, target_critic, _ = make_modules(1)
    with torch.no_grad():  # make critic 1 exactly critic 0 + 5: the min is always critic 0
        for layer in target_critic.net.layers:
            layer.weight[1].copy_(layer.weight[0])
            layer.bias[1].copy_(layer.bias[0])
        target_critic.net.layers[-1].bias[1] += 5.0
    batch = transitions([False] * 3, [False] * 3)
    zero_alpha = torch.tensor(0.0, dtype=F64)
    torch.manual_seed(3)
    y = td_target_from_batch(batch, actor, target_critic, zero_alpha, 1.0)
    with torch.no_grad():
        a, _ = oracle_sample(actor, batch.get(keys.NEXT_OBSERVATION), seed=3)
        q0 = target_critic(batch.get(keys.NEXT_OBSERVATION), a)[0]
    torch.testing.assert_close(y, batch.get(keys.REWARD).squeeze(-1) + q0, rtol=1e-12, atol=1e-12)


def test_soft_td_target_carries_no_graph() -> None:
    actor, _, target_critic, log_alpha = make_modules(2)
    batch = transitions([False, True], [True, False])
    y = td_target_from_batch(batch, actor, target_critic, log_alpha.exp(), 0.99)
    assert not y.requires_grad and y.grad_fn is None


# ----------------------------------------------------------------------------- critic loss
def test_critic_loss_value_and_gradient_routing() -> None:
    actor, critic, target_critic, log_alpha = make_modules(3)
    batch = transitions([False, False, True, False, True, False], [False, True, False, False, False, True])
    # alpha with a graph to log_alpha: the target must still not reach it (computed under no_grad)
    y = td_target_from_batch(batch, actor, target_critic, log_alpha.exp(), 0.99)
    obs, action = batch.get(keys.OBSERVATION), batch.get(keys.ACTION)
    out = critic_loss(obs, action, y, critic)

    with torch.no_grad():
        q = critic(obs, action)
        expected = sum(0.5 * ((q[j] - y) ** 2).mean() for j in range(2))
    torch.testing.assert_close(out["loss_critic"], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["q_mean"], q.mean())
    assert not out["q_mean"].requires_grad

    out["loss_critic"].backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in actor.named_parameters():
        assert p.grad is None, name
    assert log_alpha.grad is None
    for p in target_critic.parameters():
        assert p.grad is None


# ----------------------------------------------------------------------------- actor loss
def test_actor_loss_value_and_gradient_routing() -> None:
    actor, critic, _, log_alpha = make_modules(4)
    obs = transitions([False] * B, [False] * B).get(keys.OBSERVATION)
    alpha = log_alpha.exp()  # carries a graph: the actor loss must detach it

    torch.manual_seed(11)
    out, log_prob = actor_loss(obs, actor, critic, alpha)

    with torch.no_grad():
        a, lp = oracle_sample(actor, obs, seed=11)
        q = critic(obs, a)
        expected = (alpha * lp - torch.minimum(q[0], q[1])).mean()
    torch.testing.assert_close(out["loss_actor"], expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_prob, lp, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out["entropy"], -lp.mean(), rtol=1e-10, atol=1e-10)
    assert log_prob.requires_grad and not out["entropy"].requires_grad

    out["loss_actor"].backward()
    for name, p in actor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in critic.named_parameters():
        assert p.grad is None, name
        assert p.requires_grad, name  # frozen only for the duration of the loss
    assert log_alpha.grad is None


def test_alpha_loss_reaches_only_log_alpha() -> None:
    actor, critic, _, log_alpha = make_modules(5)
    obs = transitions([False] * B, [False] * B).get(keys.OBSERVATION)
    torch.manual_seed(0)
    _, log_prob = actor_loss(obs, actor, critic, log_alpha.exp())
    target_entropy = -float(ACT)
    out = alpha_loss(log_alpha, log_prob, target_entropy)
    torch.testing.assert_close(
        out["loss_alpha"], -(log_alpha * (log_prob + target_entropy)).mean().detach(), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(out["alpha"], torch.tensor(0.3, dtype=F64))
    out["loss_alpha"].backward()
    assert log_alpha.grad is not None and log_alpha.grad != 0
    for name, p in [*actor.named_parameters(), *critic.named_parameters()]:
        assert p.grad is None, name


def test_joint_actor_and_alpha_backward_equals_separate_backwards() -> None:
    """SAC.update backpropagates loss_actor + loss_alpha at once; the parameter sets are disjoint,
    so each parameter must get exactly the gradient of its own loss."""
    actor, critic, _, log_alpha = make_modules(6)
    obs = transitions([False] * B, [False] * B).get(keys.OBSERVATION)
    alpha = log_alpha.detach().exp()

    torch.manual_seed(1)
    out, log_prob = actor_loss(obs, actor, critic, alpha)
    out["loss_actor"].backward()
    actor_grads = [p.grad.clone() for p in actor.parameters()]
    alpha_loss(log_alpha, log_prob, -2.0)["loss_alpha"].backward()
    alpha_grad = log_alpha.grad.clone()

    actor.zero_grad(set_to_none=True)
    log_alpha.grad = None
    torch.manual_seed(1)
    out, log_prob = actor_loss(obs, actor, critic, alpha)
    (out["loss_actor"] + alpha_loss(log_alpha, log_prob, -2.0)["loss_alpha"]).backward()
    for p, g in zip(actor.parameters(), actor_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_alpha.grad, alpha_grad, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- alpha loss sign
@pytest.mark.parametrize("shift, alpha_should_grow", [(+1.5, True), (-1.5, False)])
def test_alpha_loss_gradient_sign(shift: float, alpha_should_grow: bool) -> None:
    """d L / d log_alpha = -E[log pi + H_target]: entropy below target (log pi + H_target > 0)
    means a negative gradient, so a descent step increases alpha."""
    torch.manual_seed(0)
    target_entropy = -1.0
    log_prob = -target_entropy + shift + 0.1 * torch.randn(8, dtype=F64)  # log_prob + target = shift + noise
    log_alpha = nn.Parameter(torch.tensor(0.2, dtype=F64))
    alpha_loss(log_alpha, log_prob, target_entropy)["loss_alpha"].backward()
    torch.testing.assert_close(log_alpha.grad, -(log_prob + target_entropy).mean(), rtol=1e-12, atol=1e-12)
    assert (log_alpha.grad < 0) == alpha_should_grow

    before = log_alpha.detach().exp().item()
    with torch.no_grad():
        log_alpha -= 0.1 * log_alpha.grad
    assert (log_alpha.exp().item() > before) == alpha_should_grow


# ----------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize(
    "layer, row",
    [(0, None), (2, None), (4, 0), (4, ACT + 1)],  # last layer: a mu row and a log_std row
    ids=["first", "hidden", "last-mu", "last-logstd"],
)
def test_actor_loss_gradient_matches_finite_differences(layer: int, row: int | None) -> None:
    """Central differences of ``loss_actor`` w.r.t. one actor weight. The noise is held fixed by
    re-seeding the global generator before every ``actor_loss`` call (``actor.sample`` then draws
    the same ``xi``), so the loss is a deterministic function of the weights."""
    actor, critic, _, log_alpha = make_modules(7)
    obs = transitions([False] * B, [False] * B).get(keys.OBSERVATION)
    alpha = log_alpha.detach().exp()

    def loss() -> Tensor:
        torch.manual_seed(99)
        return actor_loss(obs, actor, critic, alpha)[0]["loss_actor"]

    loss().backward()
    weight = actor.net[layer].weight
    grad = weight.grad if row is None else weight.grad[row : row + 1]
    flat = int(grad.abs().argmax())  # the entry with the largest gradient (avoids dead ReLU units)
    index = ((row or 0) + flat // grad.shape[1], flat % grad.shape[1])
    analytic = weight.grad[index].item()
    assert abs(analytic) > 1e-4

    eps = 1e-6
    with torch.no_grad():
        original = weight[index].item()
        weight[index] = original + eps
        plus = loss().item()
        weight[index] = original - eps
        minus = loss().item()
        weight[index] = original
    numeric = (plus - minus) / (2 * eps)
    assert numeric == pytest.approx(analytic, rel=1e-5, abs=1e-8)


class LinearModel(nn.Module):
    """A toy world model: ``(s, a) -> (r, s')``, linear, for routing gradients through TD targets."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(OBS + ACT, 1 + OBS).double()

    def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(torch.cat([obs, action], -1))
        return out[:, 0], obs + out[:, 1:]


def model_critic_loss(model, actor, critic, target_critic, log_alpha, obs, action, grad_to_inputs, seed=3):
    reward, next_obs = model(obs, action)
    torch.manual_seed(seed)  # the same a' ~ pi(.|s') in every call
    target = soft_td_target(reward, torch.zeros(B, dtype=torch.bool), next_obs, actor, target_critic,
                            log_alpha.exp(), 0.99, grad_to_inputs=grad_to_inputs)
    return critic_loss(obs, action, target, critic)["loss_critic"]


@pytest.mark.parametrize("grad_to_inputs", [False, True])
def test_td_target_reaches_the_model_only_when_asked(grad_to_inputs):
    """OMD's need: the Bellman loss on model-predicted (r, s') differentiated with respect to the
    model. By default the target is a constant (the model gets nothing); asked, the model gets the
    gradient, and the actor, the target critics and alpha never do."""
    actor, critic, target_critic, log_alpha = make_modules()
    torch.manual_seed(1)
    model = LinearModel()
    obs, action = torch.randn(B, OBS, dtype=F64), torch.rand(B, ACT, dtype=F64) * 2 - 1
    model_critic_loss(model, actor, critic, target_critic, log_alpha, obs, action, grad_to_inputs).backward()
    assert all(p.grad is not None for p in critic.parameters())
    assert all(p.grad is None for p in [*actor.parameters(), *target_critic.parameters(), log_alpha])
    reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()]
    assert reached == [grad_to_inputs] * 2
    assert all(p.requires_grad for p in actor.parameters())  # the named stop-gradient is undone


def test_td_target_gradient_into_the_model_matches_finite_differences():
    actor, critic, target_critic, log_alpha = make_modules()
    torch.manual_seed(1)
    model = LinearModel()
    obs, action = torch.randn(B, OBS, dtype=F64), torch.rand(B, ACT, dtype=F64) * 2 - 1
    loss = lambda: model_critic_loss(model, actor, critic, target_critic, log_alpha, obs, action, True)  # noqa: E731
    (grad,) = torch.autograd.grad(loss(), [model.net.weight])
    numeric = torch.zeros_like(grad)
    eps = 1e-6
    with torch.no_grad():
        for index in [(0, 0), (0, 3), (1, 2), (2, 4), (3, 1)]:
            model.net.weight[index] += eps
            up = loss()
            model.net.weight[index] -= 2 * eps
            down = loss()
            model.net.weight[index] += eps
            numeric[index] = (up - down) / (2 * eps)
            torch.testing.assert_close(grad[index], numeric[index], rtol=1e-5, atol=1e-8)
