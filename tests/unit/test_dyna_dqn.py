"""T0 for the online Dyna-DQN of paper 001 (``algos.dyna_dqn``): S batched seeds against each seed run
alone (and the check that this comparison catches a shared generator), the replay ring buffer against
the env stepped directly, the perfect model against the true core, gradient routing, target and
update accounting, greedy evaluation against hand computations, and a smoke run under a Trainer."""

from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch
from tensordict import TensorDict

from lightning_mbrl import keys
from lightning_mbrl.algos import dyna_dqn as algo
from lightning_mbrl.algos.dyna_dqn import ENV_STATE, DynaDQN, true_rollout
from lightning_mbrl.envs.gridworlds import ProcMaze, make_core
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.models.mlp import BatchedMLP
from lightning_mbrl.objectives import dyna_dqn
from lightning_mbrl.objectives.dyna_dqn import softmax_actions

#: Small but complete: every agent learns from step 6, copies its target every 4 steps, evaluates every 10.
TINY = dict(hidden=(16, 16), batch_size=40, model_batch_size=4, rollout_length=10, learning_starts=5,
            buffer_size=64, envs_per_seed=2, target_update_every=4, eval_every=10, eval_episodes=4,
            eval_steps=20, temperature=1.0, lr=1e-3)
AGENT_ENVS = [("er", "gridworld/procmaze-3"), ("simple", "gridworld/procmaze-3"),
              ("perfect", "gridworld/procmaze-3"), ("perfect", "gridworld/buttongrid-3-2")]


def make(**overrides) -> DynaDQN:
    return DynaDQN(**{**TINY, "seeds": 1, **overrides}).standalone()


def run(agent: DynaDQN, steps: int) -> DynaDQN:
    for _ in range(steps):
        agent.step()
    return agent


