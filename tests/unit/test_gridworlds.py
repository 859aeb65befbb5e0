"""Unit tests (T0) for paper 001's online environments (``lightning_mbrl.envs.gridworlds``):
ProcMaze, ButtonGrid and PanFlute cores and their ``gridworld/...`` TorchRL envs.

Oracles: hand-written transitions (REFERENCE.md 4.2's rules, asserted exactly), seeded counts of
the spontaneous events against their stated probabilities (within 4 standard errors), a BFS and a
tree check over generated mazes, and the exact distribution of the code's sequential randomised DFS
(enumerated in Python) against the batched generator's maze frequencies.
"""

from __future__ import annotations

import math
from collections import Counter, deque

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

import lightning_mbrl  # noqa: F401  the ids must be known after importing the package
from lightning_mbrl import keys
from lightning_mbrl.envs import env_spec, make_env
from lightning_mbrl.envs.gridworlds import (
    DOWN,
    LEFT,
    NO_OP,
    RIGHT,
    UP,
    ButtonGrid,
    GridworldCore,
    GridworldEnv,
    PanFlute,
    ProcMaze,
    make_core,
)
from lightning_mbrl.errors import ConfigError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(core: GridworldCore, spontaneous, reset: TensorDict | None = None) -> TensorDict:
    """Hand-made step noise: the spontaneous event on/off per entry (and ButtonGrid's reset state)."""
    spontaneous = torch.as_tensor(spontaneous)
    td = TensorDict({"spontaneous": spontaneous}, spontaneous.shape)
    if isinstance(core, ButtonGrid):
        td["reset"] = reset if reset is not None else core.reset(spontaneous.shape, gen(0))
    return td


def tensor(*values) -> torch.Tensor:
    """Actions: a scalar for one value (a batch-less state), else ``[len(values)]``."""
    return torch.tensor(values[0] if len(values) == 1 else values)


# ==================================================================================== ProcMaze
MAZE = ["..#.",
        "#.#.",
        "....",
        ".##."]  # "#" wall, hand-made (not a DFS maze: transitions do not care)


def maze_state(pos, goal, rows=MAZE) -> TensorDict:
    """ProcMaze states ``[len(pos)]`` on the hand-made maze."""
    wall = torch.tensor([[c == "#" for c in row] for row in rows])
    n = len(pos)
    return TensorDict({"wall": wall.expand(n, *wall.shape).clone(), "pos": torch.tensor(pos),
                       "goal": torch.tensor(goal).expand(n, 2).clone()}, [n])


def test_procmaze_walls_and_edges_block_moves() -> None:
    core = ProcMaze(4)
    cases = [  # (pos, action, next pos)
        ((0, 0), UP, (0, 0)),  # off-grid
        ((0, 0), LEFT, (0, 0)),  # off-grid
        ((0, 0), DOWN, (0, 0)),  # wall at (1, 0)
        ((0, 0), RIGHT, (0, 1)),
        ((0, 1), RIGHT, (0, 1)),  # wall at (0, 2)
        ((0, 1), DOWN, (1, 1)),
        ((1, 1), UP, (0, 1)),
        ((2, 2), NO_OP, (2, 2)),
        ((2, 0), DOWN, (3, 0)),
        ((3, 0), RIGHT, (3, 0)),  # wall at (3, 1)
        ((3, 3), DOWN, (3, 3)),  # off-grid
        ((3, 3), RIGHT, (3, 3)),  # off-grid
        ((3, 3), UP, (2, 3)),
        ((0, 3), UP, (0, 3)),  # off-grid
        ((1, 3), LEFT, (1, 3)),  # wall at (1, 2)
    ]
    state = maze_state([c[0] for c in cases], (2, 1))
    action = torch.tensor([c[1] for c in cases])
    nxt, reward, terminated = core.transition(state, action, noise(core, [False] * len(cases)))
    assert nxt["pos"].tolist() == [list(c[2]) for c in cases]
    assert torch.equal(nxt["wall"], state["wall"]) and torch.equal(nxt["goal"], state["goal"])
    assert reward.tolist() == [-1.0] * len(cases) and reward.dtype == torch.float32
    assert not terminated.any()


