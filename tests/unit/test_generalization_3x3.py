"""T0 for paper 001's 3x3 offline experiment: the grid's rules and datasets against hand-written cases,
the simple model's and Dyna-DQN's losses against hand computations, gradient routing, and S batched
seeds against each seed run alone."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from lightning_mbrl import keys
from lightning_mbrl.algos.offline_dyna import OfflineDynaDQN
from lightning_mbrl.envs import grid3x3
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.models.mlp import BatchedMLP, seeded_members_
from lightning_mbrl.models.simple_model import BernoulliModel
from lightning_mbrl.objectives import dyna_dqn

NOOP, UP, LEFT, DOWN, RIGHT = range(5)


# ----------------------------------------------------------------------------- the grid
def test_moves_walls_and_edges() -> None:
    walls = grid3x3.walls_mask((4,))  # centre wall
    assert grid3x3.move(1, DOWN, walls) == 1  # into the wall: stays
    assert grid3x3.move(1, LEFT, walls) == 0  # onto the goal
    assert grid3x3.move(2, RIGHT, walls) == 2 and grid3x3.move(2, UP, walls) == 2  # off the grid
    assert grid3x3.move(8, UP, walls) == 5 and grid3x3.move(8, NOOP, walls) == 8


def test_observation_encoding() -> None:
    obs = grid3x3.observation(torch.tensor(7), grid3x3.walls_mask((3, 4)))
    expected = torch.zeros(36)
    expected[7] = 1  # agent
    expected[9 + 0] = 1  # goal
    expected[18 + 3] = expected[18 + 4] = 1  # walls
    expected[27:] = 1
    expected[27 + 3] = expected[27 + 4] = 0  # no-wall cells
    assert torch.equal(obs, expected)


def test_evaluation_layouts_correct_actions_by_hand() -> None:
    # Layout 0 (walls at cells 3, 4): 6 -> 7 -> 8 -> 5 -> 2 -> 1 -> goal. Layout 1 is its mirror.
    cells = grid3x3.evaluation_cells()
    by_hand = {(0, 1): LEFT, (0, 2): LEFT, (0, 5): UP, (0, 6): RIGHT, (0, 7): RIGHT, (0, 8): UP,
               (1, 3): UP, (1, 6): UP, (1, 7): LEFT, (1, 8): LEFT, (1, 5): DOWN, (1, 2): DOWN}
    got = {(int(l), int(c)): int(a) for l, c, a in zip(cells["layout"], cells["cell"], cells["correct_action"])}
    assert got == by_hand
    assert [grid3x3.furthest_cell(layout) for layout in grid3x3.EVALUATION_LAYOUTS] == [6, 2]


def test_dataset_sizes_and_contents() -> None:
    sizes = {c: len(grid3x3.dataset(c)) for c in grid3x3.COVERAGES}
    assert sizes == {"all_evaluation": 280 + 60, "path_to_goal": 280 + 12, "single_cell": 280 + 10, "no_evaluation": 280}
    basic = grid3x3.dataset("no_evaluation")
    assert not (basic["cell"] == grid3x3.GOAL).any()
    # Every dataset starts with the whole basic set.
    for coverage in grid3x3.COVERAGES:
        assert torch.equal(grid3x3.dataset(coverage)[:280][keys.OBSERVATION], basic[keys.OBSERVATION])
    # The rules hold row by row: reward -1, terminated iff the goal is entered.
    data = grid3x3.dataset("all_evaluation")
    assert (data[keys.REWARD] == -1).all()
    assert torch.equal(data[keys.TERMINATED], data["next_cell"] == 0)
    # Path-to-goal extras: the correct action in each cell, e.g. layout 0's bottom-middle cell moves right.
    extra = grid3x3.dataset("path_to_goal")[280:]
    assert (7, RIGHT) in set(zip(extra["cell"][:6].tolist(), extra[keys.ACTION][:6].tolist()))
    single = grid3x3.dataset("single_cell")[280:]
    assert single["cell"].tolist() == [6] * 5 + [2] * 5 and single[keys.ACTION].tolist() == [0, 1, 2, 3, 4] * 2
    with pytest.raises(ConfigError, match="coverage must be one of"):
        grid3x3.dataset("half")


# ----------------------------------------------------------------------------- losses by hand
def _constant_heads(model: BernoulliModel, reward: float, cont_logit: float, obs_logit: float) -> None:
    """Zero the last layers' weights so every head outputs its bias."""
    with torch.no_grad():
        for net, value in ((model.reward, reward), (model.continuation, cont_logit), (model.observation, obs_logit)):
            net.layers[-1].weight.zero_()
            net.layers[-1].bias.fill_(value)


