"""1-D piecewise-linear MDPs of Dong, Luo, Yu, Finn, Ma (2020), "On the Expressivity of Neural
Networks for Deep Reinforcement Learning" (BOOTS, paper 000), with exact solvers.

What is here (pure numpy/torch, no Lightning):

- :class:`PiecewiseLinear`: a function on S = [0, 1) made of linear pieces, with jumps allowed,
  and the operations the Bellman operator needs (evaluate, compose, add, scale, upper envelope,
  integrate, count pieces).
- :class:`PiecewiseLinearMDP` and its generators: :func:`definition_4_1` (Definition 4.1),
  :func:`rand_mdp` and :func:`semi_rand_mdp` (section 5.1, RAND and SEMI-RAND).
- :func:`solve`: exact finite-horizon Q*, V*, pi* by Bellman recursion on piecewise-linear
  functions, and the closed forms of Theorem 4.2 (:func:`def41_policy`, Eq. 2;
  :func:`def41_value`, Eq. 3; :func:`def41_optimal_return`).
- A CLI (``python -m lightning_mbrl.envs.piecewise_linear stats|solve``) printing JSON.

Arithmetic is float64. The solvers are exact in the sense that every piece is computed by formula
(no grid); three tolerances (module constants below) decide what counts as the same breakpoint, the
same piece, and a tie. For Definition 4.1 every breakpoint is a dyadic rational that float64 holds
exactly and the functions are piecewise constant with jumps of at least 2e-3 (H <= 8, T = 2H), far
above the tolerances, so its piece counts are exact (tested up to H = 8). RAND/SEMI-RAND counts
barely depend on the tolerances, except for the rare RAND MDPs whose compositions reach slopes of
1e12 and more, whose pieces narrower than MIN_WIDTH float64 cannot place reliably (a few percent of
their count); the fractions over 100 and 1000 pieces do not move (docs/piecewise_linear.md).
See docs/piecewise_linear.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Pieces narrower than this are float round-off from compositions and crossings and are absorbed
#: into their left neighbour. Definition 4.1 truncated at T has pieces down to 2^-(T+H-1) wide, so
#: its counts are exact while T + H <= 40.
MIN_WIDTH = 1e-12
#: Adjacent pieces merge when the jump between them is at most VALUE_TOL (absolute) and their slopes
#: differ by at most VALUE_TOL * max(1, |slope|) (relative).
VALUE_TOL = 1e-9
#: Two Q-values within TIE_TOL are a tie; ties go to the lower action index.
TIE_TOL = 1e-9


# ================================================================================= the function type
class PiecewiseLinear:
    """``f(s) = v[i] + m[i] * (s - x[i])`` for ``x[i] <= s < x[i + 1]``, with ``0 = x[0] < ... < x[n] = 1``.

    Each piece is half-open, so ``f`` is right-continuous; a jump is two adjacent pieces whose
    values differ at the shared breakpoint. ``v[i]`` is the value at the start of piece ``i``;
    the left limit at its end is ``v[i] + m[i] * (x[i + 1] - x[i])`` (:attr:`end_values`).

    Every operation returns the canonical form: no piece narrower than ``MIN_WIDTH`` and no two
    adjacent pieces that are collinear and join continuously, so :attr:`num_pieces` is the number
    of linear pieces of the function. A composition ``g(f(s))`` with a decreasing piece of ``f``
    can differ from this right-continuous form at isolated points only (the breakpoints).

    Shapes: ``x`` float64 ``[n + 1]``, ``v`` and ``m`` float64 ``[n]``.
    """

    __slots__ = ("m", "v", "x")

    def __init__(self, x: Sequence[float] | np.ndarray, v: Sequence[float] | np.ndarray,
                 m: Sequence[float] | np.ndarray) -> None:
        x, v, m = (np.asarray(a, dtype=np.float64) for a in (x, v, m))
        if x.ndim != 1 or len(x) < 2 or v.shape != (len(x) - 1,) or m.shape != v.shape:
            raise ValueError(f"need x [n+1], v [n], m [n]; got shapes {x.shape}, {v.shape}, {m.shape}")
        if x[0] != 0.0 or x[-1] != 1.0 or not np.all(np.diff(x) > 0):
            raise ValueError("breakpoints must increase strictly from 0 to 1")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(m))):
            raise ValueError("values and slopes must be finite")
        self.x, self.v, self.m = _canonical(x, v, m)

    @classmethod
    def _raw(cls, x: np.ndarray, v: np.ndarray, m: np.ndarray) -> PiecewiseLinear:
        """Wrap arrays already in canonical form (no checks)."""
        out = object.__new__(cls)
        out.x, out.v, out.m = x, v, m
        return out

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def constant(cls, c: float) -> PiecewiseLinear:
        return cls._raw(np.array([0.0, 1.0]), np.array([float(c)]), np.zeros(1))

    @classmethod
    def linear(cls, slope: float, intercept: float) -> PiecewiseLinear:
        """``s -> slope * s + intercept`` on [0, 1) (one piece)."""
        return cls._raw(np.array([0.0, 1.0]), np.array([float(intercept)]), np.array([float(slope)]))

    @classmethod
    def linear_mod1(cls, slope: float, intercept: float) -> PiecewiseLinear:
        """``s -> (slope * s + intercept) mod 1`` (``y mod 1 = y - floor(y)``): a new piece
        starts wherever the line crosses an integer. ``2s mod 1`` has 2 pieces, ``2s + k mod 1``
        with 0 < k < 1 has 3."""
        if slope == 0:
            return cls.constant(intercept - math.floor(intercept))
        lo, hi = sorted((intercept, slope + intercept))
        crossings = [(k - intercept) / slope for k in range(math.floor(lo) + 1, math.ceil(hi))]
        x = np.array([0.0] + sorted(c for c in crossings if 0.0 < c < 1.0) + [1.0])
        starts = x[:-1]
        # The value at a piece start is taken just to its right: with a negative slope the line
        # arrives at the integer from above, so the piece starts just below 1, not at 0.
        offset = np.floor(slope * (starts + x[1:]) / 2 + intercept)  # the integer part mid-piece
        start_values = np.clip(slope * starts + intercept - offset, 0.0, 1.0)  # round-off at crossings
        return cls(x, start_values, np.full(len(starts), float(slope)))

    @classmethod
    def interpolate(cls, knots: Sequence[float], values: Sequence[float]) -> PiecewiseLinear:
        """The continuous function joining ``(knots[i], values[i])`` by straight lines.

        ``knots`` increase strictly from 0 to 1; ``values[-1]`` is the left limit at 1."""
        knots, values = np.asarray(knots, dtype=np.float64), np.asarray(values, dtype=np.float64)
        if knots.shape != values.shape:
            raise ValueError(f"knots and values differ in shape: {knots.shape} vs {values.shape}")
        return cls(knots, values[:-1], np.diff(values) / np.diff(knots))

    @classmethod
    def step(cls, breaks: Sequence[float], values: Sequence[float]) -> PiecewiseLinear:
        """The piecewise-constant function equal to ``values[i]`` on ``[breaks[i], breaks[i+1])``."""
        values = np.asarray(values, dtype=np.float64)
        return cls(breaks, values, np.zeros_like(values))

    # ----------------------------------------------------------------------------- queries
    @property
    def num_pieces(self) -> int:
        """Number of linear pieces (collinear continuous neighbours count once)."""
        return len(self.v)

    @property
    def end_values(self) -> np.ndarray:
        """Left limit of each piece at its right end, ``[n]``."""
        return self.v + self.m * np.diff(self.x)

    @property
    def continuous_at(self) -> np.ndarray:
        """bool ``[n - 1]``: no jump at the interior breakpoint ``x[i + 1]``."""
        return _joins(self.x, self.v, self.m)

    def __call__(self, s: np.ndarray | torch.Tensor | float) -> np.ndarray | torch.Tensor:
        """Evaluate at ``s`` in [0, 1) (any shape; numpy, torch or a float); float64 math, result in
        the input's type (torch keeps dtype and device)."""
        if isinstance(s, torch.Tensor):
            x = torch.as_tensor(self.x, device=s.device)
            s64 = s.to(torch.float64)
            i = (torch.searchsorted(x, s64, right=True) - 1).clamp(0, self.num_pieces - 1)
            v, m = torch.as_tensor(self.v, device=s.device), torch.as_tensor(self.m, device=s.device)
            return (v[i] + m[i] * (s64 - x[i])).to(s.dtype)
        s = np.asarray(s, dtype=np.float64)
        i = _piece_at(self.x, s, "right")
        return self.v[i] + self.m[i] * (s - self.x[i])

    def integral(self) -> float:
        """``int_0^1 f(s) ds`` (exact for the pieces)."""
        w = np.diff(self.x)
        return float(np.sum(w * (self.v + 0.5 * self.m * w)))

    def image_bounds(self) -> tuple[float, float]:
        """(inf, sup) of the function over [0, 1): the extremes of start values and end limits."""
        ends = self.end_values
        return float(min(self.v.min(), ends.min())), float(max(self.v.max(), ends.max()))

    def __repr__(self) -> str:
        return f"PiecewiseLinear({self.num_pieces} pieces)"

    # ----------------------------------------------------------------------------- arithmetic
    def __add__(self, other: PiecewiseLinear | float) -> PiecewiseLinear:
        if not isinstance(other, PiecewiseLinear):
            return PiecewiseLinear._raw(self.x, self.v + float(other), self.m)
        grid, (i, j) = _common_grid([self.x, other.x])
        (va, ma), (vb, mb) = _on_grid(self, grid, i), _on_grid(other, grid, j)
        if other.num_pieces == 1:  # adding one line keeps every jump and slope difference
            return PiecewiseLinear._raw(grid, va + vb, ma + mb)
        return PiecewiseLinear._raw(*_canonical(grid, va + vb, ma + mb))

    __radd__ = __add__

    def __mul__(self, c: float) -> PiecewiseLinear:
        if c == 0:
            return PiecewiseLinear.constant(0.0)
        return PiecewiseLinear._raw(self.x, self.v * float(c), self.m * float(c))

    __rmul__ = __mul__

    def __neg__(self) -> PiecewiseLinear:
        return self * -1.0

    def __sub__(self, other: PiecewiseLinear | float) -> PiecewiseLinear:
        return self + (-other)

    def compose(self, f: PiecewiseLinear) -> PiecewiseLinear:
        """``s -> self(f(s))`` for ``f`` mapping [0, 1) into [0, 1) (wrap-around is in ``f``'s pieces,
        see :meth:`linear_mod1`).

        Piece ``i`` of ``f`` sweeps the image interval from ``p = f(x_i)`` to its end limit ``q``;
        every breakpoint of ``self`` strictly inside that interval starts a new piece at its
        preimage ``x_i + (breakpoint - p) / m_i``. Cost: O(number of output pieces).
        """
        g = self
        p, q, fm, fx = f.v, f.end_values, f.m, f.x[:-1]
        last = g.num_pieces - 1
        rising, falling = fm > 0, fm < 0
        # First and last piece of g visited: right-continuous at p when rising or flat; when
        # falling, values just below p, so the piece ending at p; and symmetrically at q.
        j_first = np.where(falling, np.searchsorted(g.x, p, "left") - 1, np.searchsorted(g.x, p, "right") - 1)
        j_last = np.where(rising, np.searchsorted(g.x, q, "left") - 1,
                          np.where(falling, np.searchsorted(g.x, q, "right") - 1, j_first))
        j_first, j_last = np.clip(j_first, 0, last), np.clip(j_last, 0, last)
        count = np.abs(j_last - j_first) + 1
        piece = np.repeat(np.arange(len(fm)), count)
        k = np.arange(len(piece)) - np.repeat(np.cumsum(count) - count, count)  # index within piece
        direction = np.where(falling, -1, 1)[piece]
        j = j_first[piece] + direction * k
        # Where f enters g's piece j: p itself for the first, else g's breakpoint on the way in.
        entry = np.where(k == 0, p[piece], np.where(direction > 0, g.x[j], g.x[j + 1]))
        fm_p = fm[piece]
        safe = np.where(fm_p == 0, 1.0, fm_p)
        start = np.where(k == 0, fx[piece], fx[piece] + (entry - p[piece]) / safe)
        value = g.v[j] + g.m[j] * (entry - g.x[j])
        return PiecewiseLinear._raw(*_canonical(_with_end(start), value, g.m[j] * fm_p))

    def maximum(self, other: PiecewiseLinear) -> PiecewiseLinear:
        """Pointwise ``max(self, other)``."""
        return upper_envelope([self, other])[0]


