"""BOOTS and MPC evaluation: thin callbacks over ``lightning_mbrl.planners``.

Every ``every_frames`` real frames and at the end of training (``callbacks.evaluation.PeriodicEval``)
they run ``episodes`` episodes of the planner, all stepped together, and log ``eval/<name>/return``
(mean), ``eval/<name>/return_std`` and ``eval/<name>/episode_length`` next to the plain policy's
``eval/return``; ``name`` is ``boots`` or ``mpc`` unless given (two BootsEval with different
``horizon`` need different names).

What they read from the module is declared in ``lightning_mbrl.protocols``: the run (``RunView``:
frames, rank seed, env spec and id, the real replay read-only, ``make_env``), ``q_values`` (min over
the twin critics) or ``q_all`` (discrete actions), ``policy_dist`` (pre-tanh mean and log-std, for
BOOTS over the policy's noise and for policy-seeded MPC) and the ``world_model`` where there is one
(``WorldModel``: MBSAC's SLBO model, MBPO's ensemble with ``model_mode``). Without one the callback
fits its own SLBO model on the real replay before each evaluation (BOOTS-SAC, Dong et al. 2020,
Algorithm 1 line 3) with ``models.slbo.fit_slbo``, MBSAC's model step, and the ``own_model_*``
settings, with the task's known reward, and logs ``eval/<name>/own_model_loss``.

They never change training state: everything runs under ``no_grad`` and ``fork_rng`` (the global RNG
is restored), with the callback's own env, model, optimizer and ``torch.Generator``.
"""

from __future__ import annotations

import abc
import functools
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks.evaluation import EVAL_SEED_OFFSET, PeriodicEval, counting, run_episodes
from callbacks.schedule import FrameSchedule
from lightning_mbrl import keys, progress
from lightning_mbrl.data.collection import ActorPolicy
from lightning_mbrl.envs.known_fns import reward_fn as known_reward_fn, termination_fn as known_termination_fn
from lightning_mbrl.errors import ConfigError, require_in_range, require_positive
from lightning_mbrl.models.ensemble import PREDICT_MODES
from lightning_mbrl.models.rollout import transition_of
from lightning_mbrl.models.slbo import DeterministicDynamics, fit_slbo
from lightning_mbrl.models.utils import adam
from lightning_mbrl.planners import BootsPlanner, MPCPlanner
from lightning_mbrl.protocols import DiscreteQFunction, QFunction, ReplayView, RunView, world_model_of
from lightning_mbrl.planners.boots import OPTIMIZERS as BOOTS_OPTIMIZERS
from lightning_mbrl.planners.cem import check_search_args
from lightning_mbrl.planners.mpc import OPTIMIZERS as MPC_OPTIMIZERS

PLANNER_SEED_OFFSET = 20_000
OWN_MODEL_SEED_OFFSET = 30_000


def _check_planner_args(horizon, min_horizon, optimizer, optimizers, n_candidates, n_iters, n_elites, smoothing,
                        discount) -> None:
    """The planners' own checks, run when the callback is built rather than at its first evaluation."""
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < min_horizon:
        raise ConfigError(f"horizon must be an int >= {min_horizon}, got {horizon!r}")
    if optimizer is not None and optimizer not in optimizers:
        raise ConfigError(f"optimizer must be one of {optimizers}, got {optimizer!r}")
    check_search_args(n_candidates, n_iters, n_elites, smoothing)
    require_in_range("discount", discount, 0.0, 1.0)


class OwnModel:
    """The callback's SLBO model for modules without a world model (BOOTS-SAC, BOOTS-DQN), trained
    warm-started on the run's real replay before each evaluation by ``models.slbo.fit_slbo`` (MBSAC's
    model step). Discrete actions enter the network one-hot; rewards come from the task's known
    reward function."""

    def __init__(self, run: RunView, units: int, blocks: int, lr: float, batch_size: int, grad_clip: float) -> None:
        spec = run.spec
        try:
            reward = known_reward_fn(run.env_id, run.env_kwargs)
        except ConfigError as err:
            raise ConfigError(
                f"{type(run).__name__} has no world model, so the planner fits its own, which needs the task's "
                f"known reward: {err}"
            ) from None
        try:
            done = known_termination_fn(run.env_id, run.env_kwargs)
        except ConfigError:
            done = None
        action_dim = spec.num_actions if spec.discrete else spec.action_dim
        self.model = DeterministicDynamics(spec.observation_dim, action_dim, units, blocks, reward_fn=reward,
                                           termination_fn=done, discrete_actions=spec.discrete).to(run.device)
        self.optimizer = adam(self.model.parameters(), lr=lr)
        self.batch_size, self.grad_clip = batch_size, grad_clip
        self.seen = 0

    def fit(self, replay: ReplayView, steps: int, tick: Callable[[], None] = lambda: None) -> float:
        """Feed the normalisers the transitions added since the last fit, then ``steps`` Adam steps
        (``tick()`` after each, for progress reports)."""
        data = replay[self.seen : len(replay)]
        self.seen = len(replay)
        self.model.update_normalizers(data[keys.OBSERVATION], data[keys.NEXT_OBSERVATION])
        losses = fit_slbo(self.model, self.optimizer, replay.sample, steps, batch_size=self.batch_size,
                          grad_clip=self.grad_clip, on_step=tick)
        return float(losses["loss_l2"]) if losses is not None else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.seen = state["seen"]


