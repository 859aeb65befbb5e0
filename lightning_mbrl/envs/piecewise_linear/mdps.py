"""The 1-D piecewise-linear MDPs of paper 000: :class:`PiecewiseLinearMDP` and its generators,
Definition 4.1 and section 5.1's RAND and SEMI-RAND, and :func:`make_mdp` by method name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_mbrl.envs.piecewise_linear.algebra import VALUE_TOL, PiecewiseLinear


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
