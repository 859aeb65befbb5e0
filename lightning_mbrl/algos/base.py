"""The off-policy loop shared by every algorithm (DESIGN.md section 3).

One Lightning ``training_step`` is one iteration: collect ``frames_per_iteration`` real frames
with the current policy into the real replay buffer, then (in the subclass) fit models, imagine,
and update. Budgets count real env frames, never optimizer steps:

- frames ``[0, init_random_frames)`` are collected with uniform random actions and are followed by
  no update (warm-up);
- every later iteration is followed by ``updates_per_frame * frames_per_iteration`` updates, so a
  run makes exactly ``updates_per_frame * (max_frames - init_random_frames)`` updates;
- training stops once ``max_frames`` frames are collected.

Runtime objects (env, collector, replay buffer) live in ``self.runtime``, a plain object outside
the module tree, built per rank in ``on_fit_start`` and seeded ``seed + rank * RANK_SEED_STRIDE``.

Data parallelism (``--trainer.strategy ddp``): every rank collects its own frames into its own
buffer; :meth:`OffPolicyAlgorithm.apply_gradients` averages each backward's gradients across ranks
(one flat all-reduce) instead of Lightning's DDP reducer, which cannot serve several optimizers
over disjoint parameters. All budgets count frames *per rank*.

A checkpoint holds, besides parameters and optimizer states, each rank's runtime (replay buffer,
env mid-episode, collector carrier, RNG states; :meth:`rank_state`), so a resumed run continues
exactly where the interrupted one was.
"""

from __future__ import annotations

import abc
import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from pytorch_lightning.utilities import rank_zero_warn
from tensordict import TensorDictBase
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer
from torchrl.envs import EnvBase

from lightning_mbrl import keys
from lightning_mbrl.data.collection import ActorPolicy, ReplayView, make_replay_buffer
from lightning_mbrl.data.snapshot import (
    collector_state,
    load_collector_state,
    load_replay_state,
    load_rng_state,
    replay_state,
    rng_state,
)
from lightning_mbrl.distributed import SYNC
from lightning_mbrl.envs import EnvSpec, env_spec, make_env
from lightning_mbrl.envs.state import env_state, load_env_state
from lightning_mbrl.errors import ConfigError, check_arguments
from lightning_mbrl.precision import check_precision, parameters_changed

RANK_SEED_STRIDE = 1000


@dataclass
class Runtime:
    """Per-rank, per-fit objects that must never enter the module tree or the checkpoint."""

    env: EnvBase
    buffer: ReplayBuffer
    collector: Collector
    batches: Iterator[TensorDictBase]
    started_at: float = field(default_factory=time.perf_counter)
    frames_at_start: int = 0


class _Iterations:
    """The train 'dataloader': one item per remaining iteration (its length drives the progress bar)."""

    def __init__(self, module: "OffPolicyAlgorithm") -> None:
        self.module = module

    def __len__(self) -> int:
        return self.module.remaining_iterations

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.module.iterations, self.module.iterations + len(self)))