def upper_envelope(fns: Sequence[PiecewiseLinear]) -> tuple[PiecewiseLinear, PiecewiseLinear]:
    """``(max_a fns[a], argmax_a fns[a])``; the argmax is a piecewise-constant function with values
    in {0, ..., len(fns) - 1} (ties within ``TIE_TOL`` go to the lower index), so its
    :attr:`~PiecewiseLinear.num_pieces` is the number of maximal intervals with one argmax.

    Each pair is compared on the union of breakpoints; where their difference changes sign
    strictly inside an interval, the crossing point splits it.
    """
    best, label = fns[0], PiecewiseLinear.constant(0.0)
    for a, h in enumerate(fns[1:], start=1):
        grid, (ib, il, ih) = _common_grid([best.x, label.x, h.x])
        (bv, bm), (hv, hm), (lv, _) = _on_grid(best, grid, ib), _on_grid(h, grid, ih), _on_grid(label, grid, il)
        width = np.diff(grid)
        d0 = bv - hv
        d1 = d0 + (bm - hm) * width
        crosses = ((d0 > TIE_TOL) & (d1 < -TIE_TOL)) | ((d0 < -TIE_TOL) & (d1 > TIE_TOL))
        t = np.where(crosses, d0 / np.where(crosses, d0 - d1, 1.0), 0.0)
        count = 1 + crosses
        idx = np.repeat(np.arange(len(width)), count)
        second = np.zeros(len(idx), dtype=bool)
        second[np.cumsum(count)[crosses] - 1] = True
        start = grid[:-1][idx] + np.where(second, t[idx] * width[idx], 0.0)
        end = np.append(start[1:], 1.0)
        offset = start - grid[:-1][idx]
        b_start, h_start = bv[idx] + bm[idx] * offset, hv[idx] + hm[idx] * offset
        half = 0.5 * (end - start)
        h_wins = (b_start + bm[idx] * half) - (h_start + hm[idx] * half) < -TIE_TOL  # at the midpoint
        xs = _with_end(start)
        best = PiecewiseLinear._raw(*_canonical(xs, np.where(h_wins, h_start, b_start),
                                                np.where(h_wins, hm[idx], bm[idx])))
        labels = np.where(h_wins, float(a), lv[idx])
        label = PiecewiseLinear._raw(*_canonical(xs, labels, np.zeros_like(labels)))
    return best, label


