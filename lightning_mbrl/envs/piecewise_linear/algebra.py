"""The function type of the 1-D piecewise-linear MDPs: :class:`PiecewiseLinear` on S = [0, 1)
(linear pieces, jumps allowed) and :func:`upper_envelope` (max and argmax over actions), in float64
with the canonical form that makes ``num_pieces`` the piece count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
