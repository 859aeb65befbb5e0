"""Online ER-DQN and Dyna-DQN with a learned (simple or latent-space) or a perfect model, S seeds as one
batched run: the online experiments of paper 001 (Young et al. 2023, Sections 3-4, Figures 3-4) on ProcMaze,
ButtonGrid and PanFlute (``envs.gridworlds``).

One ``training_step`` (:meth:`DynaDQN.step`) is one env step of every seed:

    act:    a ~ softmax(Q(s) / temperature)                 (Gumbel-max on the seed's own uniforms)
    step:   s', r, terminated = env(s, a)                   (the seed's own env noise)
    store:  (s, a, r, s', terminated) -> the seed's ring buffer (and the env state, agent "perfect")
    reset:  episodic envs, where terminated (training episodes end at termination only)
    if env_steps > learning_starts, updates_per_step times, for every seed:
        agent "er":      batch_size sampled transitions                    -> DQN step
        agent "simple":  model_batch_size sampled -> one model step on them (models.simple_model)
                         -> batch_size / rollout_length rollouts of rollout_length steps with the
                            model from the first of them, softmax(Q / temperature) actions
                         -> DQN step on the imagined transitions, continuation-weighted
        agent "perfect": batch_size / rollout_length sampled *env states* -> rollouts with the
                         true dynamics (``core.transition``), weight 0 after a terminal -> DQN step
        agents "categorical", "gaussian" (latent models, ``models.latent_model``): as "simple", but
                         the model is a latent-space model and Q lives in its latent space: the
                         rollouts start from the encoder's sampled latents of the real observations
                         and step the model's prior; the DQN step is on imagined latent transitions
    every target_update_every env steps: copy Q into the target network
    every eval_every env steps: greedy evaluation (:meth:`DynaDQN.evaluate`), logged per seed

So each agent's Q step sees batch_size (320) transitions. Latent agents, as in the official code
(``train_latent_model_DQN.py``), have no Q step on real data: Q's input is the latent (``latent_dim``
long), and in the env (acting and evaluation) Q sees a latent sampled from the encoder
(:meth:`DynaDQN.q_input`, drawn from the seed's ``generators`` / ``eval_generators``); the model
is trained on the sampled real transitions and the rollouts start from the first batch_size /
rollout_length of them, as for "simple". Networks are 3 x 200 ELU, gamma 0.9,
AdamW (betas 0.9 / 0.99, eps 1e-5, decoupled weight decay ``x <- x - lr adam - 1e-6 x``), model step
size 2e-4 (REFERENCE 4.3). ``regime`` ("high": 1 update per env step, 1M steps; "low": 10 updates
per step, 100k steps) fills the schedule arguments left out (:data:`REGIMES`), and ``lr`` and
``temperature`` left out take the tuned pair of the agent, env family and regime (:data:`TUNED`, the
official README's table); given values win. ``self.hparams`` holds the values used.

Seeds: ``seeds`` consecutive seeds from ``seed``. Seed ``s`` has its own initial parameters
(``models.mlp.seeded_members_``, streams 0-8) and three generators of its own: ``generators``
(behaviour actions, replay sampling, rollouts), ``env_generators`` (its training envs: step noise
and resets) and ``eval_generators`` (evaluation envs, so that evaluating never changes training).
AdamW is elementwise, so seed ``s`` follows the path of a run of that seed alone (to float rounding
of the batched matrix multiplies; a test checks).

Replay: one ring buffer per seed as a TensorDict ``[S, buffer_size]`` (observations stored as bool:
they are binary), written at the same slots for all seeds (``envs_per_seed`` slots per env step);
a sample reads only the filled part. Memory is allocated uninitialised (``torch.empty``), so pages are
committed as they are written.

Optimizers by name: ``q`` and, for the learned models (simple, categorical, gaussian), ``model``.
``train_model=False`` fixes the learned model (e.g. one loaded from another run, as paper 001's Figure 4
right freezes models): its losses are still computed and logged, and no model step is taken.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.algos.seeded import SeededAgent
from lightning_mbrl.envs.gridworlds import GridworldCore, make_core
from lightning_mbrl.errors import ConfigError, check_arguments
from lightning_mbrl.models.latent_model import LatentModel
from lightning_mbrl.models.mlp import BatchedMLP, seeded_members_
from lightning_mbrl.models.simple_model import BernoulliModel
from lightning_mbrl.models.utils import seeded_generator
from lightning_mbrl.objectives import dyna_dqn
from lightning_mbrl.objectives.dyna_dqn import softmax_actions

Regime = Literal["high", "low"]
Agent = Literal["er", "simple", "perfect", "categorical", "gaussian"]
#: The agents whose Q-network works on a latent-space model's latents.
LATENT_AGENTS = ("categorical", "gaussian")
#: ``models.utils.seeded_generator(seed, stream)`` streams of a seed's generators (``seeded_members_``
#: uses 0-8 for the networks).
AGENT_STREAM, ENV_STREAM, EVAL_STREAM = 100, 101, 102
ENV_STATE = keys.ENV_STATE  # re-exported for tests and users of this module

#: The two data regimes of REFERENCE 4.3.
REGIMES: dict[str, dict[str, int]] = {
    "high": dict(steps=1_000_000, updates_per_step=1, target_update_every=100, eval_every=500),
    "low": dict(steps=100_000, updates_per_step=10, target_update_every=10, eval_every=50),
}
#: Tuned ``(lr, temperature)`` by ``(agent, env family, regime)`` (the official README, REFERENCE 4.3).
TUNED: dict[tuple[str, str, str], tuple[float, float]] = {
    ("er", "procmaze", "high"): (5e-5, 0.1), ("er", "procmaze", "low"): (2.5e-5, 1.6),
    ("er", "buttongrid", "high"): (5e-5, 0.0125), ("er", "buttongrid", "low"): (2.5e-5, 0.1),
    ("er", "panflute", "high"): (1e-4, 0.1), ("er", "panflute", "low"): (3.125e-6, 0.8),
    ("simple", "procmaze", "high"): (2e-4, 0.8), ("simple", "procmaze", "low"): (2.5e-5, 0.4),
    ("simple", "buttongrid", "high"): (2e-4, 1.6), ("simple", "buttongrid", "low"): (5e-5, 0.4),
    ("simple", "panflute", "high"): (1e-4, 0.4), ("simple", "panflute", "low"): (2e-4, 0.2),
    ("perfect", "procmaze", "high"): (1e-4, 0.4), ("perfect", "procmaze", "low"): (4e-4, 0.4),
    ("perfect", "buttongrid", "high"): (2e-4, 0.0125), ("perfect", "buttongrid", "low"): (2e-4, 0.0125),
    ("perfect", "panflute", "high"): (2e-4, 0.1), ("perfect", "panflute", "low"): (1e-4, 0.1),
    ("categorical", "procmaze", "high"): (2e-4, 1.6), ("categorical", "procmaze", "low"): (1e-4, 0.8),
    ("categorical", "buttongrid", "high"): (1e-4, 0.05), ("categorical", "buttongrid", "low"): (2e-4, 0.1),
    ("categorical", "panflute", "high"): (8e-4, 0.05), ("categorical", "panflute", "low"): (1.6e-3, 0.05),
    ("gaussian", "procmaze", "high"): (3.125e-6, 12.8), ("gaussian", "procmaze", "low"): (3.125e-6, 0.8),
    ("gaussian", "buttongrid", "high"): (1.25e-5, 0.1), ("gaussian", "buttongrid", "low"): (2.5e-5, 0.8),
    ("gaussian", "panflute", "high"): (2e-4, 0.1), ("gaussian", "panflute", "low"): (2e-4, 0.1),
}


@torch.no_grad()
def true_rollout(core: GridworldCore, q_net: dyna_dqn.QAll, start: TensorDictBase, length: int,
                 temperature: float, uniform: Tensor, noise: TensorDictBase) -> TensorDict:
    """The perfect model of paper 001: ``length`` steps of the true dynamics from env states ``start``
    ``[E, N]`` with actions from ``softmax(Q / temperature)``: a TensorDict ``[E, N * length]``
    (time-major, as ``objectives.dyna_dqn.imagine``) of ``observation``, ``action``,
    ``("next", "reward")``, ``("next", "terminated")``, ``("next", "observation")`` and ``weight``
    ``= prod_{k < t} (1 - terminated_k)``: 0 after a terminal (REFERENCE 4.3), so the steps after it
    (ProcMaze's post-terminal state is never used) count for nothing.

    ``uniform [E, length, N, n_actions]`` in [0, 1) draws the actions and ``noise [E, length, N]``
    (``core.sample_noise``) the env's randomness: step ``t`` is ``core.transition(s_t, a_t, noise[:, t])``.
    No graph (the transitions are data for the Q step).
    """
    state = start
    weight = torch.ones(start.batch_size, device=uniform.device)
    steps = []
    for t in range(length):
        obs = core.observation(state)
        action = softmax_actions(q_net(obs), temperature, uniform[:, t])
        next_state, reward, terminated = core.transition(state, action, noise[:, t])
        steps.append(TensorDict({keys.OBSERVATION: obs, keys.ACTION: action, keys.REWARD: reward,
                                 keys.TERMINATED: terminated, keys.NEXT_OBSERVATION: core.observation(next_state),
                                 dyna_dqn.WEIGHT: weight}, batch_size=start.batch_size))
        state, weight = next_state, weight * (~terminated).to(weight.dtype)
    return torch.cat(steps, dim=1)


class DynaDQN(SeededAgent):
    def __init__(
        self,
        env: str = "gridworld/procmaze-4",
        agent: Agent = "simple",
        regime: Regime = "high",
        seed: int = 0,
        seeds: PositiveInt = 30,
        envs_per_seed: PositiveInt = 1,
        steps: PositiveInt | None = None,
        updates_per_step: PositiveInt | None = None,
        target_update_every: PositiveInt | None = None,
        learning_starts: NonNegativeInt = 1000,
        buffer_size: PositiveInt = 100_000,
        batch_size: PositiveInt = 320,
        model_batch_size: PositiveInt = 32,
        rollout_length: PositiveInt = 10,
        hidden: tuple[PositiveInt, ...] = (200, 200, 200),
        gamma: ClosedUnitInterval = 0.9,
        lr: PositiveFloat | None = None,
        model_lr: PositiveFloat = 2e-4,
        temperature: PositiveFloat | None = None,
        eval_every: PositiveInt | None = None,
        eval_episodes: PositiveInt = 32,
        eval_steps: PositiveInt = 100,
        spontaneous: bool = True,
        train_model: bool = True,
    ) -> None:
        check_arguments(DynaDQN, locals())
        super().__init__()
        if agent != "er" and batch_size % rollout_length:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of rollout_length ({rollout_length}) "
                              f"for agent {agent!r}")
        if envs_per_seed > buffer_size:
            raise ConfigError(f"envs_per_seed ({envs_per_seed}) must be <= buffer_size ({buffer_size})")
        self.core = make_core(env, spontaneous=spontaneous)
        self.save_hyperparameters()
        # Left out (None): the regime's schedule and the tuned (lr, temperature) of this agent, env and regime.
        tuned = dict(zip(("lr", "temperature"), TUNED[(agent, type(self.core).__name__.lower(), regime)]))
        for name, value in {**REGIMES[regime], **tuned}.items():
            if self.hparams[name] is None:
                self.hparams[name] = value
        self.automatic_optimization = False
        self.seed_list = list(range(seed, seed + seeds))
        core = self.core
        model: BernoulliModel | LatentModel | None = None
        if agent == "simple":
            model = BernoulliModel(self.seed_list, core.obs_dim, core.num_actions, hidden)
        elif agent in LATENT_AGENTS:
            model = LatentModel(self.seed_list, core.obs_dim, core.num_actions, agent, hidden)
        q_in = model.latent_dim if agent in LATENT_AGENTS else core.obs_dim
        self.q = seeded_members_(BatchedMLP(seeds, q_in, hidden, core.num_actions, "elu"), self.seed_list)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.model = model
        self.generators = [seeded_generator(s, AGENT_STREAM) for s in self.seed_list]
        self.env_generators = [seeded_generator(s, ENV_STREAM) for s in self.seed_list]
        self.eval_generators = [seeded_generator(s, EVAL_STREAM) for s in self.seed_list]
        self.n_starts = batch_size // rollout_length if agent != "er" else 0
        self.n_sampled = self.n_starts if agent == "perfect" else (
            batch_size if agent == "er" else max(model_batch_size, self.n_starts))
        #: Env states ``[S, envs_per_seed]`` and replay ``[S, buffer_size]``, made at the first step.
        self.env_state: TensorDict | None = None
        self.replay: TensorDict | None = None
        self.env_steps = 0  # per seed and env
        self.stored = 0  # transitions written per seed (the ring index is stored % buffer_size)
        self.updates_done = 0
        self.target_copies = 0
        #: Evaluation curve: the env steps of each evaluation and its per-seed returns (``eval_curve``).
        self.eval_curve_steps: list[int] = []
        self._eval_returns: list[Tensor] = []
        self._state_to_restore: dict | None = None  # a checkpoint's runtime state (on_load_checkpoint)


    # ------------------------------------------------------------------ per-seed randomness
    @property
    def latent_noise_dim(self) -> int:
        """Uniforms per encoded observation: the latent model's ``noise_dim``, 0 for the other agents."""
        return self.model.noise_dim if self.hparams.agent in LATENT_AGENTS else 0

    def q_input(self, observation: Tensor, uniform: Tensor | None) -> Tensor:
        """What Q sees of real observations ``[S, *B, D]``: the observations themselves, or for latent
        agents a latent sampled from the encoder with ``uniform [S, *B, latent_noise_dim]`` (the
        official agent acts on a sampled latent)."""
        if self.hparams.agent not in LATENT_AGENTS:
            return observation
        S, D = observation.shape[0], observation.shape[-1]
        latent = self.model.features(observation.reshape(S, -1, D), uniform.reshape(S, -1, uniform.shape[-1]))
        return latent.reshape(*observation.shape[:-1], latent.shape[-1])

    def _noise(self, shape: tuple[int, ...], generators: list[torch.Generator]) -> TensorDict:
        """``core.sample_noise`` of shape ``[S, *shape]``, row ``s`` from ``generators[s]`` alone."""
        return torch.stack([self.core.sample_noise(shape, g) for g in generators]).to(self.device)

    def _reset(self, shape: tuple[int, ...], generators: list[torch.Generator]) -> TensorDict:
        """Fresh env states ``[S, *shape]``, row ``s`` from ``generators[s]`` alone."""
        return torch.stack([self.core.reset(shape, g) for g in generators]).to(self.device)

    # ------------------------------------------------------------------ replay
    def _start(self) -> None:
        hp, S = self.hparams, len(self.seed_list)
        self.env_state = self._reset((hp.envs_per_seed,), self.env_generators)
        D = self.core.obs_dim

        def empty(*shape: int, dtype: torch.dtype) -> Tensor:
            return torch.empty(S, hp.buffer_size, *shape, dtype=dtype, device=self.device)

        self.replay = TensorDict({
            keys.OBSERVATION: empty(D, dtype=torch.bool), keys.ACTION: empty(dtype=torch.long),
            keys.REWARD: empty(dtype=torch.float32), keys.TERMINATED: empty(dtype=torch.bool),
            keys.NEXT_OBSERVATION: empty(D, dtype=torch.bool)}, batch_size=[S, hp.buffer_size], device=self.device)
        if hp.agent == "perfect":
            self.replay[ENV_STATE] = self.env_state[:, :1].apply(
                lambda x: torch.empty(S, hp.buffer_size, *x.shape[2:], dtype=x.dtype, device=self.device),
                batch_size=[S, hp.buffer_size])

    def _store(self, transition: TensorDictBase) -> None:
        """Write ``transition [S, E]`` at ring slots ``stored, ..., stored + E - 1`` (mod capacity)."""
        E, capacity = transition.batch_size[1], self.hparams.buffer_size
        slots = (self.stored + torch.arange(E, device=self.device)) % capacity
        row = transition.select(*self.replay.keys(True, True)).clone()
        row[keys.OBSERVATION] = row[keys.OBSERVATION].bool()
        row[keys.NEXT_OBSERVATION] = row[keys.NEXT_OBSERVATION].bool()
        self.replay[:, slots] = row
        self.stored += E

    def replay_index(self, uniform: Tensor) -> Tensor:
        """Replay slots ``long [S, n]`` for ``uniform [S, n]`` in [0, 1): uniform over the filled part."""
        size = min(self.stored, self.hparams.buffer_size)
        return (uniform * size).long().clamp_max(size - 1)

    def sample(self, uniform: Tensor) -> TensorDict:
        """Transitions ``[S, n]`` (observations as float) at ``replay_index(uniform)``."""
        rows = torch.arange(len(self.seed_list), device=self.device).unsqueeze(1)
        batch = self.replay[rows, self.replay_index(uniform)]
        batch[keys.OBSERVATION] = batch[keys.OBSERVATION].float()
        batch[keys.NEXT_OBSERVATION] = batch[keys.NEXT_OBSERVATION].float()
        return batch

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act_and_step(self) -> TensorDict:
        """One env step of every seed's envs; returns the transition ``[S, E]`` (float observations;
        ``env_state`` is the state before the step) and moves ``env_state`` on, resetting episodic
        envs where they terminated."""
        if self.env_state is None:
            self._start()
        S, E, A = len(self.seed_list), self.hparams.envs_per_seed, self.core.num_actions
        state = self.env_state
        obs = self.core.observation(state)
        u = self._uniforms(E * (A + self.latent_noise_dim)).reshape(S, E, -1)
        action = softmax_actions(self.q(self.q_input(obs, u[..., A:])), self.hparams.temperature, u[..., :A])
        next_state, reward, terminated = self.core.transition(state, action, self._noise((E,), self.env_generators))
        transition = TensorDict({keys.OBSERVATION: obs, keys.ACTION: action, keys.REWARD: reward,
                                 keys.TERMINATED: terminated, keys.NEXT_OBSERVATION: self.core.observation(next_state),
                                 ENV_STATE: state}, batch_size=[S, E])
        ended = terminated.any(-1).nonzero().flatten().tolist() if self.core.episodic else []
        if ended:
            next_state = next_state.clone()  # a core's next state may share tensors with ``state`` (stored)
            for s in ended:
                next_state[s] = self.core.reset_where(next_state[s].cpu(), terminated[s].cpu(),
                                                      self.env_generators[s]).to(self.device)
        self.env_state = next_state
        self.env_steps += 1
        return transition

    # ------------------------------------------------------------------ the update
    def update(self) -> dict[str, Tensor]:
        """One update of every seed; returns per-seed losses ``[S]``."""
        hp, core = self.hparams, self.core
        S, A, D, L, N = len(self.seed_list), core.num_actions, core.obs_dim, hp.rollout_length, self.n_starts
        Z, M = self.latent_noise_dim, hp.model_batch_size
        n_latent = (M + N) * Z + L * N * (A + Z)  # model-loss latents, start latents, rollout steps
        n_roll = {"er": 0, "simple": L * N * (A + D), "perfect": L * N * A,
                  "categorical": n_latent, "gaussian": n_latent}[hp.agent]
        u = self._uniforms(self.n_sampled + n_roll)
        sample = self.sample(u[:, : self.n_sampled])  # [S, n_sampled]
        logs: dict[str, Tensor] = {}
        if hp.agent == "er":
            batch = sample.exclude(ENV_STATE)
        elif hp.agent == "simple":
            logs.update(self._model_step(sample[:, :M]))
            batch = dyna_dqn.imagine(self.model, self.q, sample[:, :N][keys.OBSERVATION], L, hp.temperature,
                                     u[:, self.n_sampled:].reshape(S, L, N, A + D))
        elif hp.agent in LATENT_AGENTS:  # the same, in latent space: Q never sees a real transition
            u_model = u[:, self.n_sampled:]
            logs.update(self._model_step(sample[:, :M], u_model[:, : M * Z].reshape(S, M, Z)))
            with torch.no_grad():
                start = self.model.features(sample[:, :N][keys.OBSERVATION],
                                            u_model[:, M * Z: (M + N) * Z].reshape(S, N, Z))
            batch = dyna_dqn.imagine(self.model, self.q, start, L, hp.temperature,
                                     u_model[:, (M + N) * Z:].reshape(S, L, N, A + Z))
        else:  # perfect: the true dynamics from the stored env states
            noise = self._noise((L, N), self.generators)
            batch = true_rollout(core, self.q, sample[:, :N][ENV_STATE], L, hp.temperature,
                                 u[:, self.n_sampled:].reshape(S, L, N, A), noise)
        q_losses = dyna_dqn.td_loss(self.q, self.q_target, batch, hp.gamma)
        self._step("q", q_losses["loss_q"].sum())
        logs.update({k: v.detach() for k, v in q_losses.items()})
        self.updates_done += 1
        return logs

    def _model_step(self, real: TensorDictBase, uniform: Tensor | None = None) -> dict[str, Tensor]:
        """The model's per-seed losses on the real transitions ``real [S, M]`` (a latent model draws their
        latents from ``uniform [S, M, noise_dim]``) and, unless ``train_model`` is off (a fixed model), one
        step of optimizer ``model`` on their sum."""
        train = self.hparams.train_model
        with torch.set_grad_enabled(train):
            losses = self.model.loss(real[keys.OBSERVATION], real[keys.ACTION], real[keys.REWARD],
                                     real[keys.NEXT_OBSERVATION], real[keys.TERMINATED],
                                     *(() if uniform is None else (uniform,)))
        if train:
            self._step("model", sum(losses[k].sum() for k in losses.keys()))
        return {k: v.detach() for k, v in losses.items()}

    def step(self) -> dict[str, Tensor]:
        """One env step of every seed, then its updates, target copy and evaluation (module docstring).
        Returns the last update's per-seed losses (empty before ``learning_starts``) and, at an
        evaluation step, ``eval_return [S]``."""
        hp = self.hparams
        self._store(self.act_and_step())
        logs: dict[str, Tensor] = {}
        if self.env_steps > hp.learning_starts:
            for _ in range(hp.updates_per_step):
                logs = self.update()
        if self.env_steps % hp.target_update_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
            self.target_copies += 1
        if self.env_steps % hp.eval_every == 0:
            returns = self.evaluate()
            self.eval_curve_steps.append(self.env_steps)
            self._eval_returns.append(returns.cpu())
            logs = {**logs, "eval_return": returns}
        return logs

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> Tensor:
        """Greedy policy on ``eval_episodes`` fresh envs per seed for ``eval_steps`` steps, one batched
        rollout; float ``[S]``. Episodic envs: the mean undiscounted return (an episode stops
        counting after its terminal step, whose reward counts); continuing envs: the mean reward per
        step. Draws from ``eval_generators`` only."""
        hp, core = self.hparams, self.core
        state = self._reset((hp.eval_episodes,), self.eval_generators)  # [S, N]
        noise = self._noise((hp.eval_steps, hp.eval_episodes), self.eval_generators)  # [S, T, N]
        Z = self.latent_noise_dim  # latent agents: the encoder's draws [S, T, N, Z] (none for the others)
        u = self._uniforms(hp.eval_steps * hp.eval_episodes * Z, self.eval_generators).reshape(
            len(self.seed_list), hp.eval_steps, hp.eval_episodes, Z) if Z else None
        total = torch.zeros(state.batch_size, device=self.device)
        running = torch.ones(state.batch_size, dtype=torch.bool, device=self.device)
        for t in range(hp.eval_steps):
            action = self.q(self.q_input(core.observation(state), u[:, t] if Z else None)).argmax(-1)
            state, reward, terminated = core.transition(state, action, noise[:, t])
            total += reward * running
            running &= ~terminated
            if core.episodic and not bool(running.any()):
                break
        return total.mean(-1) if core.episodic else total.mean(-1) / hp.eval_steps

    @property
    def eval_curve(self) -> Tensor:
        """Per-seed evaluation returns ``[n_evals, S]`` at env steps ``eval_curve_steps``."""
        if not self._eval_returns:
            return torch.zeros(0, len(self.seed_list))
        return torch.stack(self._eval_returns)

    # ------------------------------------------------------------------ budget and checkpoints (the CLI's)
    @property
    def frames(self) -> int:
        """Env steps per seed so far: what the CLI's checkpoint schedule (``callbacks.FrameCheckpoint``)
        and progress bar count."""
        return self.env_steps

    @property
    def max_frames(self) -> int:
        return self.hparams.steps

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Counters, and everything a resumed run needs to continue exactly as an uninterrupted one: the
        filled part of the replay (``[S, min(stored, buffer_size)]``, cloned so that the file does not
        hold the unfilled buffer), the env states, every seed's generators and the evaluation curve.
        Parameters and optimizer states are Lightning's."""
        checkpoint["loop_counters"] = {"frames": self.env_steps, "stored": self.stored,
                                       "updates_done": self.updates_done, "target_copies": self.target_copies}
        filled = min(self.stored, self.hparams.buffer_size)
        checkpoint["seeded_state"] = {
            "replay": None if self.replay is None else self.replay[:, :filled].clone().to_dict(),
            "env_state": None if self.env_state is None else self.env_state.clone().to_dict(),
            "generators": {name: [g.get_state() for g in gens] for name, gens in self._generator_lists().items()},
            "eval_steps": torch.tensor(self.eval_curve_steps, dtype=torch.long),
            "eval_returns": self.eval_curve,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Counters now; the replay, env states, generators and evaluation curve at ``on_fit_start``
        (on the module's device)."""
        counters = dict(checkpoint.get("loop_counters", {}))
        if "frames" in counters:
            self.env_steps = counters.pop("frames")
        for name, value in counters.items():
            setattr(self, name, value)
        self._state_to_restore = checkpoint.get("seeded_state")

    def on_fit_start(self) -> None:
        state, self._state_to_restore = self._state_to_restore, None
        if state is None:
            return
        S = len(self.seed_list)
        if state["replay"] is not None:
            self._start()  # allocates the replay; draws from env_generators, whose states are restored below
            filled = min(self.stored, self.hparams.buffer_size)
            self.replay[:, :filled] = TensorDict(state["replay"], batch_size=[S, filled], device=self.device)
            self.env_state = TensorDict(state["env_state"], batch_size=[S, self.hparams.envs_per_seed],
                                        device=self.device)
        for name, gens in self._generator_lists().items():
            for g, saved in zip(gens, state["generators"][name], strict=True):
                g.set_state(saved)
        self.eval_curve_steps = state["eval_steps"].tolist()
        self._eval_returns = list(state["eval_returns"].unbind(0))

    def _generator_lists(self) -> dict[str, list[torch.Generator]]:
        return {"agent": self.generators, "env": self.env_generators, "eval": self.eval_generators}

    # ------------------------------------------------------------------ Lightning
    def train_dataloader(self):
        """One item per remaining env step (a resumed run continues from its checkpoint's step)."""
        return range(self.env_steps, self.hparams.steps)

    def training_step(self, batch: int, batch_idx: int) -> None:
        logs = self.step()
        if self.env_steps >= self.hparams.steps and self._trainer is not None:
            self.trainer.should_stop = True  # the budget, not epochs, ends training (the CLI's max_epochs is -1)
        if "eval_return" in logs:
            returns = logs.pop("eval_return")
            metrics = {f"train/{k}": v.mean().item() for k, v in logs.items()}
            metrics["eval/return"] = returns.mean().item()
            metrics.update({f"eval/return_seed{s}": r.item() for s, r in zip(self.seed_list, returns)})
            self._log_row(metrics, self.env_steps)