# ----------------------------------------------------------------------------- array helpers
def _piece_at(x: np.ndarray, s: np.ndarray, side: str) -> np.ndarray:
    return np.clip(np.searchsorted(x, s, side) - 1, 0, len(x) - 2)


def _with_end(start: np.ndarray) -> np.ndarray:
    return np.append(start, 1.0)


def _merge(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two breakpoint arrays (each sorted, from 0 to 1) into one grid; points closer than
    MIN_WIDTH count once. Returns ``(grid, ia, ib)``: interval k of the grid lies in interval
    ``ia[k]`` of ``a`` and ``ib[k]`` of ``b``.

    A group of points within MIN_WIDTH keeps its first point and takes the intervals that follow
    its last point, so a breakpoint moved by less than MIN_WIDTH never selects the wrong piece."""
    na, nb = len(a) - 1, len(b) - 1
    if nb == 1 or (na == nb and np.array_equal(a, b)):
        return a, np.arange(na), (np.arange(nb) if na == nb and nb > 1 else np.zeros(na, dtype=np.int64))
    if na == 1:
        return b, np.zeros(nb, dtype=np.int64), np.arange(nb)
    u = np.empty(len(a) + len(b))
    at = np.searchsorted(a, b, "right") + np.arange(len(b))  # each b lands after the a's <= it
    is_b = np.zeros(len(u), dtype=bool)
    is_b[at] = True
    u[at], u[~is_b] = b, a
    keep = np.empty(len(u), dtype=bool)
    keep[0] = True
    keep[1:] = np.diff(u) > MIN_WIDTH
    kept = np.flatnonzero(keep)
    last_of_group = kept[1:] - 1
    ib = np.cumsum(is_b)[last_of_group] - 1
    ia = last_of_group - ib - 1  # points so far that came from a, minus one
    grid = u[kept]
    grid[-1] = 1.0
    return grid, ia, ib


def _common_grid(xs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One grid refining every breakpoint array in ``xs``, and each array's interval index per
    grid interval."""
    grid, idx = xs[0], [np.arange(len(xs[0]) - 1)]
    for x in xs[1:]:
        grid, i_old, i_new = _merge(grid, x)
        idx = [i[i_old] for i in idx] + [i_new]
    return grid, idx


def _on_grid(f: PiecewiseLinear, grid: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start values, slopes)`` of ``f`` on the intervals of ``grid``, interval k lying in piece ``i[k]``."""
    if len(i) == len(f.v) and grid is f.x:
        return f.v, f.m
    return f.v[i] + f.m[i] * (grid[:-1] - f.x[i]), f.m[i]


def _joins(x: np.ndarray, v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """bool ``[n - 1]``: piece i ends where piece i + 1 starts (no jump at ``x[i + 1]``), within
    VALUE_TOL plus the round-off of a breakpoint (a few ulps) times the steeper slope."""
    jump = (v[:-1] + m[:-1] * (x[1:-1] - x[:-2])) - v[1:]
    steepest = np.maximum(np.abs(m[:-1]), np.abs(m[1:]))
    return np.abs(jump) <= VALUE_TOL + 8 * np.finfo(np.float64).eps * steepest


def _canonical(x: np.ndarray, v: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop pieces narrower than MIN_WIDTH (their interval goes to the left neighbour; a dropped
    first piece hands [0, ...) to the next one), then merge collinear continuous neighbours."""
    keep = np.diff(x) > MIN_WIDTH
    if not keep.all():
        x = np.maximum.accumulate(x)
        keep = np.diff(x) > MIN_WIDTH
        if not keep.any():  # every piece is a sliver: keep the widest
            keep[np.argmax(np.diff(x))] = True
        first = int(np.argmax(keep))
        x_start, v, m = x[:-1][keep], v[keep], m[keep]
        if first > 0:  # re-base the new first piece at 0
            v = v.copy()
            v[0] -= m[0] * x_start[0]
        x = np.append(x_start, 1.0)
        x[0] = 0.0
    if len(v) > 1:
        steepest = np.maximum(1.0, np.maximum(np.abs(m[:-1]), np.abs(m[1:])))
        same = _joins(x, v, m) & (np.abs(m[:-1] - m[1:]) <= VALUE_TOL * steepest)
        if same.any():
            new = np.concatenate(([True], ~same))
            x, v, m = np.append(x[:-1][new], 1.0), v[new], m[new]
    return x, v, m


# ================================================================================= MDPs
@dataclass(frozen=True)
class PiecewiseLinearMDP:
    """Deterministic MDP on S = [0, 1), A = {0, ..., A-1}: ``s' = f(s, a)``, reward ``r(s, a)``,
    uniform initial state.

    ``dynamics[a]`` is ``f(., a)`` and ``rewards[a]`` is ``r(., a)``, both :class:`PiecewiseLinear`;
    each ``f(., a)`` maps [0, 1) into [0, 1). ``horizon`` is the episode length of a finite-horizon
    MDP (RAND, SEMI-RAND) or ``None`` for the infinite-horizon discounted one (Definition 4.1).
    """

    name: str
    dynamics: tuple[PiecewiseLinear, ...]
    rewards: tuple[PiecewiseLinear, ...]
    gamma: float
    horizon: int | None

    def __post_init__(self) -> None:
        if len(self.dynamics) != len(self.rewards) or not self.dynamics:
            raise ValueError("need one dynamics and one reward function per action")
        for a, f in enumerate(self.dynamics):
            lo, hi = f.image_bounds()
            # Limits may reach 0 or 1 (a rising piece ends, a falling piece starts, at an open
            # end), up to round-off; a rising or flat piece attains its start value, so < 1.
            if lo < -VALUE_TOL or hi > 1.0 + VALUE_TOL or np.any(f.v[f.m >= 0] >= 1.0):
                raise ValueError(f"{self.name}: f(., {a}) leaves [0, 1): range [{lo}, {hi}]")

    @property
    def num_actions(self) -> int:
        return len(self.dynamics)


def definition_4_1(H: int) -> PiecewiseLinearMDP:
    """The MDP M_H of Definition 4.1: gamma = 1 - 1/H, kappa = 2^-H,
    ``f(s, 0) = 2s mod 1`` (2 pieces), ``f(s, 1) = 2s + kappa mod 1`` (3 pieces),
    ``r(s, 0) = 1[1/2 <= s < 1]``, ``r(s, 1) = 1[1/2 <= s < 1] - 2 (gamma^(H-1) - gamma^H)``.

    The paper assumes H > 3; any integer H >= 1 is accepted (H = 1 gives gamma = 0)."""
    if not isinstance(H, (int, np.integer)) or isinstance(H, bool) or H < 1:
        raise ValueError(f"H must be an integer >= 1, got {H!r}")
    gamma = 1.0 - 1.0 / H
    kappa = 2.0**-H
    drift = 2.0 * (gamma ** (H - 1) - gamma**H)
    first_bit = PiecewiseLinear.step([0.0, 0.5, 1.0], [0.0, 1.0])
    return PiecewiseLinearMDP(
        name=f"def41-H{H}",
        dynamics=(PiecewiseLinear.linear_mod1(2.0, 0.0), PiecewiseLinear.linear_mod1(2.0, kappa)),
        rewards=(first_bit, first_bit - drift),
        gamma=gamma,
        horizon=None,
    )


#: Section 5.1: "We set horizon H = 10".
RANDOM_MDP_HORIZON = 10
REWARD_CHOICES = ("state", "next_state")


def _random_rewards(dynamics: tuple[PiecewiseLinear, ...], reward: str) -> tuple[PiecewiseLinear, ...]:
    if reward == "state":
        return tuple(PiecewiseLinear.linear(1.0, 0.0) for _ in dynamics)
    if reward == "next_state":
        return dynamics
    raise ValueError(f"reward must be one of {REWARD_CHOICES}, got {reward!r}")


def rand_mdp(seed: int, *, horizon: int = RANDOM_MDP_HORIZON, reward: str = "state") -> PiecewiseLinearMDP:
    """RAND (section 5.1): ``f(., 0)`` and ``f(., 1)`` drawn independently, each continuous with
    at most 4 pieces: the number of kinks is uniform on {1, 2, 3}, their positions uniform on
    (0, 1), the outputs at 0, the kinks and 1 uniform on [0, 1), joined by straight lines.
    Reward ``r(s, a) = s`` (the paper's text; ``reward="next_state"`` gives ``r(s, a) = f(s, a)``),
    gamma = 1, finite horizon.

    Appendix D.1's exact distribution is not available; this follows the text ("random positions
    for the kinks, random outputs for the kinks, ... at most four pieces"). With always 3 kinks,
    20% of policies have more than 100 pieces instead of the paper's 8.6%; with 1-3 kinks, 9.5%
    (docs/piecewise_linear.md). Random stream ``numpy.random.default_rng(seed)``, per action: the
    number of kinks, the kink positions, the outputs."""
    rng = np.random.default_rng(seed)
    dynamics = []
    for _ in range(2):
        n_kinks = int(rng.integers(1, 4))
        kinks = np.sort(rng.uniform(0.0, 1.0, size=n_kinks))
        outputs = rng.uniform(0.0, 1.0, size=n_kinks + 2)
        dynamics.append(PiecewiseLinear.interpolate(np.concatenate(([0.0], kinks, [1.0])), outputs))
    dynamics = tuple(dynamics)
    return PiecewiseLinearMDP(f"rand-{seed}", dynamics, _random_rewards(dynamics, reward), 1.0, horizon)


#: SEMI-RAND: both actions share the knots 0, 1/3, 2/3, 1 (3 pieces each) ...
SEMI_RAND_KNOTS = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)
#: ... and their outputs alternate high ~ U[1 - w, 1) and low ~ U[0, w) with this w.
SEMI_RAND_SPREAD = 0.3


