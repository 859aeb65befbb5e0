"""Zeroth-order optimisers over action (or noise) sequences, batched over independent problems.

Pure tensor code, no Lightning imports; ``boots.py`` and ``mpc.py`` wrap these with a model.

Shapes: ``E`` problems (evaluation episodes stepped together), ``C`` candidates per problem, ``H``
rows (time steps) of width ``A``. A score function maps candidates ``[E, C, H, A]`` (long
``[E, C, H]`` for discrete sequences) to ``[E, C]``, higher is better, and is called once per
iteration on all ``E * C`` candidates together: no loop over problems or candidates here or there.

- ``cem``: the cross-entropy method with a diagonal Gaussian refit to the elites, smoothed as
  ``new = smoothing * old + (1 - smoothing) * elite_statistic``. ``smoothing`` is the weight of the
  OLD value: BOOTS (REFERENCE 2.2) uses 0.5 (``mu <- 0.5 mu + 0.5 mean(elites)``), MAAC's MPC
  (REFERENCE 5.2) 0.1 (``0.1 old + 0.9 elite``); ``smoothing=0`` is plain CEM.
- ``mppi``: one or more softmax-weighted mean updates with a fixed std (Williams et al. 2017).
- ``random_shooting``: the best of given candidates (one draw, no refit).
- ``exhaustive_search``: the best of all ``n_actions ** H`` discrete sequences.

Random draws: ``standard_normal`` draws ALL iterations' noise in one call, as
``randn((n_iters, E, C, H, A), generator=...)`` on ``mean``'s device and dtype, and candidates at
iteration ``i`` are ``mean + std * noise[i]``. ``cem`` and ``mppi`` accept that tensor as ``noise``,
so a caller (or a test) can draw it once and solve the problems together or one at a time with the
same numbers. A ``generator`` must live on the tensors' device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from lightning_mbrl.errors import ConfigError, require_in_range, require_positive
from lightning_mbrl.precision import full_precision_context

#: ``candidates [E, C, H, A] (or long [E, C, H]) -> scores [E, C]``.
ScoreFn = Callable[[Tensor], Tensor]


class SearchResult(NamedTuple):
    """What an optimiser returns.

    ``best``: the best candidate of the LAST iteration, ``[E, H, A]`` (long ``[E, H]`` for
    exhaustive search); ``best_score [E]`` its score; ``mean``, ``std`` ``[E, H, A]``: the sampling
    distribution after the last update (the warm start of the next call), ``None`` where the
    optimiser has none.
    """

    best: Tensor
    best_score: Tensor
    mean: Tensor | None
    std: Tensor | None


def check_search_args(n_candidates: int, n_iters: int, n_elites: int, smoothing: float) -> None:
    """Raise ``ConfigError`` naming the field unless ``1 <= n_elites <= n_candidates``,
    ``n_iters >= 1`` and ``0 <= smoothing <= 1``."""
    for name, value in (("n_candidates", n_candidates), ("n_iters", n_iters), ("n_elites", n_elites)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name} must be an int, got {value!r}")
        require_positive(name, value)
    if n_elites > n_candidates:
        raise ConfigError(f"n_elites must be <= n_candidates ({n_candidates}), got {n_elites}")
    require_in_range("smoothing", smoothing, 0.0, 1.0)


def standard_normal(
    n_iters: int, n_candidates: int, like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """``N(0, I)`` noise ``[n_iters, E, C, H, A]`` for ``like [E, H, A]``, drawn in one call."""
    shape = (n_iters, like.shape[0], n_candidates, *like.shape[1:])
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def _scores(score: ScoreFn, candidates: Tensor) -> Tensor:
    """``score(candidates)`` with NaN (a diverged model) ranked below everything."""
    return torch.nan_to_num(score(candidates), nan=-torch.inf)


def _clamp(x: Tensor, low: float | None, high: float | None) -> Tensor:
    return x if low is None and high is None else x.clamp(low, high)


def _pick(candidates: Tensor, index: Tensor) -> Tensor:
    """``candidates [E, C, *R]`` at ``index long [E, K]`` along dim 1 -> ``[E, K, *R]``."""
    index = index.view(*index.shape, *([1] * (candidates.dim() - 2)))
    return torch.take_along_dim(candidates, index, dim=1)


@torch.no_grad()
def cem(
    score: ScoreFn,
    mean: Tensor,
    std: Tensor,
    *,
    n_candidates: int,
    n_iters: int,
    n_elites: int,
    smoothing: float,
    low: float | None = None,
    high: float | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> SearchResult:
    """The cross-entropy method from ``N(mean, diag(std^2))``, ``mean, std [E, H, A]``.

    Each of ``n_iters`` iterations samples ``x = clamp(mean + std * noise[i], low, high)``
    (``[E, C, H, A]``), scores all candidates in one call, keeps the ``n_elites`` best per problem
    and updates::

        mean <- smoothing * mean + (1 - smoothing) * mean(elites)
        std  <- smoothing * std  + (1 - smoothing) * std(elites)      (population std)

    Returns the best candidate of the last iteration (BOOTS executes its first row) and the final
    ``mean``/``std`` (MPC executes ``mean[:, 0]``). ``noise`` defaults to
    ``standard_normal(n_iters, n_candidates, mean, generator)``.
    """
    check_search_args(n_candidates, n_iters, n_elites, smoothing)
    if noise is None:
        noise = standard_normal(n_iters, n_candidates, mean, generator)
    for i in range(n_iters):
        candidates = _clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise[i], low, high)
        top = _scores(score, candidates).topk(n_elites, dim=1)  # sorted: top.indices[:, 0] is the best
        elites = _pick(candidates, top.indices)  # [E, n_elites, H, A]
        mean = smoothing * mean + (1.0 - smoothing) * elites.mean(dim=1)
        std = smoothing * std + (1.0 - smoothing) * elites.std(dim=1, correction=0)
    return SearchResult(elites[:, 0], top.values[:, 0], mean, std)


@torch.no_grad()
def mppi(
    score: ScoreFn,
    mean: Tensor,
    std: Tensor,
    *,
    n_candidates: int,
    n_iters: int,
    temperature: float,
    smoothing: float = 0.0,
    low: float | None = None,
    high: float | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> SearchResult:
    """Model-predictive path integral updates of ``mean [E, H, A]`` with a fixed ``std``.

    Per iteration: ``x = clamp(mean + std * noise[i], low, high)``, weights
    ``w = softmax(score(x) / temperature)`` over the candidates of each problem, and
    ``mean <- smoothing * mean + (1 - smoothing) * sum_c w_c x_c``. ``temperature`` is in reward
    units (small: close to the best candidate; large: close to the plain average). The returned
    ``std`` is the input ``std``.
    """
    check_search_args(n_candidates, n_iters, 1, smoothing)
    require_positive("temperature", temperature)
    if noise is None:
        noise = standard_normal(n_iters, n_candidates, mean, generator)
    for i in range(n_iters):
        candidates = _clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise[i], low, high)
        scores = _scores(score, candidates)  # [E, C]
        weights = torch.softmax(scores / temperature, dim=1)
        with full_precision_context():  # a weighted mean of actions, not a network: never in bf16
            target = torch.einsum("ec,ec...->e...", weights, candidates)
        mean = smoothing * mean + (1.0 - smoothing) * target
    best_score, best = scores.max(dim=1)
    return SearchResult(_pick(candidates, best.unsqueeze(1)).squeeze(1), best_score, mean, std)


@torch.no_grad()
def random_shooting(score: ScoreFn, candidates: Tensor) -> SearchResult:
    """The best of ``candidates [E, C, *R]`` (one draw, no refit): ``best [E, *R]``, ``best_score [E]``."""
    best_score, best = _scores(score, candidates).max(dim=1)
    return SearchResult(_pick(candidates, best.unsqueeze(1)).squeeze(1), best_score, None, None)


def enumerate_sequences(n_actions: int, horizon: int, device: torch.device | str | None = None) -> Tensor:
    """All ``n_actions ** horizon`` sequences, ``long [n_actions ** horizon, horizon]``, in
    lexicographic order (the first action is the most significant digit). ``horizon = 0`` gives
    the one empty sequence ``[1, 0]``."""
    codes = torch.arange(n_actions**horizon, device=device)
    powers = n_actions ** torch.arange(horizon - 1, -1, -1, device=device)
    return torch.div(codes.unsqueeze(1), powers, rounding_mode="floor") % n_actions


@torch.no_grad()
def exhaustive_search(
    score: ScoreFn, n_actions: int, horizon: int, n_problems: int, device: torch.device | str | None = None
) -> SearchResult:
    """The best of all discrete sequences for each of ``n_problems`` problems.

    ``score`` gets every sequence for every problem at once, ``long [E, n_actions ** horizon,
    horizon]``; returns ``best long [E, horizon]`` (the first best in lexicographic order on ties)
    and ``best_score [E]``. The cost grows as ``n_actions ** horizon``: keep ``horizon`` small.
    """
    require_positive("n_actions", n_actions)
    sequences = enumerate_sequences(n_actions, horizon, device)
    candidates = sequences.expand(n_problems, *sequences.shape)
    return random_shooting(score, candidates)
