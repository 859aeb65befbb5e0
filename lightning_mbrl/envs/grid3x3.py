"""The 3x3 offline grid of paper 001 (Young et al. 2023, Section 2, Figure 1): its dynamics, the
basic and evaluation layouts, the four training datasets and the correct greedy action per cell.
Pure torch, no Lightning.

The world: a 3x3 grid, the goal in the top-left cell, walls fixed for an episode, 5 actions
``{0 no-op, 1 up, 2 left, 3 down, 4 right}`` (paper 001's action set, the order of its ProcMaze).
A move into a wall or off the grid leaves the agent where it is. Every step costs reward -1; the
step that enters the goal is terminal (the episode ends there; no transition starts on the goal).
Cells are numbered ``row * 3 + col``, row 0 at the top.

Observation (36 binary features, the paper's "flat binary vectors"): one-hot agent cell (9), one-hot
goal cell (9, always cell 0), wall presence per cell (9), wall absence per cell (9).

Datasets (Section 2): every dataset holds the *basic set*, all transitions (every non-goal open cell
x every action) of the 8 layouts with one wall in one of the 8 non-goal cells (8 x 7 x 5 = 280), plus
a share of the *evaluation set*, the transitions of the two 2-wall layouts of Figure 1:

- ``all_evaluation``: all of them (2 x 6 x 5 = 60);
- ``path_to_goal``: only the transitions that follow the path to the goal (the one correct action in
  each of the 6 non-goal open cells: 2 x 6);
- ``single_cell``: every action from the open cell furthest from the goal along the only path (2 x 5);
- ``no_evaluation``: none.

The two evaluation layouts: Figure 1 is an image that the paper's text does not spell out. Its text
fixes one of them: in "the lower evaluation wall layout", the agent in the bottom-middle cell must
move right, which with two walls on a 3x3 grid holds for walls on the middle row's left and centre
cells (the only path: bottom row left to right, up the right column, along the top row to the goal).
The other is taken as its mirror image in the diagonal through the goal (walls on the middle
column's top and centre cells), so that neither layout favours a direction. Both leave one open path
from every cell, so each non-goal cell has exactly one correct greedy action.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.errors import ConfigError

SIDE = 3
CELLS = SIDE * SIDE
GOAL = 0
NUM_ACTIONS = 5
OBS_DIM = 4 * CELLS
#: (row, col) offsets of the actions: no-op, up, left, down, right.
MOVES = ((0, 0), (-1, 0), (0, -1), (1, 0), (0, 1))
#: The two 2-wall evaluation layouts, as wall cells (module docstring).
EVALUATION_LAYOUTS: tuple[tuple[int, ...], ...] = ((3, 4), (1, 4))
#: The 8 basic layouts: one wall in each non-goal cell.
BASIC_LAYOUTS: tuple[tuple[int, ...], ...] = tuple((cell,) for cell in range(1, CELLS))
Coverage = Literal["all_evaluation", "path_to_goal", "single_cell", "no_evaluation"]
COVERAGES: tuple[str, ...] = get_args(Coverage)


def walls_mask(layout: tuple[int, ...]) -> Tensor:
    """Bool ``[9]``: True on the layout's wall cells."""
    mask = torch.zeros(CELLS, dtype=torch.bool)
    mask[list(layout)] = True
    return mask


def observation(cell: Tensor, walls: Tensor) -> Tensor:
    """Float32 ``[*B, 36]`` for agent cells ``long [*B]`` and wall masks ``bool [*B, 9]`` (or ``[9]``)."""
    walls = walls.expand(*cell.shape, CELLS)
    agent = torch.nn.functional.one_hot(cell, CELLS).bool()
    goal = torch.zeros_like(agent)
    goal[..., GOAL] = True
    return torch.cat([agent, goal, walls, ~walls], dim=-1).float()


def move(cell: int, action: int, walls: Tensor) -> int:
    """The cell after ``action`` from ``cell`` (unchanged into a wall or off the grid)."""
    row, col = divmod(cell, SIDE)
    d_row, d_col = MOVES[action]
    r, c = row + d_row, col + d_col
    if not (0 <= r < SIDE and 0 <= c < SIDE) or bool(walls[r * SIDE + c]):
        return cell
    return r * SIDE + c


def distances(walls: Tensor) -> list[int | None]:
    """Steps from every cell to the goal by breadth-first search (None: wall or unreachable)."""
    dist: list[int | None] = [None] * CELLS
    dist[GOAL], frontier = 0, [GOAL]
    while frontier:
        nxt = []
        for cell in frontier:
            for other in range(CELLS):
                if dist[other] is None and not walls[other] and any(move(other, a, walls) == cell for a in range(1, NUM_ACTIONS)):
                    dist[other] = dist[cell] + 1  # type: ignore[operator]
                    nxt.append(other)
        frontier = nxt
    return dist


def open_cells(walls: Tensor) -> list[int]:
    """The non-goal cells without a wall, in order."""
    return [cell for cell in range(1, CELLS) if not walls[cell]]


