"""Time per action of the BOOTS and MPC planners on CPU, next to their FLOP-bound time.

    python -m benchmarks.planners            # writes benchmarks/results/planners.json
    python -m benchmarks.planners --quick    # sanity check (1 round, 1 repeat; writes nothing)
    python -m benchmarks.planners --threads 1   # one intra-op thread (steadier on a shared 2-core VM)

Networks (the MBSAC sizes, REFERENCE 2.1): a deterministic SLBO-shaped dynamics model
``Linear(obs + act, U) -> ReLU -> n_blocks x (two U x U layers) -> Linear(U, obs)`` (a plain
ReLU MLP of the same GEMM shapes, predicting the state change, with a cheap known reward
``(s'_0 - s_0) / dt - 0.1 ||a||^2``), a 2x256 ``TanhGaussianActor`` and a 2x256 twin ``EnsembleQ``
(min over the two). Sizes:

- halfcheetah: obs 17, act 6, U = 200, 2 blocks (4 U x U layers);
- humanoid: obs 376, act 17, U = 500, 1 block (the BOOTS Humanoid config).

Planners (the papers' settings): BOOTS CEM-over-noise (500 candidates, k = 4, 5 iterations, 50
elites; per iteration ``E * 500`` rows through 4 model steps, 4 policy calls and the twin Q), MPC
seeded by the policy (256 candidates, tau = 5, 5 iterations, 25 elites; per iteration ``E * 256``
rows through 5 model steps and the twin Q, plus the prior rollout on ``E`` rows), each for E = 1
and 10 episodes stepped together. Each time (median over interleaved rounds, as this 2-core VM is
noisy) is reported next to its FLOP bound: the planner's GEMM FLOPs / the GEMM peak measured in the
same rounds. The target is within 2x of the bound.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from benchmarks.common import gemm_peak_flops, write
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.planners import BootsPlanner, MPCPlanner

SIZES = {"halfcheetah": (17, 6, 200, 2), "humanoid": (376, 17, 500, 1)}  # obs, act, U, n_blocks
HIDDEN = 256
BOOTS = {"horizon": 4, "n_candidates": 500, "n_iters": 5, "n_elites": 50}
MPC = {"horizon": 5, "n_candidates": 256, "n_iters": 5, "n_elites": 25}


def mlp_flops(sizes: list[int]) -> int:
    """Forward GEMM FLOPs (2 x multiply-adds) of one MLP with layer sizes ``sizes``, per sample."""
    return 2 * sum(a * b for a, b in itertools.pairwise(sizes))


class SLBOShapedDynamics(nn.Module):
    """Deterministic ``s' = s + net(s, a)`` with SLBO's layer shapes and a known reward."""

    def __init__(self, obs_dim: int, act_dim: int, units: int, n_blocks: int, dt: float = 0.05) -> None:
        super().__init__()
        self.sizes = [obs_dim + act_dim, *([units] * (2 * n_blocks + 1)), obs_dim]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(self.sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])
        self.dt = dt

    def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        next_obs = obs + self.net(torch.cat([obs, action], dim=-1))
        reward = (next_obs[:, 0] - obs[:, 0]) / self.dt - 0.1 * action.square().sum(-1)
        return next_obs, reward, torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)


def networks(size: str) -> tuple[SLBOShapedDynamics, TanhGaussianActor, EnsembleQ, dict[str, int]]:
    obs, act, units, blocks = SIZES[size]
    model = SLBOShapedDynamics(obs, act, units, blocks)
    actor = TanhGaussianActor(obs, act, hidden=(HIDDEN, HIDDEN))
    critic = EnsembleQ(obs, act, hidden=(HIDDEN, HIDDEN))
    flops = {
        "model": mlp_flops(model.sizes),
        "policy": mlp_flops([obs, HIDDEN, HIDDEN, 2 * act]),
        "twin_q": 2 * mlp_flops([obs + act, HIDDEN, HIDDEN, 1]),
    }
    return model, actor, critic, flops


def boots_flops(f: dict[str, int], episodes: int) -> int:
    """One BOOTS action: the policy at s_0 (E rows), then per iteration and candidate k model
    steps, k policy calls (s_1..s_k) and the twin Q."""
    k, c, it = BOOTS["horizon"], BOOTS["n_candidates"], BOOTS["n_iters"]
    return episodes * (f["policy"] + it * c * (k * (f["model"] + f["policy"]) + f["twin_q"]))


def mpc_flops(f: dict[str, int], episodes: int) -> int:
    """One MPC action: the prior rollout (tau + 1 policy calls, tau model steps on E rows), then
    per iteration and candidate tau model steps and the twin Q."""
    tau, c, it = MPC["horizon"], MPC["n_candidates"], MPC["n_iters"]
    prior = (tau + 1) * f["policy"] + tau * f["model"]
    return episodes * (prior + it * c * (tau * f["model"] + f["twin_q"]))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="actions timed per case and round")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 repeat: a sanity check")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeats = 1, 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cases: dict[str, tuple[Callable[[], Tensor], int]] = {}  # name -> (one action, FLOPs)
    for size in SIZES:
        model, actor, critic, f = networks(size)
        obs_dim, act_dim = SIZES[size][:2]

        def q_fn(s: Tensor, a: Tensor, critic: EnsembleQ = critic) -> Tensor:
            return critic(s, a).min(dim=0).values

        for episodes in (1, 10):
            obs = torch.randn(episodes, obs_dim)
            boots = BootsPlanner(model, q_fn, actor, action_dim=act_dim, generator=torch.Generator(), **BOOTS)
            mpc = MPCPlanner(model, q_fn, actor, generator=torch.Generator(), **MPC)
            cases[f"boots/{size}/E{episodes}"] = (lambda p=boots, o=obs: p.act(o), boots_flops(f, episodes))
            cases[f"mpc/{size}/E{episodes}"] = (lambda p=mpc, o=obs: p.act(o), mpc_flops(f, episodes))

    for act, _ in cases.values():  # warm-up
        act()
    times: dict[str, list[float]] = {name: [] for name in cases}
    peaks = []
    for _ in range(args.rounds):
        for name, (act, _) in cases.items():
            times[name].extend(timed(act) for _ in range(args.repeats))
        peaks.append(gemm_peak_flops())
    peak = statistics.median(peaks)

    rows = {}
    print(f"GEMM peak {peak / 1e9:.0f} GFLOP/s (median of {args.rounds} rounds, threads={torch.get_num_threads()})")
    for name, (_, flops) in cases.items():
        seconds = statistics.median(times[name])
        bound = flops / peak
        rows[name] = {
            "ms_per_action": seconds * 1e3,
            "ms_min": min(times[name]) * 1e3,
            "ms_all": [t * 1e3 for t in times[name]],
            "gflop": flops / 1e9,
            "flop_bound_ms": bound * 1e3,
            "over_bound": seconds / bound,
            "within_2x_of_bound": seconds <= 2 * bound,
        }
        print(
            f"{name:24s} {seconds * 1e3:8.1f} ms/action (min {min(times[name]) * 1e3:.1f}); FLOP-bound "
            f"{bound * 1e3:7.1f} ms ({flops / 1e9:.2f} GFLOP): {seconds / bound:.2f}x the bound"
        )
    result = {
        "settings": {"boots": BOOTS, "mpc": MPC, "sizes": SIZES, "policy_q_hidden": [HIDDEN, HIDDEN]},
        "model": "SLBO-shaped deterministic ReLU MLP stand-in (benchmarks.planners.SLBOShapedDynamics)",
        "quick": args.quick,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "gemm_peak_gflops": peak / 1e9,
        "cases": rows,
    }
    if args.quick:
        print("--quick: nothing written")
    else:
        print(f"wrote {write('planners', result)}")


if __name__ == "__main__":
    main()