def semi_rand_mdp(seed: int, *, horizon: int = RANDOM_MDP_HORIZON, reward: str = "state") -> PiecewiseLinearMDP:
    """SEMI-RAND (section 5.1): ``f(., 0)`` and ``f(., 1)`` each have 3 pieces on the shared knots
    0, 1/3, 2/3, 1, and the outputs at the knots "fluctuate": high, low, high, low with
    high ~ U[0.7, 1) and low ~ U[0, 0.3) (independent for both actions). Every piece then has
    slope magnitude in [1.2, 3], so the maps expand and fold [0, 1) three times, the source of
    the many pieces. Reward ``r(s, a) = s`` (``reward="next_state"``: ``f(s, a)``), gamma = 1,
    finite horizon.

    Appendix D.1's exact distribution is not available; this follows the text and the unofficial
    hint of 4 equally spaced shared knots, whose example outputs ([0.85, 0.29, 0.73, 0.1],
    [0.96, 0.15, 0.89, 0.15]) all fall in these ranges. Over seeds 0..999, 62.7% of policies have
    more than 1000 pieces (paper: 68.7%). Random stream ``numpy.random.default_rng(seed)``: one
    ``uniform(0, 0.3, size=(2, 4))`` draw, plus 0.7 at the high knots."""
    rng = np.random.default_rng(seed)
    w = SEMI_RAND_SPREAD
    outputs = rng.uniform(0.0, w, size=(2, 4)) + (1.0 - w) * np.array([1.0, 0.0, 1.0, 0.0])
    dynamics = tuple(PiecewiseLinear.interpolate(SEMI_RAND_KNOTS, outputs[a]) for a in range(2))
    return PiecewiseLinearMDP(f"semi-rand-{seed}", dynamics, _random_rewards(dynamics, reward), 1.0, horizon)