# ----------------------------------------------------------------------------- batched seeds
def assert_seed_matches(batched: DynaDQN, index: int, alone: DynaDQN) -> None:
    """Seed ``batched.seed_list[index]`` of the batched run followed the same path as ``alone``."""
    for a, b in zip(batched.q.parameters(), alone.q.parameters()):
        torch.testing.assert_close(a[index], b[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(batched.q_target.parameters(), alone.q_target.parameters()):
        torch.testing.assert_close(a[index], b[0], rtol=1e-5, atol=1e-6)
    assert (batched.env_state[index] == alone.env_state[0]).all()
    filled = min(alone.stored, alone.hparams.buffer_size)  # the rest is uninitialised memory
    assert (batched.replay[index, :filled] == alone.replay[0, :filled]).all()
    torch.testing.assert_close(batched.eval_curve[:, index], alone.eval_curve[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("agent_kind, env", AGENT_ENVS)
def test_batched_seeds_follow_each_seed_run_alone(agent_kind: str, env: str) -> None:
    batched = run(make(agent=agent_kind, env=env, seed=5, seeds=3), 30)
    alone = run(make(agent=agent_kind, env=env, seed=6, seeds=1), 30)
    assert batched.updates_done == alone.updates_done == 25 and len(batched.eval_curve_steps) == 3
    assert_seed_matches(batched, 1, alone)
    for a in batched.q.parameters():  # the seeds are distinct runs
        assert not torch.allclose(a[0], a[1]) and not torch.allclose(a[1], a[2])


@pytest.mark.parametrize("stream", ["generators", "env_generators"])
def test_the_seed_comparison_catches_a_shared_generator(stream: str) -> None:
    """Mutation check of the test above: seeds 5 and 6 drawing from one generator no longer match
    seed 6 alone."""
    batched = make(agent="er", env="gridworld/procmaze-3", seed=5, seeds=3)
    getattr(batched, stream)[1] = getattr(batched, stream)[0]
    run(batched, 30)
    alone = run(make(agent="er", env="gridworld/procmaze-3", seed=6, seeds=1), 30)
    with pytest.raises(AssertionError):
        assert_seed_matches(batched, 1, alone)


def test_every_seed_and_stream_has_its_own_generator() -> None:
    agent = make(seeds=3)
    gens = agent.generators + agent.env_generators + agent.eval_generators
    assert len({id(g) for g in gens}) == 9
    first = [float(torch.rand(1, generator=g)) for g in gens]
    assert len(set(first)) == 9


# ----------------------------------------------------------------------------- replay
def record_transitions(agent: DynaDQN) -> list[TensorDict]:
    """Wrap ``agent.act_and_step`` so that every transition it returns is kept."""
    seen, original = [], agent.act_and_step

    def recording() -> TensorDict:
        seen.append(original())
        return seen[-1]

    agent.act_and_step = recording
    return seen


def test_ring_buffer_wraps() -> None:
    agent = make(agent="perfect", seeds=2, envs_per_seed=2, buffer_size=5, learning_starts=100)
    seen = record_transitions(agent)
    run(agent, 4)  # 8 transitions per seed into 5 slots: (step, env) -> slot (2 * step + env) % 5
    assert agent.stored == 8
    for step in range(4):
        for env in range(2):
            stored = agent.replay[:, (2 * step + env) % 5]
            if 2 * step + env < 3:  # overwritten by the second lap
                continue
            expected = seen[step][:, env]
            assert torch.equal(stored[keys.OBSERVATION], expected[keys.OBSERVATION].bool())
            assert torch.equal(stored[keys.NEXT_OBSERVATION], expected[keys.NEXT_OBSERVATION].bool())
            for key in (keys.ACTION, keys.REWARD, keys.TERMINATED):
                assert torch.equal(stored[key], expected[key])
            assert (stored[ENV_STATE] == expected[ENV_STATE]).all()


def test_stored_transitions_are_the_core_stepped_directly_with_each_seeds_generator() -> None:
    # A 2 x 2 maze has 3 open cells: episodes are short, so resets are exercised too.
    agent = make(agent="perfect", env="gridworld/procmaze-2", seeds=2, envs_per_seed=3, buffer_size=200,
                 learning_starts=100)
    core, resets = agent.core, 0
    run(agent, 1)
    for _ in range(15):
        before = agent.env_state.clone()
        gen_states = [g.get_state() for g in agent.env_generators]
        slots = agent.stored + torch.arange(3)
        run(agent, 1)
        stored = agent.replay[:, slots]
        for s in range(2):
            g = torch.Generator().set_state(gen_states[s])
            next_state, reward, terminated = core.step(before[s], stored[keys.ACTION][s], g)
            assert (stored[ENV_STATE][s] == before[s]).all()
            assert torch.equal(stored[keys.OBSERVATION][s], core.observation(before[s]).bool())
            assert torch.equal(stored[keys.NEXT_OBSERVATION][s], core.observation(next_state).bool())
            assert torch.equal(stored[keys.REWARD][s], reward) and torch.equal(stored[keys.TERMINATED][s], terminated)
            resets += int(terminated.sum())
            assert (agent.env_state[s] == core.reset_where(next_state, terminated, g)).all()
    assert resets > 0


def test_sampling_reads_only_the_filled_part() -> None:
    agent = make(seeds=2, envs_per_seed=2, buffer_size=10, learning_starts=100)
    u = torch.cat([torch.rand(2, 2000), torch.tensor([[0.0, 1 - 1e-7]] * 2)], dim=1)
    run(agent, 3)  # 6 of 10 slots filled
    index = agent.replay_index(u)
    assert index.min() == 0 and index.max() == 5 and len(index.unique()) == 6
    sample = agent.sample(u[:, :7])
    assert torch.equal(sample[keys.ACTION], agent.replay[keys.ACTION].gather(1, index[:, :7]))
    assert sample[keys.OBSERVATION].dtype == torch.float32
    run(agent, 3)  # 12 transitions: wrapped, all 10 slots are data
    assert agent.replay_index(u).max() == 9 and len(agent.replay_index(u).unique()) == 10


# ----------------------------------------------------------------------------- the perfect model
def test_perfect_model_steps_the_true_core_with_the_same_noise() -> None:
    core = make_core("gridworld/buttongrid-3-2")
    g = torch.Generator().manual_seed(0)
    start = core.reset((2, 4), g)  # [members, starts]
    q = BatchedMLP(2, core.obs_dim, (8,), core.num_actions)
    uniform, noise = torch.rand(2, 3, 4, core.num_actions, generator=g), core.sample_noise((2, 3, 4), g)
    noise["spontaneous"] = torch.rand(2, 3, 4, generator=g) < 0.5  # so that each step's noise matters
    out = true_rollout(core, q, start, 3, 0.5, uniform, noise)
    assert out.batch_size == torch.Size([2, 12])
    state = start
    for t in range(3):
        action = softmax_actions(q(core.observation(state)), 0.5, uniform[:, t])
        next_state, reward, terminated = core.transition(state, action, noise[:, t])
        step = out[:, 4 * t: 4 * (t + 1)]
        assert torch.equal(step[keys.OBSERVATION], core.observation(state))
        assert torch.equal(step[keys.ACTION], action) and torch.equal(step[keys.REWARD], reward)
        assert torch.equal(step[keys.NEXT_OBSERVATION], core.observation(next_state))
        assert not step[keys.TERMINATED].any() and (step[dyna_dqn.WEIGHT] == 1).all()
        state = next_state
    assert not out[keys.OBSERVATION].requires_grad


def test_perfect_model_weight_is_zero_after_a_terminal() -> None:
    core = ProcMaze(3, spontaneous=False)
    # Three starts boxed in by walls (they cannot move), at cell (1, 1); start 0's goal is its own cell.
    wall = torch.ones(1, 3, 3, 3, dtype=torch.bool)
    wall[..., 1, 1] = False
    pos = torch.ones(1, 3, 2, dtype=torch.long)
    goal = torch.tensor([[[1, 1], [0, 0], [2, 2]]])
    start = TensorDict({"wall": wall, "pos": pos, "goal": goal}, [1, 3])
    noise = TensorDict({"spontaneous": torch.zeros(1, 4, 3, dtype=torch.bool)}, [1, 4, 3])
    noise["spontaneous"][0, 0, 1] = True
    out = true_rollout(core, BatchedMLP(1, core.obs_dim, (4,), 5), start, 4, 1.0, torch.rand(1, 4, 3, 5), noise)
    terminated, weight = out[keys.TERMINATED].reshape(4, 3), out[dyna_dqn.WEIGHT].reshape(4, 3)
    # start 0 is on the goal: terminal at t = 0; start 1 is put on the goal at t = 0: terminal at t = 1.
    assert terminated[0].tolist() == [True, False, False] and terminated[1, 1]
    assert weight[:, 0].tolist() == [1, 0, 0, 0]
    assert weight[:, 1].tolist() == [1, 1, 0, 0]
    assert weight[:, 2].tolist() == [1, 1, 1, 1] and not terminated[:, 2].any()
    # The TD loss ignores the zero-weight steps: perturbing their targets changes nothing.
    q, target = BatchedMLP(1, core.obs_dim, (4,), 5), BatchedMLP(1, core.obs_dim, (4,), 5)
    loss = dyna_dqn.td_loss(q, target, out, 0.9)["loss_q"]
    out[keys.REWARD] = torch.where(out[dyna_dqn.WEIGHT] == 0, 100.0, out[keys.REWARD])
    assert torch.equal(dyna_dqn.td_loss(q, target, out, 0.9)["loss_q"], loss)


def test_perfect_agent_rolls_out_from_the_sampled_stored_states(monkeypatch) -> None:
    agent = run(make(agent="perfect", seeds=2, learning_starts=100), 8)
    starts = []
    monkeypatch.setattr(algo, "true_rollout",
                        lambda core, q, start, *a: starts.append(start) or true_rollout(core, q, start, *a))
    saved = [g.get_state() for g in agent.generators]
    agent.update()
    for g, state in zip(agent.generators, saved):
        g.set_state(state)
    n_roll = TINY["rollout_length"] * agent.n_starts * agent.core.num_actions
    u = agent._uniforms(agent.n_sampled + n_roll)
    expected = agent.sample(u[:, : agent.n_sampled])[:, : agent.n_starts]
    assert (starts[0] == expected[ENV_STATE]).all()
    assert torch.equal(agent.core.observation(starts[0]), expected[keys.OBSERVATION])


# ----------------------------------------------------------------------------- routing and accounting
def grads(module: torch.nn.Module) -> dict[str, bool]:
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in module.named_parameters()}


def test_routing_of_each_loss_term() -> None:
    agent = run(make(agent="simple", seeds=2, learning_starts=100), 5)
    real = agent.sample(torch.rand(2, 4))
    for term, value in agent.model.loss(real[keys.OBSERVATION], real[keys.ACTION], real[keys.REWARD],
                                        real[keys.NEXT_OBSERVATION], real[keys.TERMINATED]).items():
        agent.zero_grad(set_to_none=True)
        value.sum().backward()
        head = {"loss_reward": "reward", "loss_continuation": "continuation", "loss_observation": "observation"}[term]
        assert {n.split(".")[0] for n, g in grads(agent.model).items() if g} == {head}, term
        assert not any(grads(agent.q).values()) and not any(grads(agent.q_target).values()), term
    A, D = agent.core.num_actions, agent.core.obs_dim
    perfect = run(make(agent="perfect", seeds=2, learning_starts=100), 5)
    cases = {
        "imagined": (agent, dyna_dqn.imagine(agent.model, agent.q, real[keys.OBSERVATION], 2, 1.0,
                                             torch.rand(2, 2, 4, A + D))),
        "real": (agent, real),
        "true": (perfect, true_rollout(perfect.core, perfect.q, perfect.sample(torch.rand(2, 4))[ENV_STATE], 2, 1.0,
                                       torch.rand(2, 2, 4, A), perfect._noise((2, 4), perfect.generators))),
    }
    for name, (owner, batch) in cases.items():
        owner.zero_grad(set_to_none=True)
        dyna_dqn.td_loss(owner.q, owner.q_target, batch, 0.9)["loss_q"].sum().backward()
        assert all(grads(owner.q).values()), name
        q_ids = {id(p) for p in owner.q.parameters()}
        assert not any(p.grad is not None for p in owner.parameters() if id(p) not in q_ids), name
        assert not any(p.grad is not None for p in owner.q_target.parameters()), name


@pytest.mark.parametrize("agent_kind", ["er", "simple", "perfect"])
def test_named_optimizers_step_and_the_target_copies_every_k_env_steps(agent_kind: str) -> None:
    agent = make(agent=agent_kind, seeds=2, learning_starts=2, target_update_every=3, eval_every=1000)
    q0 = [p.clone() for p in agent.q.parameters()]
    m0 = [p.clone() for p in agent.model.parameters()] if agent.model is not None else []
    for n in range(1, 11):
        agent.step()
        same = all(torch.equal(a, b) for a, b in zip(agent.q.parameters(), agent.q_target.parameters()))
        assert same == (n <= 2 or n % 3 == 0), n  # before learning starts Q does not move
    assert agent.target_copies == 3 and agent.env_steps == 10
    assert all(not torch.equal(a, b) for a, b in zip(q0, agent.q.parameters()))
    if agent_kind == "simple":
        assert all(not torch.equal(a, b) for a, b in zip(m0, agent.model.parameters()))
        assert agent.optimizer("model") is not agent.optimizer("q")
    else:
        assert agent.model is None
        with pytest.raises(KeyError, match="no optimizer 'model'"):
            agent.optimizer("model")


@pytest.mark.parametrize("agent_kind", ["simple", "gaussian"])
def test_a_fixed_model_takes_no_step_and_q_still_learns_on_its_rollouts(agent_kind: str) -> None:
    """``train_model=False``: the model's parameters and its optimizer's state do not change (the losses are
    still logged), while Q steps; with the same seed the run consumes the same random numbers, so the
    replay it collects before learning starts is the trained run's."""
    fixed, trained = (make(agent=agent_kind, seeds=2, learning_starts=2, eval_every=1000, train_model=t)
                      for t in (False, True))
    m0 = [p.clone() for p in fixed.model.parameters()]
    q0 = [p.clone() for p in fixed.q.parameters()]
    for _ in range(6):
        logs = fixed.step()
        trained.step()
    assert all(torch.equal(a, b) for a, b in zip(m0, fixed.model.parameters()))
    assert not fixed.optimizer("model").state  # never stepped
    assert all(not torch.equal(a, b) for a, b in zip(q0, fixed.q.parameters()))
    assert "loss_reward" in logs and logs["loss_reward"].shape == (2,) and not logs["loss_reward"].requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(m0, trained.model.parameters()))
    assert (fixed.replay[:, :2] == trained.replay[:, :2]).all()


@pytest.mark.parametrize("agent_kind, updates_per_step", [("er", 1), ("simple", 3), ("perfect", 2)])
def test_update_accounting(agent_kind: str, updates_per_step: int, monkeypatch) -> None:
    agent = make(agent=agent_kind, seeds=2, learning_starts=4, updates_per_step=updates_per_step, envs_per_seed=3)
    q_batches: list[torch.Size] = []
    td_loss = dyna_dqn.td_loss
    monkeypatch.setattr(dyna_dqn, "td_loss",
                        lambda q, t, batch, g: q_batches.append(batch.batch_size) or td_loss(q, t, batch, g))
    run(agent, 9)
    assert len(q_batches) == agent.updates_done == updates_per_step * (9 - 4)
    assert set(q_batches) == {torch.Size([2, TINY["batch_size"]])}  # every agent's Q step sees batch_size transitions
    assert agent.env_steps == 9 and agent.stored == 27


# ----------------------------------------------------------------------------- evaluation
def set_linear_q(agent: DynaDQN, weight: list[list[list[float]]], bias: list[list[float]]) -> None:
    """``Q_s(o) = o @ weight[s] + bias[s]`` (an agent built with ``hidden=()``)."""
    (layer,) = agent.q.layers
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias).unsqueeze(1))