def test_procmaze_terminates_the_step_after_reaching_the_goal() -> None:
    core = ProcMaze(4)
    state = maze_state([(2, 2)], (2, 3))
    quiet = noise(core, [False])
    state, reward, terminated = core.transition(state, torch.tensor([RIGHT]), quiet)
    assert state["pos"].tolist() == [[2, 3]] and not terminated.item() and reward.item() == -1.0
    obs = core.observation(state)[0]  # the goal state is observed: player and goal on (2, 3)
    goal_cell = (2 * 4 + 3) * 4
    assert obs[goal_cell: goal_cell + 4].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert obs[0::4].sum() == 1 and obs[1::4].sum() == 1
    _, reward, terminated = core.transition(state, torch.tensor([LEFT]), quiet)
    assert terminated.item() and reward.item() == -1.0
    # A start on the goal terminates on the first step.
    _, _, terminated = core.transition(maze_state([(0, 0)], (0, 0)), torch.tensor([RIGHT]), quiet)
    assert terminated.item()


def test_procmaze_spontaneous_goal_teleports_after_the_move() -> None:
    core = ProcMaze(4)
    state = maze_state([(0, 0), (0, 0)], (2, 3))
    state, reward, terminated = core.transition(state, tensor(LEFT, RIGHT), noise(core, [True, False]))
    assert state["pos"].tolist() == [[2, 3], [0, 1]]  # teleported after the (blocked) move, not moved after it
    assert not terminated.any() and reward.tolist() == [-1.0, -1.0]  # termination is checked before moving
    _, _, terminated = core.transition(state, tensor(LEFT, LEFT), noise(core, [False, False]))
    assert terminated.tolist() == [True, False]


def test_procmaze_observation_layout() -> None:
    core = ProcMaze(4)
    state = maze_state([(1, 2)], (3, 0))
    obs = core.observation(state)
    assert obs.shape == (1, 64) and obs.dtype == torch.float32
    grid = obs.reshape(4, 4, 4)  # [row, col, channel]
    wall = torch.tensor([[c == "#" for c in row] for row in MAZE]).float()
    expected_player = torch.zeros(4, 4)
    expected_player[1, 2] = 1
    expected_goal = torch.zeros(4, 4)
    expected_goal[3, 0] = 1
    assert torch.equal(grid[..., 0], expected_player) and torch.equal(grid[..., 1], expected_goal)
    assert torch.equal(grid[..., 2], wall) and torch.equal(grid[..., 3], 1 - wall)
    assert obs[0, (1 * 4 + 2) * 4 + 0] == 1  # index (row * G + col) * C + channel


def open_neighbours(is_open: torch.Tensor) -> torch.Tensor:
    """For open masks ``[n, G, G]``: each cell's number of open 4-neighbours."""
    padded = torch.nn.functional.pad(is_open.int(), (1, 1, 1, 1))
    return padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]


def reachable(is_open: list[list[bool]], start: tuple[int, int]) -> set[tuple[int, int]]:
    G = len(is_open)
    seen, todo = {start}, deque([start])
    while todo:
        r, c = todo.popleft()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < G and 0 <= nc < G and is_open[nr][nc] and (nr, nc) not in seen:
                seen.add((nr, nc))
                todo.append((nr, nc))
    return seen


