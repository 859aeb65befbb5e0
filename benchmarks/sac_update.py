"""Speed of one SAC update through the library vs. a hand-written plain-PyTorch update.

    python -m benchmarks.sac_update            # CPU; writes benchmarks/results/sac_update.json

For hidden 256 and 512 (batch 256, HalfCheetah-v5 sizes: obs 17, action 6) it reports ms per
update of (a) the library: ``SAC.update`` inside a real ``Trainer.fit`` (Lightning manual
optimization, LightningOptimizer wrappers, TensorDict batch), (b) a plain PyTorch update of the
same networks written the usual way (two separate Q MLPs, three Adam optimizers), each in fp32
(``32-true``) and under ``bf16-mixed`` (Lightning's autocast; plain autocast for (b)), next to the
update's FLOP count and the machine's fp32 and bf16 GEMM peaks, all measured in the same
interleaved rounds. ``bf16_speedup`` is fp32 time / bf16 time of (a) (targets: 2x at hidden 512,
1.4x at 256). Also: replay sampling time and env frames per second of collection with the actor.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import nn

from benchmarks.common import gemm_peak_flops, timeit, write
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.allocator import keep_freed_memory
from lightning_mbrl.precision import flush_denormals

ENV, OBS, ACT = "HalfCheetah-v5", 17, 6


def mlp_flops(sizes: list[int]) -> int:
    """Forward multiply-adds x 2 of an MLP with layer sizes ``sizes``, per sample."""
    return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def update_flops(hidden: int, batch: int, n_critics: int = 2) -> int:
    """GEMM FLOPs of one SAC update (elementwise work not counted).

    Forward: actor(s'), target critics(s', a'), critics(s, a), actor(s), critics(s, pi(s)).
    Backward: critic loss -> dW and dX of each critic layer except dX of the input layer;
    actor loss -> dX only through the frozen critics (no dW), dW and dX through the actor
    except its input layer's dX.
    """
    actor = [OBS, hidden, hidden, 2 * ACT]
    critic = [OBS + ACT, hidden, hidden, 1]
    fa, fq = mlp_flops(actor), n_critics * mlp_flops(critic)
    fq_dx_in = n_critics * 2 * (OBS + ACT) * hidden
    fa_dx_in = 2 * OBS * hidden
    forward = fa + fq + fq + fa + fq
    critic_loss_backward = 2 * fq - fq_dx_in  # dW and dX, no dX at the critics' input
    actor_loss_backward = fq + (2 * fa - fa_dx_in)  # dX through frozen critics (the action needs it), then the actor
    backward = critic_loss_backward + actor_loss_backward
    return batch * (forward + backward)


def fake_batch(batch: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(batch, OBS),
            "action": torch.rand(batch, ACT) * 2 - 1,
            "next": {
                "observation": torch.randn(batch, OBS),
                "reward": torch.randn(batch, 1),
                "terminated": torch.rand(batch, 1) < 0.01,
            },
        },
        batch_size=[batch],
    )


# --------------------------------------------------------------------------------- plain PyTorch
class PlainSAC:
    """The update as commonly hand-written (CleanRL style): separate Q networks, three Adams."""

    def __init__(self, hidden: int) -> None:
        def net(i, o):
            return nn.Sequential(nn.Linear(i, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, o))

        self.actor = net(OBS, 2 * ACT)
        self.q1, self.q2 = net(OBS + ACT, 1), net(OBS + ACT, 1)
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=3e-4)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=3e-4)

    def pi(self, s):
        mu, log_std = self.actor(s).chunk(2, -1)
        log_std = log_std.clamp(-20, 2)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        logp = torch.distributions.Normal(mu, std).log_prob(u) - 2 * (0.6931471805599453 - u - F.softplus(-2 * u))
        return a, logp.sum(-1)

    def update(self, b: TensorDict) -> None:
        s, a, r = b["observation"], b["action"], b["next", "reward"].squeeze(-1)
        s2, d = b["next", "observation"], b["next", "terminated"].squeeze(-1).float()
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.pi(s2)
            sa2 = torch.cat([s2, a2], -1)
            q_t = torch.min(self.q1_t(sa2), self.q2_t(sa2)).squeeze(-1) - alpha * logp2
            y = r + 0.99 * (1 - d) * q_t
        sa = torch.cat([s, a], -1)
        q_loss = 0.5 * (F.mse_loss(self.q1(sa).squeeze(-1), y) + F.mse_loss(self.q2(sa).squeeze(-1), y))
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        a_pi, logp = self.pi(s)
        sa_pi = torch.cat([s, a_pi], -1)
        q_pi = torch.min(self.q1(sa_pi), self.q2(sa_pi)).squeeze(-1)
        pi_loss = (alpha * logp - q_pi).mean()
        self.pi_opt.zero_grad()
        pi_loss.backward()
        self.pi_opt.step()
        a_loss = -(self.log_alpha * (logp.detach() - ACT)).mean()
        self.a_opt.zero_grad()
        a_loss.backward()
        self.a_opt.step()
        with torch.no_grad():
            for p, pt in zip([*self.q1.parameters(), *self.q2.parameters()], [*self.q1_t.parameters(), *self.q2_t.parameters()]):
                pt.mul_(0.995).add_(0.005 * p)


# --------------------------------------------------------------------------------- library
PRECISIONS = ("32-true", "bf16-mixed")


class _Interleaved(pl.Callback):
    """From inside a running fit (real optimizers and strategy; the Trainer is ``bf16-mixed``), time
    ``module.update`` under each precision (``bf16-mixed``: the precision plugin's ``train_step_context``,
    the autocast Lightning puts around ``training_step``; ``32-true``: autocast off), the plain update
    (plain autocast for bf16) and large fp32 and bf16 GEMMs, in alternating rounds, so that all see the
    same machine load (this VM's throughput drifts by tens of percent over minutes)."""

    def __init__(self, plain: PlainSAC, batch: TensorDict, number: int, rounds: int) -> None:
        self.plain, self.batch, self.number, self.rounds, self.result = plain, batch, number, rounds, {}

    def on_train_start(self, trainer, module) -> None:
        n = self.number
        contexts = {
            "32-true": lambda: torch.autocast("cpu", enabled=False),
            "bf16-mixed": trainer.precision_plugin.train_step_context,
        }
        plain_contexts = {
            "32-true": lambda: torch.autocast("cpu", enabled=False),
            "bf16-mixed": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        }
        times = {(who, p): [] for who in ("library", "plain") for p in PRECISIONS}
        peaks = {"fp32": [], "bf16": []}

        def under(context, fn):
            def run():
                with context():
                    fn()
            return run

        for _ in range(self.rounds):
            for p in PRECISIONS:
                times["library", p].append(
                    timeit(under(contexts[p], lambda: module.update(self.batch)), warmup=5, repeats=1, number=n))
                times["plain", p].append(
                    timeit(under(plain_contexts[p], lambda: self.plain.update(self.batch)), warmup=5, repeats=1, number=n))
            peaks["fp32"].append(gemm_peak_flops())
            peaks["bf16"].append(gemm_peak_flops(dtype=torch.bfloat16))
        breakdown = {p: profile_breakdown(under(contexts[p], lambda: module.update(self.batch)), n) for p in PRECISIONS}
        module.runtime.buffer.extend(self.batch)
        self.result = {
            "breakdown_ms": breakdown,
            "seconds": {f"{who}_{p}": statistics.median(v) for (who, p), v in times.items()},
            "bf16_speedup": statistics.median(a / b for a, b in zip(times["library", "32-true"],
                                                                    times["library", "bf16-mixed"])),
            "peak": {k: statistics.median(v) for k, v in peaks.items()},
            "sample_s": timeit(lambda: module.sample(self.batch.shape[0]), number=n),
        }
        trainer.should_stop = True


CATEGORIES = {
    "gemm": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"),
    "dtype_casts": ("aten::_to_copy", "aten::to", "aten::copy_"),
    "adam": ("aten::_fused_adam_", "aten::_fused_adamw_"),
}


def profile_breakdown(fn, number: int) -> dict[str, float]:
    """ms per call of ``fn`` by kind of work, from the profiler's self CPU times: GEMMs, dtype casts
    (autocast's weight casts and their backward), fused Adam, other ops (elementwise, reductions, the
    tanh-Gaussian, Polyak), and what no op accounts for (Python, Lightning, TensorDict, dispatch), which
    is the profiled wall time minus the ops' self times (the profiler inflates it a little)."""
    for _ in range(5):
        fn()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        wall = time.perf_counter() - t0
    out = dict.fromkeys([*CATEGORIES, "other_ops"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in CATEGORIES.items() if event.key in names), "other_ops")
        out[kind] += event.self_cpu_time_total / 1e3 / number  # us -> ms, per call
    out["outside_ops"] = wall * 1e3 / number - sum(out.values())
    out["profiled_wall"] = wall * 1e3 / number
    return out


def measure(hidden: int, batch: int, number: int, rounds: int) -> dict:
    module = SAC(ENV, hidden=(hidden, hidden), batch_size=batch, max_frames=10, init_random_frames=0)
    timer = _Interleaved(PlainSAC(hidden), fake_batch(batch), number, rounds)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer], accelerator="cpu", precision="bf16-mixed")
    trainer.fit(module)
    return timer.result