# ================================================================================= exact solver
@dataclass(frozen=True)
class Solution:
    """Exact optimal values of a horizon-``T`` problem (``Q_0 = V_0 = 0``):

        Q_h(s, a) = r(s, a) + gamma * V_{h-1}(f(s, a)),   V_h = max_a Q_h,   h = 1..T

    ``values[h]`` is ``V_h`` (h = 0..T), ``policies[h - 1]`` is ``argmax_a Q_h`` (the action to take
    with h steps to go), ``q[a]`` is ``Q_T(., a)``. The optimal policy of the finite-horizon
    problem is non-stationary: at step t (0-based) act by ``policies[T - 1 - t]``.
    """

    mdp: PiecewiseLinearMDP
    horizon: int
    gamma: float
    q: tuple[PiecewiseLinear, ...]
    values: tuple[PiecewiseLinear, ...]
    policies: tuple[PiecewiseLinear, ...]

    @property
    def value(self) -> PiecewiseLinear:
        """``V_T``."""
        return self.values[-1]

    @property
    def policy(self) -> PiecewiseLinear:
        """``argmax_a Q_T(., a)``: the first action of an optimal T-step plan."""
        return self.policies[-1]

    @property
    def q_pieces(self) -> list[int]:
        """Pieces of ``Q_T(., a)`` for each action a."""
        return [q.num_pieces for q in self.q]

    @property
    def policy_pieces(self) -> int:
        """Maximal intervals of constant ``argmax_a Q_T``."""
        return self.policy.num_pieces

    @property
    def optimal_return(self) -> float:
        """``E_{s ~ U[0, 1)} V_T(s)``: exact integral of the piecewise-linear ``V_T``."""
        return self.value.integral()