@pytest.mark.parametrize("grid_size, n", [(4, 400), (7, 100)])
def test_procmaze_reset_gives_connected_tree_mazes(grid_size: int, n: int) -> None:
    core = ProcMaze(grid_size)
    state = core.reset((n // 4, 4), gen(grid_size))
    assert state.batch_size == (n // 4, 4)
    state = state.reshape(-1)
    is_open = ~state["wall"]
    assert state["wall"].flatten(1).any(1).all()  # walls present in every maze
    rows = torch.arange(n)
    assert is_open[rows, state["pos"][:, 0], state["pos"][:, 1]].all()
    assert is_open[rows, state["goal"][:, 0], state["goal"][:, 1]].all()
    counts = open_neighbours(is_open)
    # A tree: open-open adjacencies = open cells - 1. DFS ran to the end: no wall cell has exactly one open neighbour.
    assert torch.equal((counts * is_open).flatten(1).sum(1) // 2, is_open.flatten(1).sum(1) - 1)
    assert not ((counts == 1) & ~is_open).any()
    for i in range(n):
        cells = is_open[i].tolist()
        start = tuple(state["pos"][i].tolist())
        assert len(reachable(cells, start)) == int(is_open[i].sum())  # every open cell reachable
    assert (state["pos"] == state["goal"]).all(-1).any()  # start and goal may coincide (drawn independently)


def sequential_dfs_distribution(G: int) -> Counter:
    """The exact distribution of open-cell sets of the code's sequential randomised DFS: uniform root;
    pop the top cell; if it has openable neighbours (on the grid, closed, with exactly one open
    neighbour) push it back and open one uniformly at random; until the stack is empty."""
    dist: Counter = Counter()

    def nbrs(c: int) -> list[int]:
        r, k = divmod(c, G)
        return [(r + dr) * G + k + dk for dr, dk in ((-1, 0), (0, -1), (1, 0), (0, 1))
                if 0 <= r + dr < G and 0 <= k + dk < G]

    def run(opened: frozenset, stack: list[int], p: float) -> None:
        while stack:
            top = stack.pop()
            options = [n for n in nbrs(top) if n not in opened and sum(m in opened for m in nbrs(n)) == 1]
            if options:
                for n in options:
                    run(opened | {n}, stack + [top, n], p / len(options))
                return
        dist[opened] += p

    for root in range(G * G):
        run(frozenset({root}), [root], 1 / (G * G))
    return dist


def test_procmaze_maze_distribution_matches_the_sequential_dfs() -> None:
    exact = sequential_dfs_distribution(4)
    assert len(exact) == 200 and sum(exact.values()) == pytest.approx(1.0)
    n = 60_000
    walls = ProcMaze(4).reset((n,), gen(1))["wall"].flatten(1)
    cells = torch.arange(16)
    seen = Counter(frozenset(cells[~w].tolist()) for w in walls)
    assert set(seen) <= set(exact)
    for maze, p in exact.items():
        assert abs(seen[maze] - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1, sorted(maze)


# ================================================================================== ButtonGrid
BUTTONS = [(0, 1), (2, 2), (4, 4)]


def button_state(pos, on, buttons=BUTTONS) -> TensorDict:
    return TensorDict({"pos": torch.tensor(pos), "buttons": torch.tensor(buttons), "on": torch.tensor(on)}, [])


def test_buttongrid_toggles_on_entry_only() -> None:
    core = ButtonGrid(5, 3)
    quiet = noise(core, False)
    state = button_state((0, 0), [False, False, False])
    expected = [  # (action, pos, on): enter, stand still, blocked by the edge, leave, re-enter
        (RIGHT, [0, 1], [True, False, False]),
        (NO_OP, [0, 1], [True, False, False]),
        (UP, [0, 1], [True, False, False]),
        (LEFT, [0, 0], [True, False, False]),
        (RIGHT, [0, 1], [False, False, False]),
        (DOWN, [1, 1], [False, False, False]),
        (DOWN, [2, 1], [False, False, False]),
        (RIGHT, [2, 2], [False, True, False]),
    ]
    for action, pos, on in expected:
        state, reward, terminated = core.transition(state, tensor(action), quiet)
        assert (state["pos"].tolist(), state["on"].tolist()) == (pos, on)
        assert reward.item() == 0.0 and not terminated.item()
    assert torch.equal(state["buttons"], torch.tensor(BUTTONS))


def test_buttongrid_rewards_the_step_after_all_on_then_resets() -> None:
    core = ButtonGrid(5, 3)
    fresh = button_state((3, 3), [False] * 3, buttons=[(1, 0), (1, 1), (4, 0)])
    quiet = noise(core, False, reset=fresh)
    state = button_state((2, 1), [True, False, True])
    state, reward, _ = core.transition(state, tensor(RIGHT), quiet)  # the last button goes on
    assert state["on"].tolist() == [True] * 3 and reward.item() == 0.0
    nxt, reward, terminated = core.transition(state, tensor(NO_OP), quiet)
    assert reward.item() == 1.0 and reward.dtype == torch.float32 and not terminated.item()
    assert (nxt == fresh).all()  # the whole state resets: position, button cells, all off
    # The reset wins over a move that would toggle a button and over the spontaneous event.
    nxt, reward, _ = core.transition(state, tensor(LEFT), noise(core, True, reset=fresh))
    assert reward.item() == 1.0 and (nxt == fresh).all()


def test_buttongrid_spontaneous_event_switches_all_on() -> None:
    core = ButtonGrid(5, 3)
    state = button_state((0, 0), [False, False, False])
    state, reward, _ = core.transition(state, tensor(RIGHT), noise(core, True))
    assert state["on"].tolist() == [True] * 3 and state["pos"].tolist() == [0, 1] and reward.item() == 0.0
    _, reward, _ = core.transition(state, tensor(NO_OP), noise(core, False))
    assert reward.item() == 1.0


def test_buttongrid_reset_and_observation() -> None:
    core = ButtonGrid(5, 4)
    state = core.reset((5000,), gen(3))
    cells = state["buttons"][..., 0] * 5 + state["buttons"][..., 1]
    assert (cells.sort(-1).values.diff(dim=-1) > 0).all()  # distinct cells
    assert not state["on"].any()
    on_button = (cells == (state["pos"][:, 0] * 5 + state["pos"][:, 1]).unsqueeze(-1)).any(-1)
    assert on_button.any()  # the player may start on a button
    hand = button_state((4, 4), [True, False, False])
    grid = core.observation(hand.unsqueeze(0)).reshape(5, 5, 3)  # [row, col, channel]
    assert grid[..., 0].nonzero().tolist() == [[4, 4]]
    assert grid[..., 1].nonzero().tolist() == [[0, 1]]
    assert grid[..., 2].nonzero().tolist() == [[2, 2], [4, 4]]
    assert core.observation(hand).shape == (75,)


# ==================================================================================== PanFlute
def test_panflute_shifts_pipes_and_rewards_before_the_update() -> None:
    core = PanFlute(3)
    quiet = noise(core, False)
    #                    pipe 0 | pipe 1 | pipe 2
    state = TensorDict({"pipes": torch.tensor([1, 0, 1, 0, 0, 1]).bool()}, [])
    state, reward, terminated = core.transition(state, tensor(1), quiet)
    assert reward.item() == 1.0 and not terminated.item()  # all ends were on before the update
    assert state["pipes"].int().tolist() == [0, 1, 0, 0, 0, 0]  # ends fall off; pipe 1's first cell set
    state, reward, _ = core.transition(state, tensor(2), quiet)
    assert reward.item() == 0.0 and state["pipes"].int().tolist() == [0, 0, 1, 1, 0, 0]
    state, reward, _ = core.transition(state, tensor(0), quiet)
    assert reward.item() == 0.0 and state["pipes"].int().tolist() == [1, 0, 0, 0, 1, 0]


def test_panflute_end_cells_and_lit_ends_by_hand() -> None:
    core = PanFlute(3)
    assert core.end_cells.tolist() == [0, 2, 5]  # pipes of length 1, 2, 3, concatenated
    obs = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 0]]).float()
    assert core.lit_ends(obs).tolist() == [3, 0, 2]


def test_panflute_cycle_earns_one_reward_every_n_steps() -> None:
    core = PanFlute(4)
    state = core.reset((), gen(0))
    assert not state["pipes"].any() and state["pipes"].shape == (10,)
    quiet = noise(core, False)
    rewards = []
    for t in range(13):
        state, reward, _ = core.transition(state, tensor(3 - t % 4), quiet)
        rewards.append(reward.item())
    assert rewards == [0.0, 0.0, 0.0, 0.0] + [1.0, 0.0, 0.0, 0.0] * 2 + [1.0]


def test_panflute_spontaneous_activation_after_the_roll() -> None:
    core = PanFlute(3)
    state = TensorDict({"pipes": torch.tensor([0, 1, 0, 0, 1, 0]).bool()}, [])
    state, reward, _ = core.transition(state, tensor(2), noise(core, True))
    assert reward.item() == 0.0
    assert state["pipes"].int().tolist() == [1, 0, 1, 1, 0, 1]  # rolled, first cells set, then all ends on
    _, reward, _ = core.transition(state, tensor(0), noise(core, False))
    assert reward.item() == 1.0


# ===================================================================== all cores: shared properties
def spontaneous_setup(name: str, n: int, spontaneous: bool = True):
    """``(core, states [n], action [n], event(next_state) -> bool [n])`` where the action cannot
    cause the event by itself."""
    if name == "procmaze":
        core = ProcMaze(4, spontaneous=spontaneous)
        state = maze_state([(0, 0)] * n, (2, 3))
        return core, state, torch.full((n,), NO_OP), lambda s: (s["pos"] == s["goal"]).all(-1)
    if name == "buttongrid":
        core = ButtonGrid(5, 3, spontaneous=spontaneous)
        state = button_state((0, 0), [False] * 3).expand(n).clone()
        return core, state, torch.full((n,), NO_OP), lambda s: s["on"].all(-1)
    core = PanFlute(5, spontaneous=spontaneous)
    ends = [i * (i + 1) // 2 + i for i in range(5)]  # the last cell of each pipe
    return core, core.reset((n,), gen(0)), torch.full((n,), 4), lambda s: s["pipes"][..., ends].all(-1)


@pytest.mark.parametrize("name, p", [("procmaze", 0.01), ("buttongrid", 1 / 250), ("panflute", 1 / 25)])
def test_spontaneous_event_probability(name: str, p: float) -> None:
    n = 200_000
    core, state, action, event = spontaneous_setup(name, n)
    assert core.spontaneous_prob == pytest.approx(p)
    nxt, _, _ = core.step(state, action, gen(11))
    assert abs(event(nxt).float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / n)
    core, state, action, event = spontaneous_setup(name, 1000, spontaneous=False)
    assert core.spontaneous_prob == 0.0 and not event(core.step(state, action, gen(11))[0]).any()


def test_procmaze_spontaneous_probability_formula() -> None:
    assert ProcMaze(4).spontaneous_prob == pytest.approx(0.01)
    assert ProcMaze(5).spontaneous_prob == pytest.approx(0.1 / (6 * 3 - 1))
    assert ProcMaze(10).spontaneous_prob == pytest.approx(0.1 / (11 * 5))


CORES = [lambda: ProcMaze(4), lambda: ButtonGrid(4, 2), lambda: PanFlute(3)]


def played_state(core: GridworldCore, batch_shape, seed: int, steps: int = 12) -> TensorDict:
    """A state reached by random play, with ButtonGrid/PanFlute entries near their reward events."""
    g = gen(seed)
    state = core.reset(batch_shape, g)
    for _ in range(steps):
        action = torch.randint(0, core.num_actions, state.batch_size, generator=g)
        state, _, _ = core.step(state, action, g)
    if isinstance(core, ButtonGrid):  # some all-on entries, so the batch also resets inside the step
        state["on"][..., ::2, :] = True
    return state


@pytest.mark.parametrize("make", CORES)
def test_batched_step_equals_stepping_each_entry_alone(make) -> None:
    core = make()
    state = played_state(core, (2, 3), seed=5)
    g = gen(7)
    action = torch.randint(0, core.num_actions, (2, 3), generator=g)
    draws = core.sample_noise((2, 3), g)
    draws["spontaneous"] = torch.tensor([[True, False, False], [False, True, False]])
    batched = core.transition(state, action, draws)
    for i in range(2):
        for j in range(3):
            alone = core.transition(state[i, j], action[i, j], draws[i, j])
            assert (alone[0] == batched[0][i, j]).all()
            assert alone[1] == batched[1][i, j] and alone[2] == batched[2][i, j]
    flat = core.transition(state.reshape(-1), action.reshape(-1), draws.reshape(-1))
    assert (flat[0] == batched[0].reshape(-1)).all() and torch.equal(flat[1], batched[1].reshape(-1))
    # step is transition with the noise drawn from the generator
    stepped = core.step(state, action, gen(8))
    replay = core.transition(state, action, core.sample_noise((2, 3), gen(8)))
    assert (stepped[0] == replay[0]).all() and torch.equal(stepped[1], replay[1])
    assert core.observation(batched[0]).shape == (2, 3, core.obs_dim)


@pytest.mark.parametrize("make", CORES)
def test_stored_state_and_generator_reproduce_the_step(make) -> None:
    core = make()
    state = played_state(core, (64,), seed=9)
    stored = state.clone()
    g = gen(2)
    saved_rng = g.get_state()
    action = torch.randint(0, core.num_actions, (64,), generator=gen(3))
    first = core.step(state, action, g)
    assert (state == stored).all()  # step does not write into its input
    g.set_state(saved_rng)
    again = core.step(stored, action, g)
    assert (first[0] == again[0]).all() and torch.equal(first[1], again[1]) and torch.equal(first[2], again[2])
    assert (core.reset((5,), gen(4)) == core.reset((5,), gen(4))).all()


@pytest.mark.parametrize("make", CORES)
def test_reset_where_resets_only_the_masked_entries(make) -> None:
    core = make()
    state = played_state(core, (2, 4), seed=6)
    mask = torch.tensor([[True, False, False, True], [False, False, True, False]])
    out = core.reset_where(state, mask, gen(1))
    assert (out[~mask] == state[~mask]).all()
    assert (out[mask] == core.reset((3,), gen(1))).all()


# ====================================================================================== TorchRL
IDS = {"gridworld/procmaze-4": (64, 5), "gridworld/buttongrid-5-3": (75, 5), "gridworld/panflute-5": (15, 5)}


@pytest.mark.parametrize("env_id", IDS)
def test_make_env_specs_and_rollout(env_id: str) -> None:
    torch.manual_seed(0)
    env = make_env(env_id, seed=0)
    check_env_specs(env)
    obs_dim, num_actions = IDS[env_id]
    spec = env_spec(env_id)
    assert (spec.observation_dim, spec.action_dim, spec.num_actions, spec.max_episode_steps) == (
        obs_dim, 1, num_actions, 100)
    assert env.base_env.episode_steps == 100
    td = env.rand_step(env.reset())
    assert td.get(keys.NEXT_OBSERVATION).shape == (obs_dim,) and td.get(keys.REWARD).shape == (1,)
    rollout = env.rollout(40, break_when_any_done=False)
    obs = rollout.get(keys.OBSERVATION)
    assert obs.shape == (40, obs_dim) and obs.dtype == torch.float32 and set(obs.unique().tolist()) <= {0.0, 1.0}
    assert rollout.get(keys.ACTION).dtype == torch.int64
    if env_id.startswith("gridworld/procmaze"):
        assert (rollout.get(keys.REWARD) == -1).all()
    else:
        assert not rollout.get(keys.TERMINATED).any()


def test_time_limit_truncates_and_procmaze_terminates() -> None:
    flute = make_env("gridworld/panflute-3", seed=0, max_episode_steps=5).rollout(12, break_when_any_done=False)
    assert flute.get(keys.TRUNCATED).squeeze(-1).nonzero().squeeze(-1).tolist() == [4, 9]
    assert not flute.get(keys.TERMINATED).any()
    assert env_spec("gridworld/panflute-3", max_episode_steps=5).max_episode_steps == 5
    maze = make_env("gridworld/procmaze-2", seed=1).rollout(60, break_when_any_done=False)
    terminated = maze.get(keys.TERMINATED).squeeze(-1)
    assert terminated.any() and not maze.get(keys.TRUNCATED).any()
    last = terminated.nonzero()[0, 0]  # the goal state was observed: player and goal channels coincide
    obs = maze.get(keys.OBSERVATION)[last].reshape(4, 4)
    assert torch.equal(obs[:, 0], obs[:, 1])


def test_batched_env_and_partial_reset() -> None:
    env = GridworldEnv(ProcMaze(4), batch_size=[4], max_episode_steps=7)
    env.set_seed(0)
    check_env_specs(env)
    env.reset()
    before = env.state
    mask = torch.tensor([True, False, True, False])
    env.reset(TensorDict({"_reset": mask.unsqueeze(-1), "done": mask.unsqueeze(-1)}, [4]))
    after = env.state
    assert (after[~mask] == before[~mask]).all() and not (after[mask] == before[mask]).all()
    rollout = env.rollout(20, break_when_any_done=False)
    assert rollout.batch_size == (4, 20) and rollout.get(keys.NEXT_OBSERVATION).shape == (4, 20, 64)
    assert rollout.get(keys.DONE).any()
    served = make_env("gridworld/buttongrid-4-2", num_envs=2, seed=3)
    try:
        assert served.rollout(5).get(keys.OBSERVATION).shape == (2, 5, 48)
    finally:
        served.close()


@pytest.mark.parametrize("env_id", IDS)
def test_env_state_restores_the_episode(env_id: str) -> None:
    env = make_env(env_id, seed=4, max_episode_steps=9).base_env

    def play(td: TensorDict, steps: int) -> list[torch.Tensor]:
        actions = torch.randint(0, env.core.num_actions, (steps,), generator=gen(5))
        seen = []
        for a in actions:
            out = env.step(td.set(keys.ACTION, a))
            seen.append(torch.cat([out.get(keys.NEXT_OBSERVATION), out.get(keys.REWARD),
                                   out.get(keys.DONE).float()]))
            td = env.reset() if out.get(keys.DONE).item() else env.step_mdp(out)
        return seen

    play(env.reset(), 5)
    saved = env.get_env_state()
    td = TensorDict({keys.OBSERVATION: env.core.observation(env.state)}, [])
    first = play(td.clone(), 40)
    env.set_env_state(saved)
    again = play(td.clone(), 40)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("env_id, match", [
    ("gridworld/nope", "gridworld ids"),
    ("gridworld/procmaze-x", "gridworld ids"),
    ("gridworld/procmaze-1", "grid_size"),
    ("gridworld/buttongrid-5", "gridworld ids"),
    ("gridworld/buttongrid-5-0", "num_buttons"),
    ("gridworld/buttongrid-2-5", "num_buttons"),
    ("gridworld/panflute-1", "num_pipes"),
])
def test_bad_ids_raise_config_error(env_id: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        make_env(env_id)
    assert "\n" not in str(err.value) and "gridworld/procmaze-<grid_size>" in str(err.value)
    with pytest.raises(ConfigError, match=match):
        env_spec(env_id)


def test_env_kwargs() -> None:
    assert make_env("gridworld/panflute-4", spontaneous=False).base_env.core.spontaneous_prob == 0.0
    assert make_core("gridworld/buttongrid-3-2").num_buttons == 2
    with pytest.raises(ConfigError, match="colour"):
        make_env("gridworld/panflute-4", colour=1)
    with pytest.raises(ConfigError, match="spontaneous"):
        make_env("gridworld/panflute-4", spontaneous="yes")