@pytest.mark.parametrize("eval_steps, first_seed", [(100, 49 / 100), (7, 3 / 7)])
def test_continuing_evaluation_is_reward_per_step_by_hand(eval_steps: int, first_seed: float) -> None:
    # 2 pipes, observation (pipe 0, pipe 1 first, pipe 1 last). Seed 0: action 0 iff pipe 1's first cell
    # is on, else action 1: from all-off the states go 000 -a1-> 010 -a0-> 101 (rewarded) -a1-> 010 ...
    # so t = 2, 4, 6, ... are rewarded. Seed 1 always plays action 0 and pipe 1 never fills: 0.
    agent = make(env="gridworld/panflute-2", spontaneous=False, seeds=2, hidden=(), eval_steps=eval_steps,
                 eval_episodes=3)
    set_linear_q(agent, [[[0, 0], [1, 0], [0, 0]], [[0, 0]] * 3], [[0, 0.5], [1, 0]])
    torch.testing.assert_close(agent.evaluate(), torch.tensor([first_seed, 0.0]))


def test_episodic_evaluation_stops_counting_at_the_terminal_by_hand() -> None:
    # Greedy no-op without spontaneous teleports: an episode that starts on its goal terminates on its
    # first step (return -1, the terminal step's reward counts); any other never does (-eval_steps).
    agent = make(env="gridworld/procmaze-2", spontaneous=False, seeds=2, hidden=(), eval_steps=6, eval_episodes=32)
    set_linear_q(agent, [[[0] * 5] * agent.core.obs_dim] * 2, [[1, 0, 0, 0, 0]] * 2)
    expected = []
    for g in agent.eval_generators:
        fresh = agent.core.reset((32,), torch.Generator().set_state(g.get_state()))
        on_goal = (fresh["pos"] == fresh["goal"]).all(-1)
        assert 0 < int(on_goal.sum()) < 32
        expected.append(torch.where(on_goal, -1.0, -6.0).mean())
    train_states = [g.get_state() for g in agent.generators + agent.env_generators]
    torch.testing.assert_close(agent.evaluate(), torch.stack(expected))
    # Evaluating never touches the training generators.
    assert all(torch.equal(a, g.get_state()) for a, g in zip(train_states, agent.generators + agent.env_generators))


