"""Unit tests (T0) for DQN: the TD targets and loss of lightning_mbrl.objectives.dqn against
hand-computed oracles, gradient routing, and the DQN module's exploration, target updates and
config validation. (``DQN.update`` needs a Trainer for manual optimisation; the smoke tier runs
it. ``update_target``, the rule it ends with, is tested here on its own.)"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from lightning_mbrl.algos.dqn import DQN
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.models.critic import DiscreteQ
from lightning_mbrl.objectives.dqn import q_loss, td_target
from lightning_mbrl.protocols import DiscreteQFunction, Policy, QFunction

F64 = torch.float64
SMALL = {"env": "CartPole-v1", "hidden": (16, 16)}


def make_dqn(**kwargs) -> DQN:
    return DQN(**{**SMALL, **kwargs})


class TableQ(nn.Module):
    """A Q-network with known values: ``Q(s, .) = table[int(s[0])]`` (the first observation entry
    indexes a row of the table). ``table`` is a parameter so gradient routing can be checked."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=F64))

    def forward(self, observation: Tensor) -> Tensor:
        return self.table[observation[..., 0].long()]


def states(*rows: int) -> Tensor:
    """Observations ``[B, 2]`` whose first entry selects a table row (the second is ignored)."""
    return torch.tensor([[float(r), 0.0] for r in rows], dtype=F64)


# Next-state values chosen so that plain and double DQN disagree on rows 0 and 1:
# online argmax (rows 0, 1, 2) = 1, 0, 2; target max = 5, 7, 3.
ONLINE = [[0.0, 2.0, 1.0], [9.0, 1.0, 2.0], [0.0, 0.0, 4.0]]
TARGET = [[5.0, -1.0, 0.0], [1.0, 7.0, 0.0], [0.0, 2.0, 3.0]]


# ----------------------------------------------------------------------------- TD target
@pytest.mark.parametrize("double, next_values", [(False, [5.0, 7.0, 3.0]), (True, [-1.0, 1.0, 3.0])])
def test_td_target_matches_hand_computed_oracle(double: bool, next_values: list[float]) -> None:
    """plain: ``max_a Q'(s', a)``; double: ``Q'(s', argmax_a Q(s', a))`` (online argmax = 1, 0, 2)."""
    q_net, target_net = TableQ(ONLINE), TableQ(TARGET)
    reward = torch.tensor([1.0, -0.5, 2.0], dtype=F64)
    terminated = torch.tensor([False, False, False])
    y = td_target(reward, terminated, states(0, 1, 2), q_net, target_net, gamma=0.5, double=double)
    expected = reward + 0.5 * torch.tensor(next_values, dtype=F64)
    assert y.shape == (3,) and y.dtype == F64
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert not y.requires_grad and y.grad_fn is None  # no graph to either network


@pytest.mark.parametrize("double", [False, True])
def test_terminated_masks_bootstrap_truncated_does_not(double: bool) -> None:
    """Rows: plain step, time-limit truncation (not terminated), termination. Only ``terminated``
    enters ``td_target``: a truncated transition keeps ``gamma * V(s')`` (Principle 10)."""
    q_net, target_net = TableQ(ONLINE), TableQ(TARGET)
    reward = torch.tensor([1.0, 1.0, 1.0], dtype=F64)
    terminated = torch.tensor([[False], [False], [True]]).squeeze(-1)  # as DQN.update squeezes it
    truncated = torch.tensor([False, True, False])
    assert truncated[1] and not terminated[1]
    y = td_target(reward, terminated, states(2, 2, 2), q_net, target_net, gamma=0.9, double=double)
    # row 2 of both tables: argmax online = 2, target value there = 3 = target max
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 3.0, 1.0 + 0.9 * 3.0, 1.0], dtype=F64))


def test_td_target_accepts_float_terminated_and_discrete_q_network() -> None:
    torch.manual_seed(0)
    q_net, target_net = DiscreteQ(4, 3, (8,)), DiscreteQ(4, 3, (8, 8, 8))
    obs, reward = torch.randn(5, 4), torch.randn(5)
    y_bool = td_target(reward, torch.tensor([0, 1, 0, 1, 0]).bool(), obs, q_net, target_net, 0.99, True)
    y_float = td_target(reward, torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0]), obs, q_net, target_net, 0.99, True)
    torch.testing.assert_close(y_bool, y_float)
    assert torch.equal(y_bool[[1, 3]], reward[[1, 3]])