def test_simple_model_losses_by_hand() -> None:
    model = BernoulliModel([0], observation_dim=2, num_actions=3, hidden=(4,))
    _constant_heads(model, reward=0.5, cont_logit=1.0, obs_logit=-2.0)
    obs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    action = torch.tensor([[0, 2]])
    reward = torch.tensor([[-1.0, 2.0]])
    next_obs = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    terminated = torch.tensor([[False, True]])
    out = model.loss(obs, action, reward, next_obs, terminated)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out["loss_reward"].item() == pytest.approx(0.5 * (1.5**2 + 1.5**2) / 2)
    assert out["loss_continuation"].item() == pytest.approx((-math.log(sig(1.0)) - math.log(1 - sig(1.0))) / 2)
    # Only the first transition's next observation counts (the second is terminal): both features are 1.
    assert out["loss_observation"].item() == pytest.approx(2 * -math.log(sig(-2.0)) / 2)


def test_td_loss_by_hand_real_and_imagined() -> None:
    q_net = lambda obs: obs  # noqa: E731  Q(s, .) = s: two actions, a readable lookup
    target = lambda obs: 2 * obs  # noqa: E731
    obs = torch.tensor([[[1.0, 3.0], [0.0, -1.0]]])
    next_obs = torch.tensor([[[2.0, 5.0], [4.0, 1.0]]])
    real = TensorDict({keys.OBSERVATION: obs, keys.ACTION: torch.tensor([[1, 0]]), keys.REWARD: torch.tensor([[-1.0, -1.0]]),
                       keys.NEXT_OBSERVATION: next_obs, keys.TERMINATED: torch.tensor([[False, True]])}, [1, 2])
    # y = -1 + 0.9 * 10 = 8 for the first (Q = 3); y = -1 for the terminal second (Q = 0).
    assert dyna_dqn.td_loss(q_net, target, real, 0.9)["loss_q"].item() == pytest.approx(((3 - 8) ** 2 + 1) / 2)
    imagined = real.exclude(keys.TERMINATED)
    imagined[keys.CONTINUE_PROB] = torch.tensor([[0.5, 1.0]])
    imagined[dyna_dqn.WEIGHT] = torch.tensor([[1.0, 0.25]])
    # y = -1 + 0.9 * 0.5 * 10 = 3.5 (Q = 3); y = -1 + 0.9 * 8 = 6.2 (Q = 0), weight 0.25.
    got = dyna_dqn.td_loss(q_net, target, imagined, 0.9)["loss_q"].item()
    assert got == pytest.approx((0.5**2 + 0.25 * 6.2**2) / 2)


def test_imagine_weights_are_running_continuation_products() -> None:
    torch.manual_seed(0)
    model = BernoulliModel([0, 1], observation_dim=3, num_actions=2, hidden=(8,))
    _constant_heads(model, reward=-1.0, cont_logit=math.log(0.8 / 0.2), obs_logit=0.0)  # continue_prob 0.8
    q = BatchedMLP(2, 3, (8,), 2)
    start = torch.bernoulli(torch.full((2, 4, 3), 0.5))
    out = dyna_dqn.imagine(model, q, start, length=3, temperature=1.0, uniform=torch.rand(2, 3, 4, 2 + 3))
    assert out.batch_size == torch.Size([2, 12])
    assert torch.equal(out[keys.OBSERVATION][:, :4], start)  # time-major: the starts come first
    assert torch.equal(out[keys.OBSERVATION][:, 4:8], out[keys.NEXT_OBSERVATION][:, :4])
    expected = torch.tensor([1.0, 0.8, 0.64]).repeat_interleave(4)
    torch.testing.assert_close(out[dyna_dqn.WEIGHT], expected.expand(2, 12))
    assert not out[dyna_dqn.WEIGHT].requires_grad and not out[keys.REWARD].requires_grad


def test_softmax_actions_match_softmax_probabilities() -> None:
    q = torch.tensor([0.0, 1.0, -1.0])
    draws = dyna_dqn.softmax_actions(q.expand(200_000, 3), 0.5, torch.rand(200_000, 3, generator=torch.Generator().manual_seed(0)))
    freq = torch.bincount(draws, minlength=3).double() / 200_000
    p = torch.softmax(q.double() / 0.5, 0)
    assert torch.allclose(freq, p, atol=4 * math.sqrt(0.25 / 200_000))


