"""Speed of one MAAC update next to one SAC update of the same networks and to its FLOP bound.

    python -m benchmarks.maac_update            # CPU; writes benchmarks/results/maac_update.json
    python -m benchmarks.maac_update --quick    # 1 round: a sanity check (writes nothing)

HalfCheetah sizes (obs 17, action 6), batch 256, 2 x 256 actor and twin critics; MAAC with the paper's
H = 4 actor horizon, K = 5 value actions, STEVE horizon 2 on half of 8 members of a 4 x 200 ensemble
(``algos.maac.MAAC.update``: critic step on the STEVE target, actor step on the pathwise objective,
alpha step), timed from inside a running fit in rounds interleaved with ``SAC.update`` and a large GEMM
(this VM's throughput drifts). The FLOP bound is the update's GEMM FLOPs (``maac_flops``) over the
measured GEMM peak.
"""

from __future__ import annotations

import argparse
import statistics

import pytorch_lightning as pl
import torch

from benchmarks.common import gemm_peak_flops, timeit, write
from benchmarks.sac_update import ACT, OBS, fake_batch, mlp_flops, update_flops
from lightning_mbrl.algos.maac import MAAC
from lightning_mbrl.algos.sac import SAC

ENV = "HalfCheetah-v5"
KWARGS = {"exclude_current_positions_from_observation": False}  # the known reward needs x


def maac_flops(hidden: int, batch: int, horizon: int = 4, k: int = 5, steve: int = 2, members: int = 8,
               model_hidden: tuple[int, ...] = (200, 200, 200, 200), obs: int = OBS + 1, act: int = ACT) -> int:
    """GEMM FLOPs of one MAAC update (elementwise work not counted). A trainable layer's backward is
    2x its forward (dW and dX), a frozen one's 1x (dX only); no dX at a network's input unless a
    gradient must reach it."""
    fa = mlp_flops([obs, hidden, hidden, 2 * act])
    fq = 2 * mlp_flops([obs + act, hidden, hidden, 1])
    out = 1 + obs
    fm = mlp_flops([obs + act, *model_hidden, 2 * out])  # one member, mean and log-variance heads
    b, e = batch, members
    # STEVE target (no graph): h = 0 soft value at s'; step h moves the members used at h or later
    # (expected count e (1 - (1 - u)^(H - h + 1)) for a random u = half used per horizon), branching
    # from s' at h = 1; soft values only at the used members
    used = max(1, round(0.5 * e))
    target = b * (fa + fq)
    for h in range(1, steve + 1):
        moved = e * (1 - (1 - used / e) ** (steve - h + 1))
        rows = b if h == 1 else moved * b
        target += rows * fa + moved * b * fm + used * b * (fa + fq)  # actions, model step, soft values
    target = int(target)
    critic = b * fq + b * (2 * fq - 2 * 2 * (obs + act) * hidden)
    # actor: H steps (policy, one member per row), K value actions at s_H, backward through all of it
    forward = horizon * b * (fa + fm) + k * b * (fa + fq) + (b * fa if horizon == 0 else 0)
    backward = horizon * b * (2 * fa + fm) + k * b * (2 * fa + fq)
    return target + critic + forward + backward


class _Interleaved(pl.Callback):
    def __init__(self, sac: SAC, batch, number: int, rounds: int) -> None:
        self.sac, self.batch, self.number, self.rounds, self.result = sac, batch, number, rounds, {}

    def on_train_start(self, trainer, module) -> None:
        maac, sac, peak = [], [], []
        module.world_model.to(self.batch.device)
        for _ in range(self.rounds):
            maac.append(timeit(lambda: module.update(self.batch), warmup=3, repeats=1, number=self.number))
            sac.append(timeit(lambda: self.sac.update(self.batch), warmup=3, repeats=1, number=self.number))
            peak.append(gemm_peak_flops())
        self.result = {"maac_s": statistics.median(maac), "sac_s": statistics.median(sac),
                       "peak": statistics.median(peak)}
        trainer.should_stop = True


def fit_sac_optimizers(sac: SAC) -> None:
    """A SAC module with its optimizers, outside a fit (the update needs them)."""
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(sac)
    sac.trainer = trainer
    trainer.strategy.setup_optimizers(trainer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=10, help="updates per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, number = (1, 2) if args.quick else (args.rounds, args.number)
    batch = 256
    module = MAAC(ENV, env_kwargs=KWARGS, max_frames=10, init_random_frames=0, batch_size=batch)
    sac = SAC(ENV, env_kwargs=KWARGS, max_frames=10, init_random_frames=0, batch_size=batch)
    fit_sac_optimizers(sac)
    data = fake_batch(batch)
    data.set("observation", torch.randn(batch, OBS + 1))
    data.set(("next", "observation"), torch.randn(batch, OBS + 1))
    timer = _Interleaved(sac, data, number, rounds)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[timer], accelerator="cpu").fit(module)
    r = timer.result
    flops = maac_flops(256, batch)
    row = {
        "batch": batch, "hidden": 256, "actor_horizon": 4, "n_value_actions": 5, "steve_horizon": 2, "members": 8,
        "maac_ms": 1e3 * r["maac_s"], "sac_ms": 1e3 * r["sac_s"], "maac_over_sac": r["maac_s"] / r["sac_s"],
        "maac_gflop": flops / 1e9, "sac_gflop": update_flops(256, batch) / 1e9,
        "gemm_peak_gflops": r["peak"] / 1e9, "flop_bound_ms": 1e3 * flops / r["peak"],
        "maac_over_flop_bound": r["maac_s"] * r["peak"] / flops,
    }
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
    if not args.quick:
        write("maac_update", {"update": row})


if __name__ == "__main__":
    main()