# ----------------------------------------------------------------------------- Q loss
def test_q_loss_huber_and_mse_values() -> None:
    """TD errors 0.5 (quadratic part of Huber), -2 and 3 (linear part)."""
    q_net = TableQ(ONLINE)
    obs, action = states(0, 1, 2), torch.tensor([1, 0, 2])  # Q(s, a) = 2, 9, 4
    target = torch.tensor([1.5, 11.0, 1.0], dtype=F64)  # errors 0.5, -2, 3
    huber = q_loss(obs, action, target, q_net, loss="huber")
    mse = q_loss(obs, action, target, q_net, loss="mse")
    assert set(huber.keys()) == {"loss_q", "q_mean"}
    torch.testing.assert_close(huber["loss_q"], torch.tensor((0.5 * 0.25 + 1.5 + 2.5) / 3, dtype=F64))
    torch.testing.assert_close(mse["loss_q"], torch.tensor((0.25 + 4.0 + 9.0) / 3, dtype=F64))
    torch.testing.assert_close(huber["q_mean"], torch.tensor(5.0, dtype=F64))
    assert not huber["q_mean"].requires_grad
    # Huber's gradient is the TD error clipped to [-1, 1] (Mnih et al.'s error clipping)
    huber["loss_q"].backward()
    expected_grad = torch.zeros(3, 3, dtype=F64)
    expected_grad[0, 1], expected_grad[1, 0], expected_grad[2, 2] = 0.5 / 3, -1.0 / 3, 1.0 / 3
    torch.testing.assert_close(q_net.table.grad, expected_grad)


def test_q_loss_rejects_unknown_loss() -> None:
    with pytest.raises(ValueError, match="loss must be one of"):
        q_loss(states(0), torch.tensor([0]), torch.zeros(1, dtype=F64), TableQ(ONLINE), loss="l1")


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_q_loss_reaches_only_the_online_network(double: bool, loss: str) -> None:
    torch.manual_seed(0)
    q_net = DiscreteQ(4, 3, (8, 8))
    target_net = DiscreteQ(4, 3, (8, 8))  # trainable on purpose: only no_grad may keep it clean
    obs, next_obs = torch.randn(6, 4), torch.randn(6, 4)
    action, reward = torch.randint(3, (6,)), torch.randn(6)
    y = td_target(reward, torch.zeros(6, dtype=torch.bool), next_obs, q_net, target_net, 0.99, double)
    out = q_loss(obs, action, y, q_net, loss=loss)
    out["loss_q"].backward()
    for name, p in q_net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name, p in target_net.named_parameters():
        assert p.grad is None, name


@pytest.mark.parametrize("double", [False, True])
def test_td_target_reaches_its_inputs_only_when_asked(double: bool) -> None:
    """``grad_to_inputs=True``: the target is differentiable in reward and next observation (a
    model's predictions) with the gradient of finite differences, and neither network's parameters
    get one; the default target carries no graph."""
    torch.manual_seed(0)
    q_net, target_net = DiscreteQ(4, 3, (8,)).double(), DiscreteQ(4, 3, (8,)).double()
    reward = torch.randn(5, dtype=F64, requires_grad=True)
    next_obs = torch.randn(5, 4, dtype=F64, requires_grad=True)
    terminated = torch.tensor([False, True, False, False, True])
    assert td_target(reward, terminated, next_obs, q_net, target_net, 0.9, double).grad_fn is None

    def target(r: Tensor, s: Tensor) -> Tensor:
        return td_target(r, terminated, s, q_net, target_net, 0.9, double, grad_to_inputs=True)

    assert torch.autograd.gradcheck(target, (reward, next_obs), eps=1e-6, atol=1e-6)
    target(reward, next_obs).sum().backward()
    torch.testing.assert_close(reward.grad, torch.ones(5, dtype=F64))
    assert (next_obs.grad[terminated] == 0).all() and next_obs.grad[~terminated].abs().sum() > 0
    assert all(p.grad is None and p.requires_grad for p in [*q_net.parameters(), *target_net.parameters()])