def optimal_actions(walls: Tensor) -> dict[int, set[int]]:
    """The actions that start a shortest path to the goal, for every non-goal open cell (exact)."""
    dist = distances(walls)
    best: dict[int, set[int]] = {}
    for cell in open_cells(walls):
        if dist[cell] is None:
            raise ValueError(f"cell {cell} cannot reach the goal with walls {walls.nonzero().flatten().tolist()}")
        best[cell] = {a for a in range(NUM_ACTIONS) if dist[move(cell, a, walls)] == dist[cell] - 1}
    return best


def transitions(layout: tuple[int, ...], pairs: list[tuple[int, int]] | None = None) -> TensorDict:
    """The transitions ``(cell, action)`` of a layout (default: every non-goal open cell x every action)
    as a TensorDict ``[N]`` with ``observation``, ``action``, ``("next", "observation")``,
    ``("next", "reward")`` (-1) and ``("next", "terminated")`` (entering the goal), plus the integer
    ``cell`` and ``next_cell`` for inspection."""
    walls = walls_mask(layout)
    if pairs is None:
        pairs = [(cell, a) for cell in open_cells(walls) for a in range(NUM_ACTIONS)]
    cell = torch.tensor([c for c, _ in pairs], dtype=torch.long)
    action = torch.tensor([a for _, a in pairs], dtype=torch.long)
    next_cell = torch.tensor([move(c, a, walls) for c, a in pairs], dtype=torch.long)
    return TensorDict({
        keys.OBSERVATION: observation(cell, walls),
        keys.ACTION: action,
        keys.NEXT_OBSERVATION: observation(next_cell, walls),
        keys.REWARD: torch.full((len(pairs),), -1.0),
        keys.TERMINATED: next_cell == GOAL,
        "cell": cell,
        "next_cell": next_cell,
    }, batch_size=[len(pairs)])


def furthest_cell(layout: tuple[int, ...]) -> int:
    """The open cell furthest from the goal along the path (unique on the evaluation layouts)."""
    dist = distances(walls_mask(layout))
    return max(open_cells(walls_mask(layout)), key=lambda cell: dist[cell])  # type: ignore[arg-type,return-value]


def evaluation_pairs(layout: tuple[int, ...], coverage: str) -> list[tuple[int, int]]:
    """The ``(cell, action)`` pairs of an evaluation layout a dataset of ``coverage`` holds."""
    walls = walls_mask(layout)
    if coverage == "all_evaluation":
        return [(cell, a) for cell in open_cells(walls) for a in range(NUM_ACTIONS)]
    if coverage == "path_to_goal":
        return [(cell, min(best)) for cell, best in optimal_actions(walls).items()]
    if coverage == "single_cell":
        return [(furthest_cell(layout), a) for a in range(NUM_ACTIONS)]
    if coverage == "no_evaluation":
        return []
    raise ConfigError(f"coverage must be one of {', '.join(COVERAGES)}, got {coverage!r}")


def dataset(coverage: str) -> TensorDict:
    """The training dataset of ``coverage`` (module docstring): the basic set, then the evaluation pairs."""
    if coverage not in COVERAGES:
        raise ConfigError(f"coverage must be one of {', '.join(COVERAGES)}, got {coverage!r}")
    parts = [transitions(layout) for layout in BASIC_LAYOUTS]
    parts += [transitions(layout, evaluation_pairs(layout, coverage)) for layout in EVALUATION_LAYOUTS
              if evaluation_pairs(layout, coverage)]
    return torch.cat(parts)


def evaluation_rows(coverage: str) -> Tensor:
    """``long [n]``: the rows of ``dataset(coverage)`` that are evaluation-layout transitions (its last ones)."""
    n_eval = sum(len(evaluation_pairs(layout, coverage)) for layout in EVALUATION_LAYOUTS)
    n_basic = sum(len(transitions(layout)) for layout in BASIC_LAYOUTS)
    return torch.arange(n_basic, n_basic + n_eval)


def evaluation_cells() -> TensorDict:
    """The cells the agents are scored on: every non-goal open cell of both evaluation layouts, with its
    ``observation [12, 36]``, ``layout`` index, ``cell`` and ``correct_action`` (unique on these layouts)."""
    obs, layout_index, cells, correct = [], [], [], []
    for i, layout in enumerate(EVALUATION_LAYOUTS):
        walls = walls_mask(layout)
        for cell, best in optimal_actions(walls).items():
            if len(best) != 1:
                raise AssertionError(f"layout {layout}: cell {cell} has {len(best)} optimal actions")
            obs.append(observation(torch.tensor(cell), walls))
            layout_index.append(i)
            cells.append(cell)
            correct.append(next(iter(best)))
    return TensorDict({
        keys.OBSERVATION: torch.stack(obs),
        "layout": torch.tensor(layout_index),
        "cell": torch.tensor(cells),
        "correct_action": torch.tensor(correct),
    }, batch_size=[len(cells)])