# ----------------------------------------------------------------------------- routing and the update
def _grads(module: torch.nn.Module) -> dict[str, bool]:
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in module.named_parameters()}


def test_routing_of_each_loss_term() -> None:
    agent = OfflineDynaDQN(agent="model", seeds=2, hidden=(8,), rollout_length=2, batch_size=8, model_batch_size=4)
    data = agent.data[:4].expand(2, 4)
    for term, value in agent.model.loss(data[keys.OBSERVATION], data[keys.ACTION], data[keys.REWARD],
                                        data[keys.NEXT_OBSERVATION], data[keys.TERMINATED]).items():
        agent.zero_grad(set_to_none=True)
        value.sum().backward()
        head = {"loss_reward": "reward", "loss_continuation": "continuation", "loss_observation": "observation"}[term]
        reached = {n.split(".")[0] for n, g in _grads(agent.model).items() if g}
        assert reached == {head}, term
        assert not any(_grads(agent.q).values()), term
    agent.zero_grad(set_to_none=True)
    batch = dyna_dqn.imagine(agent.model, agent.q, data[keys.OBSERVATION], 2, 1.0, torch.rand(2, 2, 4, 5 + 36))
    dyna_dqn.td_loss(agent.q, agent.q_target, batch, 0.9)["loss_q"].sum().backward()
    assert all(_grads(agent.q).values())
    assert not any(p.grad is not None for p in agent.model.parameters())
    assert not any(p.grad is not None for p in agent.q_target.parameters())