# ----------------------------------------------------------------------------- the module
def test_module_shapes_protocols_and_state_dict() -> None:
    dqn = make_dqn(hidden=(16, 8, 4))
    assert isinstance(dqn, Policy) and isinstance(dqn, QFunction) and isinstance(dqn, DiscreteQFunction)
    assert {k.split(".")[0] for k in dqn.state_dict()} == {"q_net", "target_net"}
    linears = [m for m in dqn.q_net.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 4), (8, 16), (4, 8), (2, 4)]  # CartPole: 4 -> 2
    for p, p_t in zip(dqn.q_net.parameters(), dqn.target_net.parameters()):
        assert torch.equal(p, p_t) and p.data_ptr() != p_t.data_ptr()
        assert p.requires_grad and not p_t.requires_grad
    obs = torch.randn(3, 5, 4)
    assert dqn.q_all(obs).shape == (3, 5, 2)
    action = dqn.act(obs)
    assert action.shape == (3, 5) and action.dtype == torch.long
    single = dqn.act(torch.randn(4))  # one env: a scalar, as CartPole's categorical spec wants
    assert single.shape == () and single.dtype == torch.long
    opt = dqn.make_optimizers()["q"]
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in dqn.q_net.parameters()}


def test_q_values_gathers_given_actions_with_a_critic_dim() -> None:
    dqn = make_dqn()
    obs = torch.randn(6, 4)
    action = torch.tensor([0, 1, 1, 0, 1, 0])
    q = dqn.q_values(obs, action)
    assert q.shape == (1, 6)
    torch.testing.assert_close(q[0], dqn.q_all(obs)[torch.arange(6), action])
    torch.testing.assert_close(dqn.q_values(obs, action.unsqueeze(-1)), q)  # [B, 1] actions too


def test_act_deterministic_is_argmax() -> None:
    dqn = make_dqn(epsilon_end=1.0, epsilon_start=1.0)  # fully random unless deterministic
    obs = torch.randn(200, 4)
    assert torch.equal(dqn.act(obs, deterministic=True), dqn.q_all(obs).argmax(-1))
    dqn = make_dqn(exploration="softmax", temperature=100.0)
    assert torch.equal(dqn.act(obs, deterministic=True), dqn.q_all(obs).argmax(-1))


def test_epsilon_schedule_is_linear_in_frames_after_warm_up() -> None:
    dqn = make_dqn(init_random_frames=100, epsilon_start=1.0, epsilon_end=0.25, epsilon_decay_frames=1000)
    expected = {0: 1.0, 100: 1.0, 350: 0.8125, 600: 0.625, 850: 0.4375, 1099: 1.0 - 0.75 * 999 / 1000,
                1100: 0.25, 5000: 0.25}
    for frames, eps in expected.items():
        dqn.frames = frames
        assert dqn.epsilon == eps, frames
    dqn = make_dqn(init_random_frames=100, epsilon_start=0.5, epsilon_end=0.1, epsilon_decay_frames=0)
    dqn.frames = 100
    assert dqn.epsilon == 0.1


def test_epsilon_greedy_frequencies() -> None:
    """P(greedy) = 1 - eps + eps / n. With N = 40,000 draws the standard error is below 0.0025;
    the tolerance 0.01 is four of them (the seed is fixed, so the test is deterministic)."""
    dqn = make_dqn(init_random_frames=0, epsilon_start=0.4, epsilon_end=0.4)
    torch.manual_seed(0)
    obs = torch.randn(40_000, 4)
    greedy = dqn.q_all(obs).argmax(-1)
    torch.manual_seed(1)
    action = dqn.act(obs)
    assert abs((action == greedy).double().mean().item() - (1 - 0.4 + 0.4 / 2)) < 0.01
    dqn.frames = 10  # now past a zero-length decay: epsilon_end
    assert dqn.epsilon == 0.4


