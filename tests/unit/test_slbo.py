"""Unit tests (T0) for MBSAC's deterministic SLBO model and the running normaliser: exact oracles
(batch statistics, a zero network, the known reward function), a linear system the model must learn,
and gradient routing of the loss and of rollouts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from lightning_mbrl import keys
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.normalizer import RunningNormalizer
from lightning_mbrl.models.slbo import DeterministicDynamics, FixupBlock

OBS, ACT = 5, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def first_coordinate_reward(obs, action, next_obs):
    return next_obs[..., 0] - 0.1 * action.square().sum(-1)


def make_model(seed: int = 0, **kwargs) -> DeterministicDynamics:
    torch.manual_seed(seed)
    return DeterministicDynamics(OBS, ACT, 32, 2, reward_fn=first_coordinate_reward, **kwargs).double()


def linear_system(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a_mat = torch.eye(OBS, dtype=torch.float64) + 0.1 * torch.randn(OBS, OBS, generator=g, dtype=torch.float64)
    b_mat = torch.randn(ACT, OBS, generator=g, dtype=torch.float64)
    obs = 3.0 + 2.0 * torch.randn(n, OBS, generator=g, dtype=torch.float64)
    action = torch.rand(n, ACT, generator=g, dtype=torch.float64) * 2 - 1
    return obs, action, obs @ a_mat.T + action @ b_mat


# ----------------------------------------------------------------------------------- normaliser
def test_running_normalizer_merges_pieces_into_the_full_batch_statistics() -> None:
    x = torch.randn(1000, 3, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.0], dtype=torch.float64) + 5
    norm = RunningNormalizer(3, min_std=1e-3).double()
    torch.testing.assert_close(norm(x), x)  # identity before any data
    for piece in x.split([1, 10, 489, 500]):
        norm.update(piece)
    assert norm.count == 1000
    torch.testing.assert_close(norm.mean, x.mean(0))
    torch.testing.assert_close(norm.var, x.var(0, unbiased=False))
    torch.testing.assert_close(norm.std[2], torch.tensor(1e-3, dtype=torch.float64))  # constant dim floored
    torch.testing.assert_close(norm.denormalize(norm(x)), x)


# ----------------------------------------------------------------------------------- network
def test_fixup_block_starts_as_relu_identity() -> None:
    torch.manual_seed(0)  # the weight-std bounds below are statistical: fixed draws
    block = FixupBlock(16, n_blocks=2)
    x = torch.randn(8, 16)
    torch.testing.assert_close(block(x), torch.relu(x))
    assert block.fc2.weight.abs().sum() == 0
    # He-normal scaled by n_blocks ** -0.5
    assert 0.5 * (2 / 16 / 2) ** 0.5 < block.fc1.weight.std() < 1.5 * (2 / 16 / 2) ** 0.5


def test_zero_network_predicts_the_mean_change_and_loss_matches_the_slbo_formula() -> None:
    model = make_model()
    obs, action, next_obs = linear_system(256)
    model.update_normalizers(obs, next_obs)
    with torch.no_grad():
        model.output.weight.zero_()
    delta = next_obs - obs
    mean, std = delta.mean(0), delta.std(0, unbiased=False)
    torch.testing.assert_close(model(obs, action), obs + mean)
    # L = mean_b sqrt(mean_d ((delta - mean) / std)^2), written out independently
    expected = torch.stack([((d - mean) / std).pow(2).mean().sqrt() for d in delta]).mean()
    losses = model.loss(obs, action, next_obs)
    torch.testing.assert_close(losses["loss_l2"], expected)
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    torch.testing.assert_close(losses["loss_weight_decay"], 0.5e-5 * sum(w.square().sum() for w in weights))


def test_model_learns_a_linear_system() -> None:
    model = make_model()
    obs, action, next_obs = linear_system(4096)
    model.update_normalizers(obs, next_obs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    first = model.loss(obs, action, next_obs)["loss_l2"].item()
    for _ in range(1500):
        idx = torch.randint(0, 4096, (64,), generator=g)
        loss = model.loss(obs[idx], action[idx], next_obs[idx])
        optimizer.zero_grad()
        (loss["loss_l2"] + loss["loss_weight_decay"]).backward()
        optimizer.step()
    test_obs, test_action, test_next = linear_system(512, seed=0)
    last = model.loss(test_obs, test_action, test_next)["loss_l2"].item()
    assert first > 0.9 and last < 0.1 * first, (first, last)  # normalised error below 10% of the spread


# ----------------------------------------------------------------------------------- verbs
def test_step_uses_known_reward_and_termination() -> None:
    model = make_model(termination_fn=lambda o, a, n: n[..., 1] > 0)
    obs, action = torch.randn(7, OBS, dtype=torch.float64), torch.rand(7, ACT, dtype=torch.float64)
    next_obs, reward, terminated = model.transition(obs, action)
    torch.testing.assert_close(next_obs, model(obs, action))
    torch.testing.assert_close(reward, first_coordinate_reward(obs, action, next_obs))
    assert terminated.dtype == torch.bool and torch.equal(terminated, next_obs[:, 1] > 0)
    assert not make_model().transition(obs, action)[2].any()  # no termination_fn: never


def test_actions_are_clipped_to_the_unit_box() -> None:
    model = make_model()
    obs = torch.randn(4, OBS, dtype=torch.float64)
    action = torch.tensor([[3.0, -7.0]], dtype=torch.float64).expand(4, 2)
    torch.testing.assert_close(model(obs, action), model(obs, action.clamp(-1, 1)))


def test_loss_reaches_only_model_parameters() -> None:
    model = make_model()
    obs, action, next_obs = linear_system(32)
    action.requires_grad_(True)
    model.update_normalizers(obs, next_obs)
    loss = model.loss(obs, action, next_obs)
    (loss["loss_l2"] + loss["loss_weight_decay"]).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(b.grad is None for b in model.buffers())


def test_rollout_gradient_routing() -> None:
    model = make_model()
    torch.manual_seed(0)
    actor = TanhGaussianActor(OBS, ACT, (16,)).double()
    start = torch.randn(6, OBS, dtype=torch.float64)
    td = model.rollout(start, actor.mode, 3)
    assert td.batch_size == torch.Size([3, 6])
    assert not any(t.requires_grad for t in td.values(True, True))
    assert not td[keys.TERMINATED].any() and (td[keys.CONTINUE_PROB] == 1).all()
    torch.testing.assert_close(td[keys.OBSERVATION][1:], td[keys.NEXT_OBSERVATION][:-1])

    td = model.rollout(start, actor.mode, 3, differentiable=True)
    td[keys.REWARD].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())
    assert model.input.weight.grad is not None


def test_bad_arguments_name_the_field() -> None:
    from lightning_mbrl.errors import ConfigError

    with pytest.raises(ConfigError, match="n_units"):
        DeterministicDynamics(OBS, ACT, 0, reward_fn=first_coordinate_reward)
    with pytest.raises(ConfigError, match="n_blocks"):
        DeterministicDynamics(OBS, ACT, 8, -1, reward_fn=first_coordinate_reward)


def test_the_model_is_a_plain_module_with_checkpointable_normalisers() -> None:
    model = make_model()
    obs, _, next_obs = linear_system(16)
    model.update_normalizers(obs, next_obs)
    state = model.state_dict()
    assert {"state_normalizer.mean", "diff_normalizer.var", "state_normalizer.count"} <= set(state)
    clone = make_model(seed=3)
    clone.load_state_dict(state)
    x = torch.randn(3, OBS, dtype=torch.float64)
    a = torch.zeros(3, ACT, dtype=torch.float64)
    torch.testing.assert_close(clone(x, a), model(x, a))
    assert isinstance(model, nn.Module)
