"""Does ``torch.compile`` make the SAC update faster on this CPU? Eager against two compiled forms.

    python -m benchmarks.sac_update_compile            # writes benchmarks/results/sac_update_compile.json

Issue 20 asks for the non-GEMM work around a SAC update (elementwise ops, autocast's casts, Python and
autograd bookkeeping) to be removed where it can be; fusing it with ``torch.compile`` (Inductor) was the
named next step. This measures it on the library's own networks and losses (``TanhGaussianActor``,
``EnsembleQ``, ``objectives.sac``; fused Adam, ``polyak_update``), without Lightning, at hidden 256 and
512 (batch 256, HalfCheetah sizes), in fp32 and under bf16 autocast, in three forms:

- ``eager``: the update as the library runs it;
- ``compiled_losses``: the critic loss (TD target included) and the actor loss each ``torch.compile``-d
  (forward and, through AOTAutograd, backward); backward calls, Adam and Polyak stay eager;
- ``compiled_update``: the whole update ``torch.compile``-d with compiled autograd (the backward passes
  traced too; the optimizer steps are graph breaks or compiled as Dynamo chooses).

The action noise is drawn eagerly and passed in (``actor.squash``), so all forms draw the same random
numbers. ``compile_s`` is the first three updates' wall time (compilation). Each compiled form runs in its
own process (compiled state and the compiled-autograd switch do not leak) beside a fresh eager copy of the
same networks, in alternating blocks of 100 updates; times are the medians of 7 blocks, and
``speedup_over_eager`` compares the two taken side by side.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time

import torch
import torch._dynamo

from benchmarks.common import write

OBS, ACT, BATCH = 17, 6, 256
FORMS = ("eager", "compiled_losses", "compiled_update")
PRECISIONS = ("fp32", "bf16")


def make_update(hidden: int, form: str):
    """A fresh SAC (seed 0) and its update step in ``form``."""
    from lightning_mbrl.models.actor import TanhGaussianActor
    from lightning_mbrl.models.critic import EnsembleQ
    from lightning_mbrl.models.utils import adam, frozen, polyak_update
    from lightning_mbrl.objectives import sac as sac_losses

    torch.manual_seed(0)
    actor = TanhGaussianActor(OBS, ACT, (hidden, hidden))
    critic = EnsembleQ(OBS, ACT, (hidden, hidden), 2)
    target = copy.deepcopy(critic).requires_grad_(False)
    log_alpha = torch.nn.Parameter(torch.zeros(()))
    opt_critic, opt_actor, opt_alpha = adam(critic.parameters(), 3e-4), adam(actor.parameters(), 3e-4), adam([log_alpha], 3e-4)
    s, a, s2 = torch.randn(BATCH, OBS), torch.rand(BATCH, ACT) * 2 - 1, torch.randn(BATCH, OBS)
    r, done = torch.randn(BATCH), (torch.rand(BATCH) < 0.01).float()

    def critic_loss(noise: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        y = sac_losses.soft_td_target(r, done, s2, actor, target, alpha, 0.99, noise=noise)
        return sac_losses.critic_loss(s, a, y, critic)["loss_critic"]

    def actor_loss(noise: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, log_prob = actor.squash(s, noise)
        with frozen(critic):
            q = critic(s, action).min(dim=0).values
        return (alpha * log_prob - q).mean(), log_prob

    if form == "compiled_losses":
        critic_loss, actor_loss = torch.compile(critic_loss), torch.compile(actor_loss)

    def update() -> None:
        alpha = log_alpha.detach().exp()
        loss = critic_loss(torch.randn(BATCH, ACT), alpha)
        opt_critic.zero_grad(set_to_none=True)
        loss.backward()
        opt_critic.step()
        loss_pi, log_prob = actor_loss(torch.randn(BATCH, ACT), alpha)
        loss_alpha = -(log_alpha * (log_prob.detach() - ACT)).mean()
        opt_actor.zero_grad(set_to_none=True)
        opt_alpha.zero_grad(set_to_none=True)
        (loss_pi + loss_alpha).backward()
        opt_actor.step()
        opt_alpha.step()
        polyak_update(target, critic, 5e-3)

    return torch.compile(update) if form == "compiled_update" else update


def measure(hidden: int, form: str, precision: str, blocks: int = 7, number: int = 100) -> dict:
    """ms per update of eager and of ``form``, in alternating blocks of ``number`` updates in this process (this
    VM's throughput drifts by tens of percent over minutes: only times taken side by side compare)."""
    from lightning_mbrl.precision import flush_denormals

    flush_denormals()
    if form == "compiled_update":
        torch._dynamo.config.compiled_autograd = True  # the backward passes traced too (inside compiled code only)
    updates = {"eager": make_update(hidden, "eager"), form: make_update(hidden, form)}

    def context():
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
        return torch.autocast("cpu", enabled=False)

    compile_s = {}
    for name, update in updates.items():
        start = time.perf_counter()
        with context():
            for _ in range(3):
                update()
        compile_s[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in updates}
    for _ in range(blocks):
        for name, update in updates.items():
            with context():
                start = time.perf_counter()
                for _ in range(number):
                    update()
            times[name].append((time.perf_counter() - start) / number * 1e3)
    return {
        "eager_ms": statistics.median(times["eager"]), "ms": statistics.median(times[form]),
        "eager_blocks_ms": times["eager"], "blocks_ms": times[form], "compile_s": compile_s[form],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--one", nargs=3, metavar=("HIDDEN", "FORM", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one measurement, as JSON on stdout
        hidden, form, precision = int(args.one[0]), args.one[1], args.one[2]
        print(json.dumps(measure(hidden, form, precision, blocks=args.blocks)))
        return
    rows = []
    for hidden in args.hidden:
        for precision in PRECISIONS:
            for form in FORMS[1:]:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.sac_update_compile", "--one", str(hidden), form, precision,
                     "--blocks", str(args.blocks)],
                    capture_output=True, text=True, check=True,
                )
                row = {"hidden": hidden, "precision": precision, "form": form, **json.loads(out.stdout.splitlines()[-1])}
                row["speedup_over_eager"] = row["eager_ms"] / row["ms"]
                rows.append(row)
                print(f"hidden {hidden:4d} {precision} {form:16s} {row['ms']:7.2f} ms/update, eager beside it "
                      f"{row['eager_ms']:7.2f} ms ({row['speedup_over_eager']:.2f}x; first 3 updates "
                      f"{row['compile_s']:.1f} s)", flush=True)
    path = write("sac_update_compile", {"batch": BATCH, "threads": torch.get_num_threads(), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