def test_softmax_exploration_frequencies_match_boltzmann_probabilities() -> None:
    """Four actions with Q = (0, 1, 2, 3) and temperature 2: p = softmax(Q / 2). Over N = 40,000
    draws each frequency has standard error sqrt(p (1 - p) / N) < 0.0025; the tolerance 0.01 is
    four of them (fixed seed: deterministic)."""
    dqn = make_dqn(exploration="softmax", temperature=2.0)
    q_values = torch.tensor([0.0, 1.0, 2.0, 3.0])
    dqn.q_net = TableQ([q_values.tolist()]).float()
    torch.manual_seed(0)
    action = dqn.act(torch.zeros(40_000, 4))
    assert action.dtype == torch.long and action.shape == (40_000,)
    freq = torch.bincount(action, minlength=4).double() / 40_000
    expected = torch.softmax(q_values.double() / 2.0, dim=0)
    assert (freq - expected).abs().max() < 0.01, (freq, expected)
    # a low temperature is (almost) greedy, a high one (almost) uniform
    dqn.hparams.temperature = 0.01
    assert torch.all(dqn.act(torch.zeros(1000, 4)) == 3)


def perturb(module: nn.Module, seed: int) -> None:
    """Stand-in for a gradient step on the online network."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))


def test_hard_target_copy_every_target_update_every_updates() -> None:
    dqn = make_dqn(target_update_every=3)
    copied_at = []
    for step in range(1, 11):
        perturb(dqn.q_net, step)
        before = [p.clone() for p in dqn.target_net.parameters()]
        dqn.updates += 1  # as update() does before update_target()
        dqn.update_target()
        after = list(dqn.target_net.parameters())
        if any(not torch.equal(a, b) for a, b in zip(after, before)):
            copied_at.append(step)
            for p, p_t in zip(dqn.q_net.parameters(), after):
                assert torch.equal(p, p_t) and p.data_ptr() != p_t.data_ptr()
    assert copied_at == [3, 6, 9]
    assert dqn.target_updates == 3
    assert all(not p.requires_grad for p in dqn.target_net.parameters())


def test_polyak_target_update_every_update_when_tau_below_one() -> None:
    dqn = make_dqn(tau=0.25, target_update_every=1000)  # target_update_every is not used
    for step in range(1, 4):
        perturb(dqn.q_net, step)
        expected = [0.75 * p_t + 0.25 * p for p, p_t in zip(dqn.q_net.parameters(), dqn.target_net.parameters())]
        dqn.updates += 1
        dqn.update_target()
        for p_t, e in zip(dqn.target_net.parameters(), expected):
            torch.testing.assert_close(p_t, e)
    assert dqn.target_updates == 3


def test_same_seed_same_init_without_touching_global_rng() -> None:
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    a = make_dqn(seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), rng_before)
    b = make_dqn(seed=7).state_dict()
    c = make_dqn(seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["q_net.net.0.weight"], c["q_net.net.0.weight"])


# ----------------------------------------------------------------------------- config validation
def test_continuous_env_is_rejected_naming_the_action_space() -> None:
    with pytest.raises(ConfigError, match="DQN needs a discrete action space") as err:
        make_dqn(env="Pendulum-v1")
    assert "Pendulum-v1" in str(err.value) and "Box action space" in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("exploration", "greedy"),
        ("loss", "l1"),
        ("epsilon_start", 1.5),
        ("epsilon_end", -0.1),
        ("epsilon_decay_frames", -1),
        ("target_update_every", 0),
        ("target_update_every", 2.5),
        ("tau", 0.0),
        ("tau", 1.5),
        ("temperature", 0.0),
        ("lr", 0.0),
        ("gamma", 1.1),
        ("max_grad_norm", 0.0),
        ("hidden", (16, 0)),
        ("activation", "gelu"),
        ("batch_size", 0),
        ("updates_per_frame", 0),
        ("max_episode_steps", 0),
    ],
)
def test_invalid_config_names_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=field):
        make_dqn(**{field: value})


def test_optional_settings_accept_their_off_values() -> None:
    dqn = make_dqn(max_grad_norm=None, hidden=(), epsilon_decay_frames=0, double=False, loss="mse")
    assert dqn.q_all(torch.randn(2, 4)).shape == (2, 2)
    dqn = make_dqn(hidden=(8, 8, 8), activation="elu")  # Young et al.'s nonlinearity
    assert sum(isinstance(m, nn.ELU) for m in dqn.q_net.modules()) == 3