def test_evaluation_curve_is_kept_per_seed() -> None:
    agent = run(make(seeds=3, eval_every=4), 13)
    assert agent.eval_curve_steps == [4, 8, 12] and agent.eval_curve.shape == (3, 3)


# ----------------------------------------------------------------------------- config and Trainer
def test_bad_arguments_are_one_line_config_errors() -> None:
    with pytest.raises(ConfigError,
                       match=r"batch_size \(25\) must be a multiple of rollout_length \(10\) for agent 'perfect'"):
        DynaDQN(agent="perfect", batch_size=25)
    DynaDQN(agent="er", batch_size=25, seeds=1, hidden=(4,))  # ER has no rollouts
    with pytest.raises(ConfigError, match=r"envs_per_seed \(8\) must be <= buffer_size \(4\)"):
        DynaDQN(envs_per_seed=8, buffer_size=4)
    with pytest.raises(ConfigError, match="agent must be one of"):
        DynaDQN(agent="latent")
    with pytest.raises(ConfigError, match="unknown env id"):
        DynaDQN(env="gridworld/maze-4")


#: The model's loss terms each agent logs (besides train/loss_q).
MODEL_TERMS = {"er": set(), "perfect": set(), "simple": {"loss_reward", "loss_continuation", "loss_observation"},
               **{k: {"loss_reward", "loss_continuation", "loss_reconstruction", "loss_kl"}
                  for k in ("categorical", "gaussian")}}