@pytest.mark.parametrize("agent_kind", ["er", "model"])
def test_update_steps_the_named_optimizers_and_copies_the_target_on_schedule(agent_kind: str) -> None:
    agent = OfflineDynaDQN(agent=agent_kind, seeds=2, hidden=(8,), batch_size=20, rollout_length=10,
                           target_update_every=3).standalone()
    q0 = [p.clone() for p in agent.q.parameters()]
    m0 = [p.clone() for p in agent.model.parameters()] if agent.model is not None else []
    for n in range(1, 7):
        agent.update()
        same = all(torch.equal(a, b) for a, b in zip(agent.q.parameters(), agent.q_target.parameters()))
        assert same == (n % 3 == 0), n
    assert all(not torch.equal(a, b) for a, b in zip(q0, agent.q.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(m0, agent.model.parameters())) if m0 else agent.model is None
    with pytest.raises(KeyError, match="no optimizer 'model'") if agent_kind == "er" else _nothing():
        agent.optimizer("model")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("agent_kind", ["er", "model"])
def test_batched_seeds_follow_each_seed_run_alone(agent_kind: str) -> None:
    kwargs = dict(agent=agent_kind, hidden=(16, 16), batch_size=40, rollout_length=10, target_update_every=2)
    batched = OfflineDynaDQN(seed=5, seeds=3, **kwargs).standalone()
    alone = OfflineDynaDQN(seed=6, seeds=1, **kwargs).standalone()
    for _ in range(6):
        batched.update()
        alone.update()
    for a, b in zip(batched.q.parameters(), alone.q.parameters()):
        torch.testing.assert_close(a[1], b[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(a[0], a[1])  # the seeds are distinct runs
    torch.testing.assert_close(batched.greedy_correct()[1], alone.greedy_correct()[0])


def test_each_seed_draws_from_its_own_generator() -> None:
    batched = OfflineDynaDQN(seed=5, seeds=3, hidden=(4,))._uniforms(50)
    for i, seed in enumerate((5, 6, 7)):
        torch.testing.assert_close(batched[i], OfflineDynaDQN(seed=seed, seeds=1, hidden=(4,))._uniforms(50)[0])
    assert not torch.equal(batched[0], batched[1]) and not torch.equal(batched[1], batched[2])


def test_seeded_members_depend_on_their_own_seed_only() -> None:
    three = seeded_members_(BatchedMLP(3, 4, (5,), 2), [7, 8, 9])
    one = seeded_members_(BatchedMLP(1, 4, (5,), 2), [8])
    for a, b in zip(three.parameters(), one.parameters()):
        assert torch.equal(a[1], b[0])
    other_stream = seeded_members_(BatchedMLP(1, 4, (5,), 2), [8], stream=1)
    assert not torch.equal(one.layers[0].weight, other_stream.layers[0].weight)


def test_bad_arguments_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="batch_size \\(25\\) must be a multiple of rollout_length \\(10\\)"):
        OfflineDynaDQN(batch_size=25)
    with pytest.raises(ConfigError, match="coverage"):
        OfflineDynaDQN(coverage="everything")


def test_model_first_fits_then_freezes_the_model() -> None:
    kwargs = dict(agent="model", seeds=2, hidden=(8,), batch_size=20, rollout_length=10, model_first_updates=5)
    agent = OfflineDynaDQN(**kwargs).standalone()
    m0 = [p.clone() for p in agent.model.parameters()]
    agent.update()
    assert agent.model_steps == 5 and agent.updates_done == 1
    fitted = [p.clone() for p in agent.model.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(m0, fitted))
    for _ in range(3):
        agent.update()
    assert agent.model_steps == 5 and all(torch.equal(a, b) for a, b in zip(fitted, agent.model.parameters()))
    # model_accuracy: [S] fractions of the 60 - 2 non-terminal evaluation transitions (one enters the goal per layout)
    acc = agent.model_accuracy()
    assert acc.shape == (2,) and ((acc * 58).round() == acc * 58).all()


def test_evaluation_rows_are_the_evaluation_layout_transitions() -> None:
    for coverage in grid3x3.COVERAGES:
        data, rows = grid3x3.dataset(coverage), grid3x3.evaluation_rows(coverage)
        in_eval = torch.zeros(len(data), dtype=torch.bool)
        for layout in grid3x3.EVALUATION_LAYOUTS:  # a row's walls channel names its layout
            walls = grid3x3.observation(torch.tensor(0), grid3x3.walls_mask(layout))[18:27]
            in_eval |= (data[keys.OBSERVATION][:, 18:27] == walls).all(-1)
        assert torch.equal(rows, in_eval.nonzero().squeeze(-1)), coverage
    assert len(grid3x3.evaluation_rows("path_to_goal")) == 12 and len(grid3x3.evaluation_rows("no_evaluation")) == 0


@pytest.mark.parametrize("starts", ["dataset", "evaluation"])
def test_rollouts_start_where_starts_says(starts: str, monkeypatch) -> None:
    """``starts="evaluation"`` (the 3x3 diagnostic) starts every rollout in an evaluation-layout transition of the
    dataset; the paper's ``"dataset"`` starts them anywhere, mostly in the basic layouts (280 of 292 rows)."""
    seen = []
    imagine = dyna_dqn.imagine
    monkeypatch.setattr(dyna_dqn, "imagine", lambda model, q, obs, *a: seen.append(obs) or imagine(model, q, obs, *a))
    agent = OfflineDynaDQN(agent="model", seeds=2, hidden=(8,), batch_size=40, rollout_length=10, starts=starts,
                           model_first_updates=2).standalone()
    for _ in range(3):
        agent.update()
    eval_obs = agent.data[grid3x3.evaluation_rows("path_to_goal")][keys.OBSERVATION]
    starts_obs = torch.cat(seen).reshape(-1, grid3x3.OBS_DIM)  # [3 updates x 2 seeds x 4 starts, 36]
    is_eval = (starts_obs[:, None] == eval_obs[None]).all(-1).any(-1)
    assert len(starts_obs) == 24
    assert is_eval.all() if starts == "evaluation" else is_eval.float().mean() < 0.5


def test_evaluation_starts_need_a_model_agent_and_evaluation_transitions() -> None:
    with pytest.raises(ConfigError, match="starts=evaluation needs agent=model .* got agent=er, coverage=path_to_goal"):
        OfflineDynaDQN(agent="er", starts="evaluation")
    with pytest.raises(ConfigError, match="got agent=model, coverage=no_evaluation"):
        OfflineDynaDQN(agent="model", coverage="no_evaluation", starts="evaluation")


@pytest.mark.parametrize("args, message", [
    (["--starts", "evaluation"], "--starts evaluation needs its own --out"),
    (["--starts", "evaluation", "--out", "x.json", "--only", "er"], "er has none"),
    (["--starts", "evaluation", "--out", "x.json", "--only", "no_evaluation"], "no_evaluation has none"),
])
def test_the_benchmarks_evaluation_starts_refuse_what_they_cannot_run(args, message, capsys) -> None:
    from benchmarks import generalization_3x3

    with pytest.raises(SystemExit) as exit_info:
        generalization_3x3.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