class OffPolicyAlgorithm(pl.LightningModule, abc.ABC):
    """Base class: budgets, per-rank seeding, real collection and the real replay buffer.

    Subclasses implement ``act`` (the policy), ``make_optimizers`` (by name) and ``training_step``,
    which starts with ``self.collect()``.
    """

    #: Whether this algorithm's recipes default to ``--trainer.precision bf16-mixed`` on hardware with native
    #: bf16 GEMMs (``precision.default_precision``; ``32-true`` otherwise): set only where the learning tests
    #: passed in bf16-mixed (docs/precision.md). Any algorithm runs in bf16-mixed when asked.
    bf16_by_default: bool = False

    def __init__(
        self,
        env: str,
        *,
        env_kwargs: dict[str, Any] | None,
        max_episode_steps: PositiveInt | None,
        seed: int,
        max_frames: PositiveInt,
        init_random_frames: NonNegativeInt,
        frames_per_iteration: PositiveInt,
        updates_per_frame: PositiveInt,
        batch_size: PositiveInt,
        buffer_size: PositiveInt,
        continuous_only: bool,
    ) -> None:
        check_arguments(OffPolicyAlgorithm, locals())  # each value against its annotation (errors.py)
        super().__init__()
        self.automatic_optimization = False
        for name, value in (("max_frames", max_frames), ("init_random_frames", init_random_frames)):
            if value % frames_per_iteration:
                raise ConfigError(f"{name} ({value}) must be a multiple of frames_per_iteration ({frames_per_iteration})")
        if init_random_frames >= max_frames:
            raise ConfigError(f"init_random_frames ({init_random_frames}) must be < max_frames ({max_frames})")
        self.env_kwargs = dict(env_kwargs or {})
        self.spec: EnvSpec = env_spec(env, **self.env_kwargs)
        if max_episode_steps is not None:
            self.spec = replace(self.spec, max_episode_steps=max_episode_steps)
        if continuous_only and self.spec.discrete:
            raise ConfigError(
                f"env {env!r} has {self.spec.num_actions} discrete actions, but {type(self).__name__} "
                "needs a continuous (Box) action space"
            )
        # Counters, all in real env frames of this rank; saved in the checkpoint.
        self.frames = 0
        self.episodes = 0
        self.updates = 0
        self.iterations = 0
        self.last_episode_return = float("nan")
        self.runtime: Runtime | None = None
        self.rows_to_check: dict[str, float] = {}  # metrics logged since a watcher last looked
        self._rank_state_to_restore: dict | None = None  # set by on_load_checkpoint, used by on_fit_start

    # ----------------------------------------------------------------------------- the policy
    @abc.abstractmethod
    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """The policy (protocols.Policy): ``[*B, obs_dim] -> [*B, A]``, sampled or deterministic."""

    def make_env(self, num_envs: int = 1, seed: int | None = None, **overrides: Any) -> EnvBase:
        max_steps = overrides.pop("max_episode_steps", self.hparams.max_episode_steps)
        return make_env(
            self.hparams.env, num_envs=num_envs, seed=seed, max_episode_steps=max_steps,
            **{**self.env_kwargs, **overrides},
        )

    # ----------------------------------------------------------------------------- schedule
    @property
    def remaining_iterations(self) -> int:
        return max(0, self.hparams.max_frames - self.frames) // self.hparams.frames_per_iteration

    @property
    def warming_up(self) -> bool:
        """True while the frames just collected were random warm-up frames (no updates follow)."""
        return self.frames <= self.hparams.init_random_frames

    @property
    def updates_per_iteration(self) -> int:
        return self.hparams.updates_per_frame * self.hparams.frames_per_iteration

    @property
    def rank_seed(self) -> int:
        return self.hparams.seed + self.global_rank * RANK_SEED_STRIDE

    # ----------------------------------------------------------------------------- the run, read-only
    # (protocols.RunView: what callbacks read; frames, rank_seed, spec, env_kwargs, make_env and
    # log_to_loggers are defined with the loop)
    @property
    def env_id(self) -> str:
        return self.hparams.env

    @property
    def max_frames(self) -> int:
        return self.hparams.max_frames

    @property
    def real_replay(self) -> ReplayView:
        """The real replay buffer, read-only (its data exists from ``on_fit_start`` to the end of fit)."""
        return ReplayView(self._real_buffer)

    def _real_buffer(self) -> ReplayBuffer:
        if self.runtime is None:
            raise RuntimeError("the real replay exists only while fitting")
        return self.runtime.buffer

    # ----------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str) -> None:
        check_precision(self.trainer.precision)

    def on_fit_start(self) -> None:
        pl.seed_everything(self.rank_seed, verbose=False)
        env = self.make_env(seed=self.rank_seed)
        buffer = make_replay_buffer(self.hparams.buffer_size, device=self.device)
        random_left = max(0, self.hparams.init_random_frames - self.frames)
        collector = Collector(
            env,
            ActorPolicy(self.act),
            frames_per_batch=self.hparams.frames_per_iteration,
            total_frames=-1,
            init_random_frames=random_left or None,
            policy_device=self.device,
            env_device=env.device,
            storing_device=self.device,
            auto_register_policy_transforms=False,
            track_traj_ids=False,
            trust_policy=True,
        )
        self.runtime = Runtime(env, buffer, collector, iter(collector), frames_at_start=self.frames)
        if self._rank_state_to_restore is not None:  # resuming
            self.load_rank_state(self._rank_state_to_restore)
            self._rank_state_to_restore = None

    def on_fit_end(self) -> None:
        if self.runtime is not None:
            self.runtime.collector.shutdown()
            self.runtime = None

    def train_dataloader(self) -> _Iterations:
        return _Iterations(self)

    # ----------------------------------------------------------------------------- collection
    def collect(self) -> TensorDictBase:
        """Collect one iteration of real frames into the real replay buffer; update counters."""
        batch = next(self.runtime.batches)
        batch = batch.exclude("collector")
        self.runtime.buffer.extend(batch)
        self.frames += batch.numel()
        self.iterations += 1
        done = batch.get(keys.DONE).squeeze(-1)
        if done.any():
            self.episodes += int(done.sum())
            self.last_episode_return = float(batch.get(keys.NEXT_EPISODE_RETURN)[done][-1])
        if self.frames >= self.hparams.max_frames:
            self.trainer.should_stop = True
        return batch

    def sample(self, batch_size: int) -> TensorDictBase:
        """A uniform minibatch of real transitions (on ``self.device``)."""
        return self.runtime.buffer.sample(batch_size)

    # ----------------------------------------------------------------------------- optimisation
    @abc.abstractmethod
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer of the algorithm, by name (``critic``, ``actor``, ``alpha``, ``model``, ``q``).
        Code refers to an optimizer by its name (:meth:`optimizer`), never by its position."""

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        named = self.make_optimizers()
        self.optimizer_names = tuple(named)
        return list(named.values())

    def optimizer(self, name: str) -> Any:
        """The trainer's (Lightning-wrapped) optimizer called ``name`` in :meth:`make_optimizers`."""
        names = getattr(self, "optimizer_names", ())
        if name not in names:
            raise KeyError(f"{type(self).__name__} has no optimizer {name!r}; it has {list(names)}")
        optimizers = self.optimizers()
        return optimizers[names.index(name)] if isinstance(optimizers, list) else optimizers

    def apply_gradients(self, loss: Tensor, *optimizers: Any, max_grad_norm: float | None = None) -> None:
        """:meth:`compute_gradients` then :meth:`step_optimizers`: zero the optimizers' gradients,
        backpropagate ``loss``, average the gradients of their parameters across ranks, optionally clip,
        and step each one."""
        self.compute_gradients(loss, *optimizers)
        self.step_optimizers(*optimizers, max_grad_norm=max_grad_norm)

    def compute_gradients(self, loss: Tensor, *optimizers: Any) -> None:
        """Zero the optimizers' gradients and backpropagate ``loss`` on this rank (no averaging yet).

        Under DDP, Lightning's reducer is bypassed (``no_sync``): it expects every parameter of the
        module to receive a gradient in each backward, which is false when optimizers own disjoint
        parameter sets (critic, actor, world model)."""
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        wrapper = self.trainer.strategy.model if self._trainer is not None else None
        no_sync = wrapper.no_sync() if isinstance(wrapper, DistributedDataParallel) else contextlib.nullcontext()
        with no_sync:
            self.manual_backward(loss)

    def step_optimizers(self, *optimizers: Any, max_grad_norm: float | None = None) -> None:
        """Step the optimizers on the gradients their parameters hold now, however they got there
        (:meth:`compute_gradients`, or gradients an algorithm computed itself and wrote to ``.grad``, e.g. an
        implicit gradient): average them across ranks (one flat all-reduce; nothing with one process;
        a parameter without a gradient counts as zero on that rank), optionally clip each optimizer's
        gradient norm (``clip_grad_norm_`` over its parameters, what Lightning's ``clip_gradients`` does; the
        precisions allowed here have no loss scaler, and Lightning's check refuses fused Adam under
        ``bf16-mixed`` although nothing is scaled), and step. Only the given optimizers' parameters are
        touched."""
        params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        SYNC.average_gradients(params)
        for opt in optimizers:
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_grad_norm)
            opt.step()
        parameters_changed()  # (precision.py: autocast's weight-cast cache, where a caller turned it on)

    def step_with_gradients(self, module: torch.nn.Module, grads: dict[str, Tensor], *optimizers: Any) -> None:
        """Write ``grads`` (``module``'s parameter names -> gradients computed outside ``backward``, e.g. an
        implicit gradient) to its parameters' ``.grad``, then :meth:`step_optimizers`."""
        for name, p in module.named_parameters():
            p.grad = grads[name]
        self.step_optimizers(*optimizers)

    def log_iteration(
        self, metrics: TensorDictBase | None = None, model_metrics: TensorDictBase | None = None
    ) -> None:
        """Every ``trainer.log_every_n_steps`` iterations: one row of ``train/*`` (agent) and
        ``model/*`` (world model) metrics to the loggers with env frames as the x-axis, and frames,
        episodes and throughput to the progress bar. (Lightning's ``self.log`` costs ~2 ms a call on
        CPU, so it is not called every iteration.)"""
        if self.iterations % self.trainer.log_every_n_steps:
            return
        rt = self.runtime
        fps = (self.frames - rt.frames_at_start) / max(time.perf_counter() - rt.started_at, 1e-9)
        progress = {"frames": float(self.frames), "episodes": float(self.episodes), "fps": fps}
        self.log_dict(progress, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        row = {**progress, "updates": float(self.updates)}
        if self.episodes:
            row["train/episode_return"] = self.last_episode_return
        for prefix, values in (("train", metrics), ("model", model_metrics)):
            for name, value in (values.items() if values is not None else ()):
                row[f"{prefix}/{name}"] = float(value)
        self.log_to_loggers(row)

    def log_to_loggers(self, row: dict[str, float]) -> None:
        """Write one row to every logger at ``step = frames`` (loggers write on rank 0 only). Every
        rank also keeps the row in ``self.rows_to_check`` until a watcher (``callbacks.DivergenceGuard``)
        reads and clears it. Each row is saved at once (``logger.save()``, as Lightning's own ``self.log``
        path does): ``metrics.csv`` gets it appended, so a running or killed run can be plotted."""
        self.rows_to_check.update(row)
        for logger in self.trainer.loggers:
            logger.log_metrics(row, step=self.frames)
            logger.save()

    # ----------------------------------------------------------------------------- checkpoint
    def rank_state(self) -> dict[str, Any]:
        """This rank's runtime as plain tensors (subclasses add their own): the filled real replay in
        storage order with its write cursor, the env mid-episode, the collector's carrier, and the RNG
        states (all of them consumed by collection and updates)."""
        rt = self.runtime
        return {
            "replay": replay_state(rt.buffer),
            "env": env_state(rt.env),
            "collector": collector_state(rt.collector),
            "rng": rng_state(),
        }

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Put :meth:`rank_state` back into the runtime just built by ``on_fit_start``. The RNG
        states go last (building the runtime consumed random numbers)."""
        rt = self.runtime
        load_replay_state(rt.buffer, state["replay"], device=self.device)
        if state["env"] is not None:
            load_env_state(rt.env, state["env"])
            load_collector_state(rt.collector, state["collector"])
        else:
            rank_zero_warn(f"{self.hparams.env}: the env's state was not saved (no get_env_state); the episode "
                           "in progress restarts, so the resumed run is not identical to an uninterrupted one")
        load_rng_state(state["rng"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Loop counters and, during a fit, every rank's :meth:`rank_state` (gathered to rank 0, which
        writes the file). Every rank must call ``trainer.save_checkpoint`` together (Lightning's own
        checkpointing and ``callbacks.FrameCheckpoint`` do)."""
        checkpoint["loop_counters"] = {
            "frames": self.frames, "episodes": self.episodes, "updates": self.updates,
            "iterations": self.iterations, "last_episode_return": self.last_episode_return,
        }
        if self.runtime is not None:
            checkpoint["rank_states"] = SYNC.gather_objects(self.rank_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the counters now and this rank's runtime at the next ``on_fit_start``."""
        for name, value in checkpoint.get("loop_counters", {}).items():
            setattr(self, name, value)
        states = checkpoint.get("rank_states")
        if states:
            if len(states) != SYNC.world_size:
                raise ConfigError(
                    f"the checkpoint was written by {len(states)} rank(s) and holds their replay buffers and envs; "
                    f"resume it with the same number of processes (--trainer.devices {len(states)}), not {SYNC.world_size}"
                )
            self._rank_state_to_restore = states[SYNC.rank]
