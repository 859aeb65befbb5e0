"""The three online environments of paper 001 (Young, Ramesh, Kirsch, Schmidhuber 2023, section 3):
ProcMaze, ButtonGrid and PanFlute, as pure-torch batched cores and a TorchRL env, registered as
``gridworld/...`` ids.

    make_env("gridworld/procmaze-4")          # 4 x 4 maze, episodic, obs 64, 5 actions
    make_env("gridworld/buttongrid-5-3")      # 5 x 5 grid, 3 buttons, continuing, obs 75, 5 actions
    make_env("gridworld/panflute-5")          # 5 pipes, continuing, obs 15, 5 actions
    make_env("gridworld/panflute-5", spontaneous=False)   # without the spontaneous rewarding transitions

The rules follow the official code (``kenjyoung/Model_Generalization_Code_supplement``,
``environments.py``) as summarised in REFERENCE.md section 4.2; each class docstring states them and
marks the choices that document left open.

Cores (:class:`ProcMaze`, :class:`ButtonGrid`, :class:`PanFlute`) are stateless objects that act on
a state TensorDict of any batch shape ``[*B]`` on any device, with no Python loop over the batch:

    state = core.reset(batch_shape, generator)                 # TensorDict [*B]
    obs = core.observation(state)                               # float32 [*B, obs_dim], 0/1
    next_state, reward, terminated = core.step(state, action, generator)   # action long [*B]
    state = core.reset_where(state, mask, generator)            # fresh states where mask [*B]

The state holds plain tensors and is the full state of the env (a "perfect model" steps the real
dynamics from a stored state). ``step`` never writes into its input. All randomness comes from the
``generator`` (its device is the states' device); ``step`` is
``transition(state, action, sample_noise(state.batch_size, generator))``, so the same generator
state gives the same step, and ``transition`` is a deterministic function a test can batch or split.

Grid actions (ProcMaze, ButtonGrid) are ``0`` no-op, ``1`` up (row - 1), ``2`` left (col - 1),
``3`` down (row + 1), ``4`` right (col + 1). Positions are ``(row, col)``; grid observations are
flattened from ``[row, col, channel]`` (index ``(row * G + col) * C + channel``).

:class:`GridworldEnv` wraps a core as a TorchRL env (batch-less for ``make_env``, or ``[N]``) with a
time limit of ``max_episode_steps or 100`` steps (the paper evaluates over at most 100 steps) that
truncates; only ProcMaze terminates.
"""

from __future__ import annotations

import abc
import math
import re
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lightning_mbrl import keys
from lightning_mbrl.envs.factory import register_env
from lightning_mbrl.errors import ConfigError

PREFIX = "gridworld/"
_ID = re.compile(r"gridworld/(?:procmaze-(?P<maze>\d+)|buttongrid-(?P<grid>\d+)-(?P<buttons>\d+)"
                 r"|panflute-(?P<pipes>\d+))")
ID_FORMS = ("gridworld/procmaze-<grid_size>, gridworld/buttongrid-<grid_size>-<num_buttons>, "
            "gridworld/panflute-<num_pipes>")
#: Time limit when ``max_episode_steps`` is not given: REFERENCE.md 4.3 evaluates over at most 100 steps.
DEFAULT_EPISODE_STEPS = 100

NO_OP, UP, LEFT, DOWN, RIGHT = range(5)
#: ``(d_row, d_col)`` of the grid actions, indexed by action.
MOVES = torch.tensor([[0, 0], [-1, 0], [0, -1], [1, 0], [0, 1]])

BatchShape = torch.Size | Sequence[int]