class PlannerEval(PeriodicEval):
    """Schedule, episodes, model and logging shared by ``BootsEval`` and ``MPCEval``."""

    default_name = "planner"

    def __init__(
        self,
        every_frames: int,
        episodes: int,
        max_episode_steps: int | None,
        name: str | None,
        model_mode: str,
        own_model_steps: int,
        own_model_units: int,
        own_model_blocks: int,
        own_model_lr: float,
        own_model_batch_size: int,
        own_model_grad_clip: float,
    ) -> None:
        self.schedule = FrameSchedule(every_frames)
        require_positive("episodes", episodes)
        require_positive("own_model_steps", own_model_steps)
        if max_episode_steps is not None:
            require_positive("max_episode_steps", max_episode_steps)
        if model_mode not in PREDICT_MODES:
            raise ConfigError(f"model_mode must be one of {PREDICT_MODES}, got {model_mode!r}")
        self.every_frames, self.episodes, self.max_episode_steps = every_frames, episodes, max_episode_steps
        self.name = name or self.default_name
        self.model_mode = model_mode
        for field, value in (("own_model_lr", own_model_lr), ("own_model_batch_size", own_model_batch_size),
                             ("own_model_grad_clip", own_model_grad_clip)):
            require_positive(field, value)
        self.own_model_args = dict(units=own_model_units, blocks=own_model_blocks, lr=own_model_lr,
                                   batch_size=own_model_batch_size, grad_clip=own_model_grad_clip)
        self.own_model_steps = own_model_steps
        self.own_model: OwnModel | None = None
        self.calls = 0
        self.last_return = float("nan")
        self.seed: int | None = None
        self._env = None
        self._restored: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------ what the planner sees
    @abc.abstractmethod
    def make_planner(self, module: pl.LightningModule, dynamics, generator: torch.Generator):
        """The planner (``BootsPlanner``, ``MPCPlanner``) over ``dynamics`` and the module's Q and policy."""

    def dynamics(self, module: pl.LightningModule):
        """The planners' ``(obs, action) -> (next_obs, reward, terminated)`` over the module's world
        model (``protocols.WorldModel``) in ``model_mode``, or over the callback's own model."""
        world_model = world_model_of(module)
        if world_model is None:
            return self.own_model.model.transition
        return functools.partial(transition_of(world_model), mode=self.model_mode)

    @staticmethod
    def min_q(module: pl.LightningModule):
        return lambda obs, action: module.q_values(obs, action).min(dim=0).values

    # ------------------------------------------------------------------------------ lifecycle
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        clash = [c for c in trainer.callbacks if isinstance(c, PlannerEval) and c is not self and c.name == self.name]
        if clash:
            raise ConfigError(
                f"two evaluation callbacks log under eval/{self.name}/: give one another name "
                f"(e.g. --trainer.callbacks.name {self.name}_k{self.planner_args['horizon']})"
            )
        if not self.every_frames:
            return
        if not isinstance(pl_module, RunView):
            raise ConfigError(f"{type(self).__name__} needs a module that follows lightning_mbrl.protocols.RunView")
        if not isinstance(pl_module, (QFunction, DiscreteQFunction)):
            raise ConfigError(f"{type(self).__name__} needs a module with a Q-function; {type(pl_module).__name__} has none")
        if world_model_of(pl_module) is None and self.own_model is None:
            with torch.random.fork_rng():  # initialised from the run's seed and rank, not the global RNG
                torch.manual_seed(pl_module.rank_seed + OWN_MODEL_SEED_OFFSET)
                self.own_model = OwnModel(pl_module, **self.own_model_args)
        if self._restored is not None:
            self.calls = self._restored["calls"]
            if self.own_model is not None and "own_model" in self._restored:
                self.own_model.load_state_dict(self._restored["own_model"])
            self._restored = None
        self.seed = pl_module.rank_seed + EVAL_SEED_OFFSET
        self._env = pl_module.make_env(num_envs=self.episodes, seed=self.seed)
        self.schedule.start(pl_module.frames)

    # ------------------------------------------------------------------------------ checkpoint
    @property
    def state_key(self) -> str:
        # name and planner settings: stable across a resume, and distinct for two callbacks that differ
        # only in their settings (so Lightning lets them through and on_fit_start names the clash)
        return self._generate_state_key(name=self.name, **self.planner_args)

    def state_dict(self) -> dict[str, Any]:
        """The evaluation count (it seeds the planner) and the own model with its optimizer, so a resumed
        run plans exactly as an uninterrupted one."""
        state: dict[str, Any] = {"calls": self.calls}
        if self.own_model is not None:
            state["own_model"] = self.own_model.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = state_dict  # applied in on_fit_start, once the own model exists

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at_end: bool) -> None:
        row = self.evaluate(pl_module)
        self.calls += 1
        returns = trainer.strategy.all_gather(row.pop("returns").to(pl_module.device)).flatten()
        lengths = trainer.strategy.all_gather(row.pop("lengths").to(pl_module.device)).flatten()
        self.last_return = float(returns.mean())
        prefix = f"eval/{self.name}"
        pl_module.log_to_loggers({
            f"{prefix}/return": self.last_return,
            f"{prefix}/return_std": float(returns.std(unbiased=False)),
            f"{prefix}/episode_length": float(lengths.mean()),
            **{f"{prefix}/{k}": v for k, v in row.items()},
        })

    def evaluate(self, module: pl.LightningModule) -> dict[str, Any]:
        """Run the episodes; returns ``returns [E]``, ``lengths [E]`` and diagnostics."""
        max_steps = self.max_episode_steps or module.spec.max_episode_steps or 1000
        row: dict[str, Any] = {}
        with torch.no_grad(), torch.random.fork_rng(devices=[module.device] if module.device.type == "cuda" else []):
            if self.own_model is not None:
                with progress.phase(f"eval {self.name}: model fit", self.own_model_steps, unit="steps") as tick, \
                        self.precision_context():
                    row["own_model_loss"] = self.own_model.fit(module.real_replay, self.own_model_steps, tick)
            act = self.make_actor(module, self.episodes)
            self._env.set_seed(self.seed)  # the same start states at every evaluation (and after a resume)
            with progress.phase(f"eval {self.name}", max_steps, unit="steps") as tick:
                row["returns"], row["lengths"] = run_episodes(self._env, ActorPolicy(counting(act, tick)), max_steps)
        return row

    def make_actor(self, module: pl.LightningModule, n_envs: int) -> Callable[[Tensor], Tensor]:
        """The planner as ``act(obs) -> action`` (on CPU) for ``n_envs`` envs stepped together
        (``obs [n_envs, obs_dim]``, or ``[obs_dim]`` for one unbatched env), over the current model and
        with a ``torch.Generator`` seeded from ``rank_seed`` and ``calls``. Call it, and the closure,
        under ``no_grad`` and ``fork_rng``, as ``evaluate`` does (``callbacks.VideoEval`` uses it too)."""
        generator = torch.Generator(device=module.device)
        generator.manual_seed(module.rank_seed + PLANNER_SEED_OFFSET + self.calls)
        planner = self.make_planner(module, self.dynamics(module), generator)
        planner.reset(n_envs)

        def act(obs: Tensor) -> Tensor:
            obs = obs.to(module.device)
            single = obs.dim() == 1
            with self.precision_context():
                action = planner.act(obs.unsqueeze(0) if single else obs)
            return (action.squeeze(0) if single else action).cpu()

        return act


