"""Callbacks that tests pass to recipe runs in subprocesses (``--trainer.callbacks+=tests.helpers.X``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lightning_mbrl import keys


class KillAt(pl.Callback):
    """SIGKILL this process at the start of the first iteration that begins at ``frames`` or later:
    no handler runs, no checkpoint is written, like a preempted job."""

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if pl_module.frames >= self.frames:
            os.kill(os.getpid(), signal.SIGKILL)


class DumpRank(pl.Callback):
    """At the end of a fit, each rank saves its module state, the observations of its real replay, its
    counters, ranks and its loggers' run folders to ``<directory>/rank<r>.pt``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        buffer = pl_module.runtime.buffer
        state = {
            "state_dict": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            "observations": buffer[: len(buffer)][keys.OBSERVATION].cpu().clone(),
            "frames": pl_module.frames,
            "updates": pl_module.updates,
            "world_size": trainer.world_size,
            "global_rank": trainer.global_rank,
            "node_rank": trainer.node_rank,
            # the run folder this process's loggers chose by themselves (no broadcast): every rank must agree
            "logger_dirs": [str(lg.log_dir) for lg in trainer.loggers],
        }
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        torch.save(state, Path(self.directory) / f"rank{trainer.global_rank}.pt")


# ------------------------------------------------------------------------------------------------- routing
AGENT_PREFIXES = ("actor.", "critic.", "critic_target.", "log_alpha", "q_net.", "target_net.")
MODEL_PREFIX = "world_model."


def tensors(module: pl.LightningModule) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the module, cloned."""
    named = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return {name: t.detach().clone() for name, t in named.items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return sorted(name for name in before if not torch.equal(before[name], after[name]))


def adam_steps(trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, int]:
    """Adam's step count of each named optimizer (0 before its first step)."""
    steps = {}
    for name, opt in zip(module.optimizer_names, trainer.optimizers):
        counts = {int(s["step"]) for s in opt.state.values()}
        assert len(counts) <= 1, f"{name}: parameters at different step counts {counts}"
        steps[name] = counts.pop() if counts else 0
    return steps