@pytest.mark.parametrize("agent_kind", sorted(MODEL_TERMS))
def test_smoke_under_a_trainer(agent_kind: str, tmp_path) -> None:
    import csv

    from pytorch_lightning.loggers import CSVLogger

    agent = DynaDQN(**{**TINY, "agent": agent_kind, "env": "gridworld/buttongrid-3-2", "seeds": 2,
                       "steps": 12, "learning_starts": 4, "eval_every": 6})
    trainer = pl.Trainer(max_epochs=1, logger=CSVLogger(tmp_path), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(agent)
    assert agent.env_steps == 12 and agent.updates_done == 8 and agent.eval_curve.shape == (2, 2)
    with open(f"{trainer.logger.log_dir}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [6, 12]  # one row per evaluation, at its env step
    assert {"eval/return", "eval/return_seed0", "eval/return_seed1", "train/loss_q"} <= set(rows[-1])
    assert {f"train/{term}" for term in MODEL_TERMS[agent_kind]} <= {k for k, v in rows[-1].items() if v}
    assert float(rows[-1]["eval/return"]) == pytest.approx(agent.eval_curve[-1].mean().item())


def test_regime_and_tuned_values_fill_what_is_left_out() -> None:
    from lightning_mbrl.algos.dyna_dqn import DynaDQN

    low_er = DynaDQN(env="gridworld/buttongrid-5-4", agent="er", regime="low", seeds=1, hidden=(4,)).hparams
    assert (low_er.lr, low_er.temperature) == (2.5e-5, 0.1)  # README table: ER, ButtonGrid, low data
    assert (low_er.steps, low_er.updates_per_step, low_er.target_update_every, low_er.eval_every) == (100_000, 10, 10, 50)
    high = DynaDQN(env="gridworld/panflute-7", agent="perfect", seeds=1, hidden=(4,), lr=1e-3, steps=500).hparams
    assert (high.lr, high.temperature, high.steps, high.updates_per_step) == (1e-3, 0.1, 500, 1)  # given values win