def collection_fps(frames: int = 2000) -> float:
    """Env frames per second of the library's collector with the (untrained) actor, HalfCheetah."""
    module = SAC(ENV, max_frames=frames, init_random_frames=0, buffer_size=frames)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(module)
    module.trainer = trainer
    module.on_fit_start()
    module.collect()
    t0 = time.perf_counter()
    for _ in range(frames - 1):
        next(module.runtime.batches)
    fps = (frames - 1) / (time.perf_counter() - t0)
    module.on_fit_end()
    return fps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=50, help="updates per timing round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    flush_denormals()  # as the CLI does (precision.flush_denormals)
    keep_freed_memory()
    torch.manual_seed(0)
    rows = []
    for hidden in (256, 512):
        flops = update_flops(hidden, 256)
        r = measure(hidden, 256, args.number, args.rounds)
        sec, peak = r["seconds"], r["peak"]
        row = {
            "hidden": hidden,
            "batch": 256,
            "update_gflop": flops / 1e9,
            "gemm_peak_gflops_fp32": peak["fp32"] / 1e9,
            "gemm_peak_gflops_bf16": peak["bf16"] / 1e9,
            **{f"{k}_ms": v * 1e3 for k, v in sec.items()},
            "bf16_speedup": r["bf16_speedup"],
            "bf16_speedup_target": 2.0 if hidden == 512 else 1.4,
            "library_fp32_fraction_of_fp32_peak": flops / sec["library_32-true"] / peak["fp32"],
            "library_bf16_fraction_of_bf16_peak": flops / sec["library_bf16-mixed"] / peak["bf16"],
            "flop_bound_ms_fp32": flops / peak["fp32"] * 1e3,
            "flop_bound_ms_bf16": flops / peak["bf16"] * 1e3,
            "replay_sample_ms": r["sample_s"] * 1e3,
            "breakdown_ms": r["breakdown_ms"],
        }
        rows.append(row)
        print(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    fps = collection_fps()
    print(f"collection {fps:.0f} env frames/s ({ENV}, actor 256x256)")
    path = write("sac_update", {"updates": rows, "collection_fps": fps})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