class RoutingProbe(pl.Callback):
    """After the first iteration with updates, make one extra agent update and (for model-based
    algorithms) one extra model step, recording which tensors each changed and how far each named
    optimizer stepped; at the end, every optimizer's step count and the loop counters. Saved to
    ``<directory>/routing<rank>.pt``; :func:`check_routing` says whether it is right."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.record: dict[str, Any] = {}

    def _measure(self, trainer, module, step) -> dict[str, Any]:
        before, steps_before = tensors(module), adam_steps(trainer, module)
        step()
        steps_after = adam_steps(trainer, module)
        return {"changed": changed(before, tensors(module)),
                "steps": {n: steps_after[n] - steps_before[n] for n in steps_after}}

    def on_train_batch_end(self, trainer, module, *args: Any) -> None:
        if "agent_update" in self.record or module.warming_up:
            return
        if hasattr(module, "mixed_batch"):  # MBPO
            batch = module.mixed_batch
        elif hasattr(module, "imagined_batch"):  # MBSAC
            batch = module.imagined_batch
        else:
            batch = lambda: module.sample(module.hparams.batch_size)  # noqa: E731
        losses = {}
        self.record["agent_update"] = self._measure(trainer, module, lambda: losses.update(module.update(batch())))
        self.record["agent_update"]["losses"] = sorted(k for k in losses if k.startswith("loss_"))
        if hasattr(module, "model_step"):
            self.record["model_step"] = self._measure(trainer, module, module.model_step)
        elif hasattr(module, "fit_world_model"):
            self.record["model_step"] = self._measure(trainer, module, module.fit_world_model)
        # gradients computed outside backward (as OMD's implicit gradient): each rank writes rank + 1
        # into the first agent optimizer's gradients; step_optimizers averages and steps only it
        name = module.optimizer_names[0]
        params = [p for group in trainer.optimizers[0].param_groups for p in group["params"]]

        def manual_step() -> None:
            for p in params:
                p.grad = torch.full_like(p, float(trainer.global_rank + 1))
            module.step_optimizers(module.optimizer(name))

        self.record["manual_step"] = self._measure(trainer, module, manual_step)
        self.record["manual_step"]["optimizer"] = name
        self.record["manual_step"]["grads"] = sorted({float(v) for p in params for v in p.grad.unique()})
        self.record["world_size"] = trainer.world_size

    def on_train_end(self, trainer, module) -> None:
        self.record["final_steps"] = adam_steps(trainer, module)
        self.record["counters"] = {"updates": module.updates, "model_steps": getattr(module, "model_steps", None)}
        self.record["names"] = sorted(tensors(module))
        self.record["learn_alpha"] = getattr(module, "learn_alpha", False)
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        torch.save(self.record, Path(self.directory) / f"routing{trainer.global_rank}.pt")


def check_routing(record: dict[str, Any]) -> None:
    """The reference every algorithm must meet, whatever the number of processes: an agent update
    changes agent tensors only (each agent network), steps exactly the agent's optimizers once
    each and leaves the world model (parameters, normalisers, elites) bit-identical; a model step
    changes world-model tensors only and steps only the model optimizer; at the end each
    optimizer's Adam step count equals the loop's own counter."""
    names, learn_alpha = record["names"], record["learn_alpha"]
    agent = [n for n in names if n.startswith(AGENT_PREFIXES)]
    model = [n for n in names if n.startswith(MODEL_PREFIX)]
    assert sorted(agent + model) == names, "a tensor is neither agent nor world model"

    update = record["agent_update"]
    assert set(update["changed"]) <= set(agent), set(update["changed"]) - set(agent)
    # DQN copies its target every target_update_every updates, so only the online net is certain to move
    trained = ("q_net.",) if "q" in update["steps"] else ("actor.", "critic.", "critic_target.")
    for prefix in trained + (("log_alpha",) if learn_alpha else ()):
        assert any(n.startswith(prefix) for n in update["changed"]), f"the update left {prefix} unchanged"
    if not learn_alpha:
        assert "log_alpha" not in update["changed"]
    assert ("loss_alpha" in update["losses"]) == learn_alpha, update["losses"]  # a fixed alpha has no loss
    agent_optimizers = {"q"} if "q" in update["steps"] else {"critic", "actor"} | ({"alpha"} if learn_alpha else set())
    assert update["steps"] == {n: (1 if n in agent_optimizers else 0) for n in update["steps"]}, update["steps"]

    manual = record["manual_step"]  # the gradients every rank wrote, averaged: (1 + ... + W) / W
    assert manual["grads"] == [(record["world_size"] + 1) / 2], manual["grads"]
    assert manual["steps"] == {n: int(n == manual["optimizer"]) for n in manual["steps"]}, manual["steps"]
    assert manual["changed"] and set(manual["changed"]) <= set(agent)

    final, counters = record["final_steps"], record["counters"]
    for name in agent_optimizers:
        extra = int(name == manual["optimizer"])  # the manual step
        assert final[name] == counters["updates"] + extra, (name, final[name], counters)
    if "model" in final:
        step = record["model_step"]
        assert step["changed"] and set(step["changed"]) <= set(model), set(step["changed"]) - set(model)
        assert step["steps"]["model"] > 0
        assert all(v == 0 for n, v in step["steps"].items() if n != "model"), step["steps"]
        assert final["model"] == counters["model_steps"], (final["model"], counters)
    else:
        assert "model_step" not in record


class InjectAt(pl.Callback):
    """At the start of the first iteration at ``frames`` or later, corrupt training: ``nan`` puts a NaN
    into the first critic weight (or the first parameter of ``module``); ``explode`` multiplies every
    parameter of ``module`` by ``factor`` (its loss explodes, finite). ``at_end``: at the end of that
    iteration instead, after its updates (so only the parameters show it, not yet a loss)."""

    def __init__(self, frames: int, what: str = "nan", module: str = "critic", factor: float = 1e3,
                 at_end: bool = False) -> None:
        self.frames, self.what, self.module, self.factor, self.at_end = frames, what, module, factor, at_end
        self.done = False

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if not self.at_end:
            self.inject(pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.at_end:
            self.inject(pl_module)

    @torch.no_grad()
    def inject(self, pl_module: pl.LightningModule) -> None:
        if self.done or pl_module.frames < self.frames:
            return
        self.done = True
        params = list(getattr(pl_module, self.module).parameters())
        if self.what == "nan":
            params[0].view(-1)[0] = float("nan")
        else:
            for p in params:
                p.mul_(self.factor)