def def41_horizon(H: int) -> int:
    """Default truncation of Definition 4.1's infinite-horizon problem: T = 2H backups, as in
    Figure 2c.

    Policy: the greedy policy of Q_T is exactly Eq. (2) from T = 6, 8, 9, 11, 13, 14, 15 on for
    H = 4..10 (measured), so 2H suffices there. A proof for any H: |Q_T - Q*| <= gamma^T max|V*|
    (Bellman contraction from V_0 = 0) and the action gap of Q* is gamma^(H-1) / H, so every T
    with 2 gamma^T H < gamma^(H-1) / H gives Eq. (2) (T >= 15 for H = 4, 44 for H = 8).
    Value: |V_T - V*| <= gamma^T max|V*| <= gamma^T H. See docs/piecewise_linear.md."""
    return 2 * H


def solve(mdp: PiecewiseLinearMDP, horizon: int | None = None, *, gamma: float | None = None) -> Solution:
    """Exact ``Q_T``, ``V_h`` and greedy policies by T Bellman backups on piecewise-linear functions.

    ``horizon`` defaults to the MDP's own (10 for RAND/SEMI-RAND) or, for Definition 4.1,
    :func:`def41_horizon`; ``gamma`` defaults to the MDP's. ``gamma V_{h-1}`` is formed before
    composing (fewer pieces to scale)."""
    if horizon is None:
        horizon = mdp.horizon if mdp.horizon is not None else def41_horizon(round(1 / (1 - mdp.gamma)))
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    gamma = mdp.gamma if gamma is None else gamma
    values, policies = [PiecewiseLinear.constant(0.0)], []
    for _ in range(horizon):
        future = values[-1] * gamma
        q = tuple(r + future.compose(f) for f, r in zip(mdp.dynamics, mdp.rewards))
        v, pi = upper_envelope(q)
        values.append(v)
        policies.append(pi)
    return Solution(mdp, horizon, gamma, q, tuple(values), tuple(policies))


