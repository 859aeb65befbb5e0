"""Deep Q-networks (Mnih et al. 2015) with double-DQN targets (van Hasselt et al. 2016) on the
off-policy loop, for discrete action spaces.

Defaults are for classic-control tasks such as CartPole-v1 (not the Atari settings of the paper):
a 2 x 64 ReLU Q-network, Adam with lr 1e-3, gamma 0.99, batch 128, replay 50k, one update per
frame after 1,000 random frames, double-DQN targets, Huber loss, gradient norm clipped at 10, a
hard target copy every 500 updates, and epsilon-greedy exploration annealed linearly from 1.0 to
0.05 over the first 10,000 policy frames.

One iteration (``training_step``):

    collect frames_per_iteration real frames (epsilon-greedy or Boltzmann) -> real replay buffer
    repeat G * frames_per_iteration times:
        TD step on  L(theta) = E[l(Q(s, a; theta) - y)]   (y from the target network)
        target update: hard copy every target_update_every updates (tau = 1),
                       or Polyak theta^- <- (1 - tau) theta^- + tau theta every update (tau < 1)

Actions: ``make_env`` gives discrete envs a categorical action spec, so a single env takes a
``long`` scalar and a batch of envs ``long [num_envs]``; the replay buffer holds ``long [N]``.
``act`` returns exactly that: ``observation [*B, D] -> long [*B]``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, get_args

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.algos.base import OffPolicyAlgorithm
from lightning_mbrl.errors import ConfigError, LeftOpenUnitInterval, check_arguments, plain
from lightning_mbrl.models.critic import DiscreteQ
from lightning_mbrl.models.utils import adam, polyak_update
from lightning_mbrl.objectives import dqn as dqn_losses

Activation = Literal["relu", "silu", "tanh", "elu"]  # the keys of models.mlp.ACTIVATIONS (a test checks)
Loss = Literal["huber", "mse"]  # objectives.dqn.LOSSES (a test checks)
Exploration = Literal["epsilon", "softmax"]
EXPLORATIONS = get_args(Exploration)


class DQN(OffPolicyAlgorithm):
    def __init__(
        self,
        env: str = "CartPole-v1",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 50_000,
        init_random_frames: NonNegativeInt = 1_000,
        frames_per_iteration: PositiveInt = 1,
        updates_per_frame: PositiveInt = 1,
        batch_size: PositiveInt = 128,
        buffer_size: PositiveInt = 50_000,
        hidden: tuple[PositiveInt, ...] = (64, 64),
        activation: Activation = "relu",
        gamma: ClosedUnitInterval = 0.99,
        lr: PositiveFloat = 1e-3,
        double: bool = True,
        loss: Loss = "huber",
        max_grad_norm: PositiveFloat | None = 10.0,
        target_update_every: PositiveInt = 500,
        tau: LeftOpenUnitInterval = 1.0,
        exploration: Exploration = "epsilon",
        epsilon_start: ClosedUnitInterval = 1.0,
        epsilon_end: ClosedUnitInterval = 0.05,
        epsilon_decay_frames: NonNegativeInt = 10_000,
        temperature: PositiveFloat = 1.0,
    ) -> None:
        """
        Args:
            env: a ``make_env`` id with a discrete action space; the observation size and the
                number of actions are read from it.
            hidden: hidden widths of the Q-network (any depth; ``[]`` is a linear Q-function).
            activation: its nonlinearity, one of ``models.mlp.ACTIVATIONS`` (Young et al. use elu).
            updates_per_frame: G, gradient updates per real frame after warm-up.
            double: double-DQN target (online argmax, target value) instead of the target max.
            loss: ``"huber"`` (threshold 1, Mnih et al.'s error clipping) or ``"mse"``.
            max_grad_norm: clip the global gradient norm of each update to this; ``None`` disables.
            target_update_every: updates between hard copies of the Q-network into the target
                network; used only when ``tau == 1``.
            tau: 1 (default) means hard copies every ``target_update_every`` updates; ``tau < 1``
                means a Polyak step ``theta^- <- (1 - tau) theta^- + tau theta`` after *every*
                update instead, and ``target_update_every`` is not used.
            exploration: ``"epsilon"`` (epsilon-greedy) or ``"softmax"`` (Boltzmann: sample
                ``a ~ softmax(Q(s, .) / temperature)``).
            epsilon_start, epsilon_end, epsilon_decay_frames: epsilon falls linearly from start
                to end over the first ``epsilon_decay_frames`` real frames after
                ``init_random_frames`` (0: ``epsilon_end`` from the start), then stays there.
            temperature: the Boltzmann temperature (``exploration="softmax"`` only).

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(DQN, locals())
        super().__init__(
            env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed,
            max_frames=max_frames, init_random_frames=init_random_frames,
            frames_per_iteration=frames_per_iteration, updates_per_frame=updates_per_frame,
            batch_size=batch_size, buffer_size=buffer_size, continuous_only=False,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints
        if not self.spec.discrete:
            raise ConfigError(
                f"DQN needs a discrete action space; env {env!r} has a Box action space "
                f"({self.spec.action_dim}-dimensional)"
            )

        with torch.random.fork_rng():  # reproducible initialisation without touching global RNG
            torch.manual_seed(seed)
            self.q_net = DiscreteQ(self.spec.observation_dim, self.spec.num_actions, hidden, activation)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.target_updates = 0  # hard copies or Polyak steps made so far; saved in the checkpoint

    # ----------------------------------------------------------------------------- protocols
    def q_all(self, observation: Tensor) -> Tensor:
        """``[*B, obs_dim] -> [*B, n_actions]`` (protocols.DiscreteQFunction)."""
        return self.q_net(observation)

    def q_values(self, observation: Tensor, action: Tensor) -> Tensor:
        """``[B, obs_dim], long [B] (or [B, 1]) -> [1, B]``: Q of the given actions, with a leading
        critic dimension of 1 (protocols.QFunction)."""
        if action.dim() == observation.dim():
            action = action.squeeze(-1)
        q = self.q_all(observation).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        return q.unsqueeze(0)

    @property
    def epsilon(self) -> float:
        """The exploration rate for the next frame: linear in real frames after warm-up."""
        hp = self.hparams
        policy_frames = max(0, self.frames - hp.init_random_frames)
        if policy_frames >= hp.epsilon_decay_frames:
            return float(hp.epsilon_end)
        return hp.epsilon_start + (hp.epsilon_end - hp.epsilon_start) * policy_frames / hp.epsilon_decay_frames

    @torch.no_grad()
    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """``observation [*B, obs_dim] -> long [*B]``: greedy if ``deterministic``, else
        epsilon-greedy (the random action is uniform over all actions, the greedy one included)
        or Boltzmann sampled, as ``exploration`` says."""
        q = self.q_all(observation)
        greedy = q.argmax(dim=-1)
        if deterministic:
            return greedy
        if self.hparams.exploration == "softmax":
            return torch.distributions.Categorical(logits=q / self.hparams.temperature).sample()
        explore = torch.rand(greedy.shape, device=q.device) < self.epsilon
        uniform = torch.randint(q.shape[-1], greedy.shape, device=q.device)
        return torch.where(explore, uniform, greedy)

    # ----------------------------------------------------------------------------- optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": adam(self.q_net.parameters(), lr=self.hparams.lr)}

    def update(self, batch: TensorDictBase) -> TensorDict:
        """One TD step on a batch of transitions, then the target update; returns the losses."""
        hp = self.hparams
        target = dqn_losses.td_target(
            batch.get(keys.REWARD).squeeze(-1), batch.get(keys.TERMINATED).squeeze(-1),
            batch.get(keys.NEXT_OBSERVATION), self.q_net, self.target_net, hp.gamma, hp.double,
        )
        out = dqn_losses.q_loss(batch.get(keys.OBSERVATION), batch.get(keys.ACTION), target, self.q_net, hp.loss)
        self.apply_gradients(out["loss_q"], self.optimizer("q"), max_grad_norm=hp.max_grad_norm)
        self.updates += 1
        self.update_target()
        return out.detach()

    def update_target(self) -> None:
        """The target-network step that follows update number ``self.updates``: a hard copy when
        ``updates`` is a multiple of ``target_update_every`` (tau = 1), else nothing; with
        ``tau < 1`` a Polyak step after every update."""
        hp = self.hparams
        if hp.tau < 1.0:
            polyak_update(self.target_net, self.q_net, hp.tau)
        elif self.updates % hp.target_update_every == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        else:
            return
        self.target_updates += 1

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self.collect()
        metrics = None
        if not self.warming_up:
            for _ in range(self.updates_per_iteration):
                metrics = self.update(self.sample(self.hparams.batch_size))
            if self.hparams.exploration == "epsilon":
                metrics["epsilon"] = torch.tensor(self.epsilon)
        self.log_iteration(metrics)

    # ----------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["loop_counters"]["target_updates"] = self.target_updates