class GridworldCore(abc.ABC):
    """The API shared by the three cores (see the module docstring); subclasses set the attributes.

    Attributes: ``obs_dim`` (observation length), ``num_actions``, ``episodic`` (whether ``step``
    can return ``terminated``), ``spontaneous_prob`` (the probability per step of the env's
    spontaneous transition towards reward or termination; 0 with ``spontaneous=False``).
    """

    obs_dim: int
    num_actions: int
    episodic: bool
    spontaneous_prob: float

    @abc.abstractmethod
    def reset(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        """Fresh states ``[*batch_shape]`` on ``generator.device``."""

    @abc.abstractmethod
    def observation(self, state: TensorDictBase) -> torch.Tensor:
        """The binary observation, float32 ``[*B, obs_dim]``."""

    @abc.abstractmethod
    def transition(self, state: TensorDictBase, action: torch.Tensor,
                   noise: TensorDictBase) -> tuple[TensorDict, torch.Tensor, torch.Tensor]:
        """The deterministic step given the step's random draws ``noise`` (:meth:`sample_noise`):
        ``(next_state [*B], reward float32 [*B], terminated bool [*B])``."""

    def sample_noise(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        """The random draws of one step, ``[*batch_shape]``: ``"spontaneous"``, bool, True with
        probability ``spontaneous_prob`` (and, for ButtonGrid, the ``"reset"`` state)."""
        batch_shape = torch.Size(batch_shape)
        draw = torch.rand(batch_shape, generator=generator, device=generator.device)
        return TensorDict({"spontaneous": draw < self.spontaneous_prob}, batch_shape, device=generator.device)

    def step(self, state: TensorDictBase, action: torch.Tensor,
             generator: torch.Generator) -> tuple[TensorDict, torch.Tensor, torch.Tensor]:
        """One step of every env in the batch: ``action`` long ``[*B]``; returns ``(next_state,
        reward float32 [*B], terminated bool [*B])``. The input state is not modified."""
        return self.transition(state, action, self.sample_noise(state.batch_size, generator))

    def reset_where(self, state: TensorDictBase, mask: torch.Tensor, generator: torch.Generator) -> TensorDict:
        """A copy of ``state`` with fresh states (drawn by :meth:`reset`, in flattened batch order)
        where ``mask`` (bool ``[*B]``) is True."""
        flat = state.reshape(-1).clone()
        flat_mask = mask.reshape(-1)
        count = int(flat_mask.sum())
        if count:
            flat[flat_mask] = self.reset((count,), generator)
        return flat.reshape(state.batch_size)


def _cell(rc: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Flat cell index ``row * G + col`` of positions ``[..., 2]``."""
    return rc[..., 0] * grid_size + rc[..., 1]


def _rc(cell: torch.Tensor, grid_size: int) -> torch.Tensor:
    """``(row, col)`` ``[..., 2]`` of flat cell indices."""
    return torch.stack((cell // grid_size, cell % grid_size), dim=-1)


def _move(pos: torch.Tensor, action: torch.Tensor, grid_size: int) -> torch.Tensor:
    """``clip(pos + MOVES[action], 0, G - 1)``: the intended cell, off-grid moves stay put."""
    return (pos + MOVES.to(pos.device)[action]).clamp(0, grid_size - 1)


def _uniform_choice(allowed: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each row of ``allowed`` (bool ``[n, K]``, at least one True) an index drawn uniformly
    among its True entries, long ``[n]`` (argmax of uniform keys over the allowed entries)."""
    draw = torch.rand(allowed.shape, generator=generator, device=allowed.device)
    return draw.masked_fill(~allowed, -1.0).argmax(-1)


def _where(mask: torch.Tensor, a: TensorDictBase, b: TensorDictBase) -> TensorDict:
    """Entry-wise ``a if mask else b`` for states ``[*B]`` and ``mask`` bool ``[*B]``."""
    return a.apply(lambda x, y: torch.where(mask.reshape(*mask.shape, *(1,) * (x.ndim - mask.ndim)), x, y), b)


def _state(batch_shape: torch.Size, **tensors: torch.Tensor) -> TensorDict:
    return TensorDict(tensors, batch_size=batch_shape, device=next(iter(tensors.values())).device)


# ----------------------------------------------------------------------------------- ProcMaze
class ProcMaze(GridworldCore):
    """Procedurally generated G x G mazes; reward -1 per step until the goal (REFERENCE.md 4.2).

    State (TensorDict ``[*B]``): ``"wall"`` bool ``[*B, G, G]``, ``"pos"`` and ``"goal"`` long
    ``[*B, 2]`` as ``(row, col)``.

    Observation: float32 ``[*B, G * G * 4]``, the ``[row, col, channel]`` grid flattened, channels
    ``(player, goal, wall, empty)``; ``empty = 1 - wall``.

    Step (in this order, as the code):

    1. ``terminated = (pos == goal)``, checked *before* moving: the episode ends on the step after
       the agent reaches the goal, so the agent observes the goal state. The caller resets after it
       (:meth:`reset_where`); the state after a terminal step is the moved one and is never used.
    2. ``reward = -1`` on every step, the terminal one included.
    3. Move to ``clip(pos + MOVES[action], 0, G - 1)`` unless that cell is a wall; off-grid moves
       and moves into walls leave the position unchanged.
    4. Spontaneous goal, *after* the move (as the code, ``teleport_on_termination=True``): with
       probability ``0.1 / ((G + 1) * ceil(G / 2) - G % 2)`` (0.01 for G = 4; a tenth of the
       inverse of the worst-case maze's solution length) the agent is put on the goal, so the
       episode terminates on the next step.

    Reset: a new maze every episode by randomised depth-first search over the cells, then start and
    goal each uniform over the open cells, drawn independently, so **they may coincide** (as in
    the code; the episode then terminates on its first step).

    Maze generation (the code's rule, batched): all cells start as walls; a uniformly random cell is
    opened and pushed on a stack. A wall cell can be opened from the current cell ``c`` if it is on
    the grid and its only open 4-neighbour is ``c``. The code loops: pop the top cell; if it has an
    openable neighbour, push it back, open one of them uniformly at random and push that; else
    leave it popped (backtrack); until the stack is empty. Openability only changes when a cell is
    opened, so the backtracking pops between two openings can be done at once: each batched
    iteration here finds, for every env, the topmost stack cell that has an openable neighbour,
    truncates the stack above it, opens one of its openable neighbours uniformly at random and
    pushes it. This is the same sequence of openings with the same probabilities, one cell opened
    per env per iteration, so at most ``G * G - 1`` iterations (a loop that stops once no env has
    an openable cell left), each a tensor op over the whole batch. The open cells form a tree
    (every open cell is reachable from every other), and no wall cell has exactly one open
    neighbour when the search ends.
    """

    num_actions = 5
    episodic = True

    def __init__(self, grid_size: int = 4, *, spontaneous: bool = True) -> None:
        if grid_size < 2:
            raise ConfigError(f"ProcMaze grid_size must be >= 2, got {grid_size}")
        self.grid_size = G = int(grid_size)
        self.obs_dim = G * G * 4
        self.spontaneous_prob = 0.1 / ((G + 1) * math.ceil(G / 2) - G % 2) if spontaneous else 0.0
        # [G * G, 4]: the flat index of each cell's neighbour up, left, down, right; G * G if off-grid.
        rc = _rc(torch.arange(G * G), G)
        nbr = rc.unsqueeze(1) + MOVES[1:]
        on_grid = ((nbr >= 0) & (nbr < G)).all(-1)
        self._neighbours = torch.where(on_grid, _cell(nbr, G), G * G)

    def reset(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        batch_shape = torch.Size(batch_shape)
        G = self.grid_size
        is_open = self._dfs_maze(batch_shape.numel(), generator)  # [n, G * G]
        pos = _rc(_uniform_choice(is_open, generator), G)
        goal = _rc(_uniform_choice(is_open, generator), G)
        return _state(batch_shape, wall=(~is_open).reshape(*batch_shape, G, G),
                      pos=pos.reshape(*batch_shape, 2), goal=goal.reshape(*batch_shape, 2))

    def _dfs_maze(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` mazes by the batched randomised DFS of the class docstring; bool ``[n, G * G]``, True
        for open cells."""
        G2 = self.grid_size ** 2
        device = generator.device
        nbr = self._neighbours.to(device)
        rows = torch.arange(n, device=device)
        depth = torch.arange(G2, device=device)
        is_open = torch.zeros(n, G2 + 1, dtype=torch.bool, device=device)  # column G2: off-grid, never open
        stack = torch.zeros(n, G2, dtype=torch.long, device=device)
        height = torch.ones(n, dtype=torch.long, device=device)
        root = torch.randint(0, G2, (n,), generator=generator, device=device)
        is_open[rows, root] = True
        stack[:, 0] = root
        for _ in range(G2 - 1):
            openable = ~is_open[:, :G2] & (is_open[:, nbr].sum(-1) == 1)  # [n, G2]
            openable = F.pad(openable, (0, 1))  # off-grid: never openable
            can_open = openable[:, nbr]  # [n, G2, 4]: cell -> its neighbour in that direction
            stack_can = can_open.any(-1).gather(1, stack) & (depth < height.unsqueeze(1))
            level = torch.where(stack_can, depth, -1).amax(-1)  # topmost stack cell that can open one
            active = level >= 0
            if not bool(active.any()):
                break
            level = level.clamp_min(0)
            cell = stack.gather(1, level.unsqueeze(1)).squeeze(1)
            new = nbr[cell, _uniform_choice(can_open[rows, cell], generator)]  # [n]
            push_at = (level + 1).clamp_max(G2 - 1)
            stack[rows, push_at] = torch.where(active, new, stack[rows, push_at])
            height = torch.where(active, level + 2, height)
            is_open[rows, new] = is_open[rows, new] | active
        return is_open[:, :G2]

    def observation(self, state: TensorDictBase) -> torch.Tensor:
        G = self.grid_size
        wall = state["wall"].flatten(-2)
        player = F.one_hot(_cell(state["pos"], G), G * G).bool()
        goal = F.one_hot(_cell(state["goal"], G), G * G).bool()
        return torch.stack((player, goal, wall, ~wall), dim=-1).flatten(-2).float()

    def transition(self, state: TensorDictBase, action: torch.Tensor,
                   noise: TensorDictBase) -> tuple[TensorDict, torch.Tensor, torch.Tensor]:
        G = self.grid_size
        pos, goal, wall = state["pos"], state["goal"], state["wall"]
        terminated = (pos == goal).all(-1)
        target = _move(pos, action, G)
        blocked = wall.flatten(-2).gather(-1, _cell(target, G).unsqueeze(-1))
        pos = torch.where(blocked, pos, target)
        pos = torch.where(noise["spontaneous"].unsqueeze(-1), goal, pos)
        reward = torch.full(state.batch_size, -1.0, device=pos.device)
        return _state(state.batch_size, wall=wall, pos=pos, goal=goal), reward, terminated


# --------------------------------------------------------------------------------- ButtonGrid
class ButtonGrid(GridworldCore):
    """A G x G grid with ``num_buttons`` buttons the agent toggles by stepping onto them; +1 on the
    step after all are on (REFERENCE.md 4.2). A continuing task: ``terminated`` is always False.

    State (TensorDict ``[*B]``): ``"pos"`` long ``[*B, 2]`` and ``"buttons"`` long ``[*B, K, 2]``
    as ``(row, col)``, ``"on"`` bool ``[*B, K]``.

    Observation: float32 ``[*B, G * G * 3]``, the ``[row, col, channel]`` grid flattened, channels
    ``(player, button_on, button_off)``.

    Step (in this order, as the code):

    1. ``success = all(on)``, checked before anything changes; ``reward = success`` (1.0 or 0.0).
    2. Move to ``clip(pos + MOVES[action], 0, G - 1)`` (no walls). A button toggles if the agent
       *moved* onto its cell; standing still (no-op, or a move off the grid's edge) toggles nothing,
       even when standing on a button.
    3. Spontaneous event (the code's ``activate_on_reset=True``): with probability ``1 / (10 G^2)``
       every button is switched on, so the next step is rewarded.
    4. If ``success``: the whole next state is a fresh reset state (new position, new button cells,
       all off), whatever the move and the spontaneous event did. The reset state is drawn every
       step (part of :meth:`sample_noise`) and used only there.

    Reset: position uniform over the grid; button cells a uniformly random set of K *distinct*
    cells (drawn without replacement), independent of the position, so **the agent may start on a
    button** (as in the code; that button is not toggled until the agent moves onto it again);
    all buttons off.
    """

    num_actions = 5
    episodic = False

    def __init__(self, grid_size: int = 5, num_buttons: int = 3, *, spontaneous: bool = True) -> None:
        if grid_size < 2:
            raise ConfigError(f"ButtonGrid grid_size must be >= 2, got {grid_size}")
        if not 1 <= num_buttons <= grid_size**2:
            raise ConfigError(f"ButtonGrid num_buttons must be in [1, grid_size**2 = {grid_size**2}], "
                              f"got {num_buttons}")
        self.grid_size = G = int(grid_size)
        self.num_buttons = int(num_buttons)
        self.obs_dim = G * G * 3
        self.spontaneous_prob = 1.0 / (10 * G * G) if spontaneous else 0.0

    def reset(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        batch_shape = torch.Size(batch_shape)
        G, device = self.grid_size, generator.device
        pos = torch.randint(0, G, (*batch_shape, 2), generator=generator, device=device)
        order = torch.rand(*batch_shape, G * G, generator=generator, device=device).argsort(-1)
        buttons = _rc(order[..., : self.num_buttons], G)
        on = torch.zeros(*batch_shape, self.num_buttons, dtype=torch.bool, device=device)
        return _state(batch_shape, pos=pos, buttons=buttons, on=on)

    def sample_noise(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        noise = super().sample_noise(batch_shape, generator)
        noise["reset"] = self.reset(batch_shape, generator)
        return noise

    def observation(self, state: TensorDictBase) -> torch.Tensor:
        G = self.grid_size
        on = state["on"]
        cells = _cell(state["buttons"], G)  # [*B, K]
        empty = torch.zeros(*state.batch_size, G * G, device=on.device)
        player = F.one_hot(_cell(state["pos"], G), G * G).float()
        button_on = empty.scatter(-1, cells, on.float())
        button_off = empty.scatter(-1, cells, (~on).float())
        return torch.stack((player, button_on, button_off), dim=-1).flatten(-2)

    def transition(self, state: TensorDictBase, action: torch.Tensor,
                   noise: TensorDictBase) -> tuple[TensorDict, torch.Tensor, torch.Tensor]:
        pos, buttons, on = state["pos"], state["buttons"], state["on"]
        success = on.all(-1)
        target = _move(pos, action, self.grid_size)
        moved = (target != pos).any(-1)
        pressed = moved.unsqueeze(-1) & (buttons == target.unsqueeze(-2)).all(-1)  # [*B, K]
        on = (on ^ pressed) | noise["spontaneous"].unsqueeze(-1)
        moved_state = _state(state.batch_size, pos=target, buttons=buttons, on=on)
        next_state = _where(success, noise["reset"], moved_state)
        terminated = torch.zeros(state.batch_size, dtype=torch.bool, device=pos.device)
        return next_state, success.float(), terminated


# ----------------------------------------------------------------------------------- PanFlute
class PanFlute(GridworldCore):
    """n pipes; action i activates the bottom cell of pipe i and activations move up one cell per
    step; reward 1 when every pipe's end is active (REFERENCE.md 4.2). Continuing: never terminal.

    State (TensorDict ``[*B]``): ``"pipes"`` bool ``[*B, n (n + 1) / 2]``, pipe ``i`` (0-based,
    length ``i + 1``) at ``[i (i + 1) / 2, i (i + 1) / 2 + i]``, its first (bottom) cell first and
    its last (end) cell last. The observation is the same bits as float32 (the code concatenates
    the pipes in this order).

    Step (in this order, as the code):

    1. ``reward = prod_i pipe_i[-1]``, evaluated *before* the update.
    2. Every pipe is rolled by one towards its end (the end's value falls off) and its first cell
       is set to ``action == i``. (Here: the flat bits are rolled by one, which moves the end of
       pipe ``i - 1`` onto the first cell of pipe ``i``; every first cell is then overwritten.)
    3. Spontaneous activation, *after* the roll (as the code): with probability ``1 / n^2`` every
       pipe's last cell is set to True, so the next step is rewarded.

    The only action sequence that is rewarded by itself is ``n - 1, n - 2, ..., 0`` (pipe i's end
    is active i + 1 steps after action i), so the best reward rate is ``1 / n``.

    Reset: all cells off (as the code; no randomness is drawn).
    """

    episodic = False

    def __init__(self, num_pipes: int = 5, *, spontaneous: bool = True) -> None:
        if num_pipes < 2:
            raise ConfigError(f"PanFlute num_pipes must be >= 2, got {num_pipes}")
        self.num_pipes = n = int(num_pipes)
        self.num_actions = n
        self.obs_dim = n * (n + 1) // 2
        self.spontaneous_prob = 1.0 / n**2 if spontaneous else 0.0
        self._first = torch.tensor([i * (i + 1) // 2 for i in range(n)])
        self._last = self._first + torch.arange(n)

    def reset(self, batch_shape: BatchShape, generator: torch.Generator) -> TensorDict:
        batch_shape = torch.Size(batch_shape)
        pipes = torch.zeros(*batch_shape, self.obs_dim, dtype=torch.bool, device=generator.device)
        return _state(batch_shape, pipes=pipes)

    def observation(self, state: TensorDictBase) -> torch.Tensor:
        return state["pipes"].float()

    @property
    def end_cells(self) -> torch.Tensor:
        """The observation indices of the pipes' end cells, long ``[n]`` (pipe ``i``'s at ``i``)."""
        return self._last

    def lit_ends(self, observation: torch.Tensor) -> torch.Tensor:
        """The number of lit pipe-ends of observations ``[..., obs_dim]``: long ``[...]``."""
        return observation[..., self._last.to(observation.device)].sum(-1).long()

    def transition(self, state: TensorDictBase, action: torch.Tensor,
                   noise: TensorDictBase) -> tuple[TensorDict, torch.Tensor, torch.Tensor]:
        pipes = state["pipes"]
        first, last = self._first.to(pipes.device), self._last.to(pipes.device)
        reward = pipes[..., last].all(-1).float()
        pipes = pipes.roll(1, dims=-1)
        pipes[..., first] = action.unsqueeze(-1) == torch.arange(self.num_pipes, device=pipes.device)
        pipes[..., last] |= noise["spontaneous"].unsqueeze(-1)
        terminated = torch.zeros(state.batch_size, dtype=torch.bool, device=pipes.device)
        return _state(state.batch_size, pipes=pipes), reward, terminated


# -------------------------------------------------------------------------------- TorchRL env
class GridworldEnv(EnvBase):
    """A TorchRL env stepping a :class:`GridworldCore`, batch-less (what ``make_env`` builds and
    batches with ``SerialEnv``) or with ``batch_size=[N]`` (one core call for all N).

    Specs: ``"observation"`` float32 ``[*batch, obs_dim]`` in {0, 1}; ``"action"`` int64
    ``Categorical(num_actions)``; ``"reward"`` float32 ``[*batch, 1]``; ``done``/``terminated``/
    ``truncated`` bool ``[*batch, 1]``. ``terminated`` comes from the core (ProcMaze only);
    ``truncated`` after :attr:`episode_steps` steps since the last reset (``max_episode_steps``, or
    100), unless the step terminated; ButtonGrid's own reset after a reward is part of its dynamics
    and does not restart this count. A partial reset (``"_reset"``) resets only those entries.
    The env draws from its own generator (:meth:`set_seed`), seeded from torch's global RNG.
    """

    def __init__(self, core: GridworldCore, *, batch_size: BatchShape = torch.Size([]),
                 device: str | torch.device = "cpu", max_episode_steps: int | None = None) -> None:
        super().__init__(device=device, batch_size=torch.Size(batch_size))
        self.core = core
        #: Steps in one episode before truncation.
        self.episode_steps = max_episode_steps or DEFAULT_EPISODE_STEPS
        B, dev = self.batch_size, self.device
        self.observation_spec = Composite(
            {keys.OBSERVATION: Bounded(0.0, 1.0, shape=(*B, core.obs_dim), dtype=torch.float32, device=dev)},
            shape=B)
        self.action_spec = Categorical(core.num_actions, shape=B, dtype=torch.int64, device=dev)
        self.reward_spec = Unbounded(shape=(*B, 1), dtype=torch.float32, device=dev)
        self.done_spec = Composite(**{k: Categorical(2, shape=(*B, 1), dtype=torch.bool, device=dev)
                                      for k in ("done", "terminated", "truncated")}, shape=B)
        self._rng = torch.Generator(device=dev)
        self._rng.manual_seed(int(torch.randint(0, 2**62, ())))
        self._state = core.reset(B, self._rng)
        self._t = torch.zeros(B, dtype=torch.long, device=dev)

    @property
    def state(self) -> TensorDict:
        """A copy of the core's current state ``[*batch]``."""
        return self._state.clone()

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDict:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None or bool(mask.all()):
            self._state = self.core.reset(self.batch_size, self._rng)
            self._t = torch.zeros_like(self._t)
        else:
            mask = mask.reshape(self.batch_size)
            self._state = self.core.reset_where(self._state, mask, self._rng)
            self._t = torch.where(mask, 0, self._t)
        no = torch.zeros(*self.batch_size, 1, dtype=torch.bool, device=self.device)
        return TensorDict({keys.OBSERVATION: self.core.observation(self._state), **self._flags(no, no)},
                          self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        action = tensordict.get(keys.ACTION).reshape(self.batch_size).long()
        self._state, reward, terminated = self.core.step(self._state, action, self._rng)
        self._t = self._t + 1
        truncated = ~terminated & (self._t >= self.episode_steps)
        return TensorDict({keys.OBSERVATION: self.core.observation(self._state), "reward": reward.unsqueeze(-1),
                           **self._flags(terminated.unsqueeze(-1), truncated.unsqueeze(-1))},
                          self.batch_size, device=self.device)

    @staticmethod
    def _flags(terminated: torch.Tensor, truncated: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"terminated": terminated, "truncated": truncated, "done": terminated | truncated}

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng.manual_seed(int(seed))

    def get_env_state(self) -> dict[str, Any]:
        """The mid-episode state for checkpoints (``envs.state``): the core's state as a dict of
        tensors, the steps since reset and the generator state."""
        return {"state": self._state.clone().to_dict(), "t": self._t.clone(), "rng": self._rng.get_state()}

    def set_env_state(self, state: dict[str, Any]) -> None:
        self._state = TensorDict(state["state"], batch_size=self.batch_size, device=self.device).clone()
        self._t = state["t"].to(self.device).clone()
        self._rng.set_state(state["rng"])


# ----------------------------------------------------------------------------------------- ids
def make_core(env_id: str, *, spontaneous: bool = True) -> GridworldCore:
    """The core of a ``gridworld/...`` id; ``ConfigError`` for a bad id or number.
    ``spontaneous=False`` removes the spontaneous transitions (the paper's Appendix I ablation)."""
    match = _ID.fullmatch(env_id)
    if match is None:
        raise ConfigError(f"unknown env id {env_id!r}; gridworld ids are {ID_FORMS}")
    if not isinstance(spontaneous, bool):
        raise ConfigError(f"spontaneous for {env_id!r} must be true or false, got {spontaneous!r}")
    try:
        if match["maze"] is not None:
            return ProcMaze(int(match["maze"]), spontaneous=spontaneous)
        if match["grid"] is not None:
            return ButtonGrid(int(match["grid"]), int(match["buttons"]), spontaneous=spontaneous)
        return PanFlute(int(match["pipes"]), spontaneous=spontaneous)
    except ConfigError as err:
        raise ConfigError(f"env id {env_id!r}: {err}; gridworld ids are {ID_FORMS}") from None


def build_gridworld_env(env_id: str, *, device: str = "cpu", max_episode_steps: int | None = None,
                        **env_kwargs: Any) -> GridworldEnv:
    """The ``register_env`` builder for ids starting with ``gridworld/``; the only env kwarg is
    ``spontaneous`` (bool, default True)."""
    unknown = sorted(set(env_kwargs) - {"spontaneous"})
    if unknown:
        raise ConfigError(f"env {env_id!r} takes env_kwargs spontaneous only, got {unknown}")
    return GridworldEnv(make_core(env_id, **env_kwargs), device=device, max_episode_steps=max_episode_steps)


register_env(PREFIX, build_gridworld_env)