class BootsEval(PlannerEval):
    """BOOTS (Dong et al. 2020, Eq. 5): the k-step bootstrapped greedy policy over the learned model
    and the module's Q. Defaults are the official code's (REFERENCE 2.2) with the paper's k = 4: CEM
    over the policy's noise, 500 candidates, 5 iterations, 50 elites, smoothing 0.5, no discount.
    Discrete actions (DQN) use exhaustive search over all ``|A|^k`` sequences.

    ``optimizer``: ``cem_noise`` | ``cem_action`` | ``shooting`` | ``exhaustive`` (``None``: the
    paper's choice for the action space). See ``lightning_mbrl.planners.boots``.
    """

    default_name = "boots"

    def __init__(
        self,
        every_frames: int = 10_000,
        episodes: int = 10,
        max_episode_steps: int | None = None,
        horizon: int = 4,
        optimizer: str | None = None,
        n_candidates: int = 500,
        n_iters: int = 5,
        n_elites: int = 50,
        smoothing: float = 0.5,
        discount: float = 1.0,
        name: str | None = None,
        model_mode: str = "mean",
        own_model_steps: int = 2_000,
        own_model_units: int = 200,
        own_model_blocks: int = 2,
        own_model_lr: float = 1e-3,
        own_model_batch_size: int = 64,
        own_model_grad_clip: float = 1000.0,
    ) -> None:
        super().__init__(every_frames, episodes, max_episode_steps, name, model_mode, own_model_steps,
                         own_model_units, own_model_blocks, own_model_lr, own_model_batch_size, own_model_grad_clip)
        self.planner_args = dict(horizon=horizon, optimizer=optimizer, n_candidates=n_candidates, n_iters=n_iters,
                                 n_elites=n_elites, smoothing=smoothing, discount=discount)
        _check_planner_args(horizon, 0, optimizer, BOOTS_OPTIMIZERS, n_candidates, n_iters, n_elites, smoothing, discount)

    def make_planner(self, module: pl.LightningModule, dynamics, generator: torch.Generator) -> BootsPlanner:
        spec, args = module.spec, dict(self.planner_args)
        if spec.discrete:
            args["optimizer"] = args["optimizer"] or "exhaustive"
            return BootsPlanner(dynamics, module.q_all, horizon=args.pop("horizon"), n_actions=spec.num_actions,
                                generator=generator, **args)
        args["optimizer"] = args["optimizer"] or "cem_noise"
        return BootsPlanner(dynamics, self.min_q(module), module.policy_dist, action_dim=spec.action_dim,
                            generator=generator, **args)