# ================================================================================= Theorem 4.2
def binary_digit(s: np.ndarray | float, k: int) -> np.ndarray:
    """``s^(k) = floor(2^k s) mod 2``, the k-th binary digit of s in [0, 1) (footnote 3); exact."""
    return np.mod(np.floor(np.ldexp(np.asarray(s, dtype=np.float64), k)), 2.0)


def def41_policy(s: np.ndarray | float, H: int) -> np.ndarray:
    """Eq. (2): ``pi*(s) = 1[s^(H+1) = 0]``."""
    return (binary_digit(s, H + 1) == 0).astype(np.int64)


def def41_value(s: np.ndarray | float, H: int) -> np.ndarray:
    """Eq. (3), the infinite sum evaluated exactly for float64 ``s`` (a float has finitely many
    binary digits; past the last one every term is ``gamma^(h-1)``, summed in closed form):

        V*(s) = sum_{h=1}^{H} g^(h-1) s^(h) + g^(H-1) (2 s^(H+1) - 2)
                + sum_{h=H+1}^{inf} g^(h-1) (1 + 2 (s^(h+1) - s^(h)))
    """
    s = np.asarray(s, dtype=np.float64)
    g = 1.0 - 1.0 / H
    # Last nonzero digit: 2^K s is an integer for every s.
    K = H + 1
    while not np.all(np.ldexp(s, K) == np.floor(np.ldexp(s, K))):
        K += 1
    bit = [None] + [binary_digit(s, h) for h in range(1, K + 2)]  # bit[h], h = 1..K+1
    total = sum(g ** (h - 1) * bit[h] for h in range(1, H + 1))
    total = total + g ** (H - 1) * (2 * bit[H + 1] - 2)
    total = total + sum(g ** (h - 1) * (1 + 2 * (bit[h + 1] - bit[h])) for h in range(H + 1, K + 1))
    return total + g**K / (1 - g)  # terms h >= K+1: digits h and h+1 are 0


def def41_optimal_return(H: int) -> float:
    """``E_{s ~ U[0,1)} V*(s)`` from Eq. (3): each digit has mean 1/2, so
    ``(1 - g^H) / (2 (1 - g)) - g^(H-1) + g^H / (1 - g)``."""
    g = 1.0 - 1.0 / H
    return (1 - g**H) / (2 * (1 - g)) - g ** (H - 1) + g**H / (1 - g)


# ================================================================================= CLI
METHODS = ("def41", "rand", "semi-rand")