class MPCEval(PlannerEval):
    """Test-time MPC (Clavera et al. 2020, Section 5.4): CEM over pre-tanh actions seeded by the
    policy's means along a model rollout, terminal value ``gamma^H min_j Q_j``; defaults are the
    official code's (REFERENCE 5.2): 256 candidates, horizon 5, 5 iterations, 25 elites, smoothing 0.1,
    gamma 0.99, the ensemble sampled (``model_mode: sample``) and the prior rollout deterministic.
    ``use_policy: false`` gives plain MPC (CEM or ``optimizer: mppi`` over actions, no Q).
    """

    default_name = "mpc"

    def __init__(
        self,
        every_frames: int = 10_000,
        episodes: int = 10,
        max_episode_steps: int | None = None,
        horizon: int = 5,
        optimizer: str = "cem",
        n_candidates: int = 256,
        n_iters: int = 5,
        n_elites: int = 25,
        smoothing: float = 0.1,
        discount: float = 0.99,
        use_policy: bool = True,
        name: str | None = None,
        model_mode: str = "sample",
        own_model_steps: int = 2_000,
        own_model_units: int = 200,
        own_model_blocks: int = 2,
        own_model_lr: float = 1e-3,
        own_model_batch_size: int = 64,
        own_model_grad_clip: float = 1000.0,
    ) -> None:
        super().__init__(every_frames, episodes, max_episode_steps, name, model_mode, own_model_steps,
                         own_model_units, own_model_blocks, own_model_lr, own_model_batch_size, own_model_grad_clip)
        self.use_policy = use_policy
        self.planner_args = dict(horizon=horizon, optimizer=optimizer, n_candidates=n_candidates, n_iters=n_iters,
                                 n_elites=n_elites, smoothing=smoothing, discount=discount)
        _check_planner_args(horizon, 1, optimizer, MPC_OPTIMIZERS, n_candidates, n_iters, n_elites, smoothing, discount)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.spec.discrete:
            raise ConfigError("MPCEval searches continuous actions; use BootsEval (exhaustive search) for discrete ones")
        super().on_fit_start(trainer, pl_module)

    def make_planner(self, module: pl.LightningModule, dynamics, generator: torch.Generator) -> MPCPlanner:
        init_dynamics = None
        world_model = world_model_of(module)
        if world_model is not None:
            init_dynamics = functools.partial(transition_of(world_model), mode="mean")
        policy = module.policy_dist if self.use_policy else None
        q_fn = self.min_q(module) if self.use_policy else None
        return MPCPlanner(dynamics, q_fn, policy, action_dim=module.spec.action_dim, generator=generator,
                          init_dynamics=init_dynamics, **self.planner_args)