def make_mdp(method: str, *, H: int = 4, seed: int = 0, horizon: int = RANDOM_MDP_HORIZON,
             reward: str = "state") -> PiecewiseLinearMDP:
    """One MDP by method name: ``def41`` uses ``H``; ``rand`` and ``semi-rand`` use ``seed``,
    ``horizon`` and ``reward``."""
    if method == "def41":
        return definition_4_1(H)
    if method == "rand":
        return rand_mdp(seed, horizon=horizon, reward=reward)
    if method == "semi-rand":
        return semi_rand_mdp(seed, horizon=horizon, reward=reward)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _solve_report(method: str, H: int, seed: int, horizon: int | None, reward: str) -> dict:
    mdp = make_mdp(method, H=H, seed=seed, horizon=horizon or RANDOM_MDP_HORIZON, reward=reward)
    sol = solve(mdp, horizon if method == "def41" else None)
    report = {
        "mdp": mdp.name,
        "gamma": mdp.gamma,
        "horizon": sol.horizon,
        "q_pieces": sol.q_pieces,
        "q_pieces_total": sum(sol.q_pieces),
        "policy_pieces": sol.policy_pieces,
        "value_pieces": sol.value.num_pieces,
        "dynamics_pieces": [f.num_pieces for f in mdp.dynamics],
        "optimal_return": sol.optimal_return,
    }
    if method == "def41":
        report["theorem_4_2_policy_pieces"] = 2 ** (H + 1)
        report["optimal_return_infinite_horizon"] = def41_optimal_return(H)
        # |V_T - V*| <= gamma^T max|V*| and max|V*| <= H (rewards <= 1): bound on the value error
        report["value_truncation_error_bound"] = mdp.gamma**sol.horizon * H
    else:
        report["reward"] = reward
    return report


def piece_statistics(method: str, n: int, *, seed: int = 0, horizon: int = RANDOM_MDP_HORIZON,
                     reward: str = "state") -> dict:
    """Solve MDPs with seeds ``seed, ..., seed + n - 1`` and summarise the piece counts of pi*
    (the first-step greedy policy) and of Q* (both actions together)."""
    policy, q_total = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(n):
        sol = solve(make_mdp(method, seed=seed + i, horizon=horizon, reward=reward))
        policy[i], q_total[i] = sol.policy_pieces, sum(sol.q_pieces)
    seconds = time.perf_counter() - t0
    top = int(max(q_total.max(initial=1), policy.max(initial=1)))
    edges = [10**k for k in range(max(1, math.ceil(math.log10(top + 1))) + 1)]  # decades up to the max

    def histogram(counts: np.ndarray) -> dict[str, int]:
        hist = np.histogram(counts, bins=edges)[0]
        return {f"[{lo}, {hi})": int(c) for lo, hi, c in zip(edges, edges[1:], hist)}

    frac = (lambda mask: float(mask.mean()) if n else None)
    return {
        "method": method,
        "n": n,
        "seed": seed,
        "horizon": horizon,
        "reward": reward,
        "fraction_policy_pieces_gt_100": frac(policy > 100),
        "fraction_policy_pieces_gt_1000": frac(policy > 1000),
        "policy_pieces_median": float(np.median(policy)) if n else None,
        "policy_pieces_max": int(policy.max(initial=0)),
        "policy_pieces_histogram": histogram(policy),
        "q_pieces_total_median": float(np.median(q_total)) if n else None,
        "q_pieces_total_histogram": histogram(q_total),
        "seconds": round(seconds, 3),
    }


def _non_negative(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = name
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbrl.envs.piecewise_linear",
                                     description="Exact Q*, pi* and piece counts of the 1-D MDPs of paper 000.")
    sub = parser.add_subparsers(dest="command", required=True)
    solve_p = sub.add_parser("solve", help="solve one MDP exactly; print piece counts and the optimal return")
    solve_p.add_argument("--method", choices=METHODS, required=True)
    solve_p.add_argument("--H", type=_non_negative("H", 1), default=4, help="def41: effective horizon")
    solve_p.add_argument("--seed", type=_non_negative("seed", 0), default=0, help="rand/semi-rand: the MDP's seed")
    solve_p.add_argument("--horizon", type=_non_negative("horizon", 1), default=None,
                         help="def41: truncation (default 2H); rand/semi-rand: episode length (default 10)")
    solve_p.add_argument("--reward", choices=REWARD_CHOICES, default="state")
    stats_p = sub.add_parser("stats", help="piece-count statistics over many random MDPs")
    stats_p.add_argument("--method", choices=("rand", "semi-rand"), required=True)
    stats_p.add_argument("--n", type=_non_negative("n", 0), default=1000)
    stats_p.add_argument("--seed", type=_non_negative("seed", 0), default=0, help="first seed")
    stats_p.add_argument("--horizon", type=_non_negative("horizon", 1), default=RANDOM_MDP_HORIZON)
    stats_p.add_argument("--reward", choices=REWARD_CHOICES, default="state")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints one JSON object. Bad arguments exit 2 with a one-line message."""
    args = _parser().parse_args(argv)
    if args.command == "solve":
        out = _solve_report(args.method, args.H, args.seed, args.horizon, args.reward)
    else:
        out = piece_statistics(args.method, args.n, seed=args.seed, horizon=args.horizon, reward=args.reward)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
