"""Offline DQN with experience replay or with a learned model, S seeds as one batched run: the 3x3
experiment of paper 001 (Young et al. 2023, Section 2, Figure 1).

One ``training_step`` is one update of every seed, on a fixed dataset (``envs.grid3x3``, no
collection):

    agent "er":     sample batch_size transitions            -> DQN step on them
    agent "model":  sample 32 transitions -> one model step on them (models.simple_model)
                    -> batch_size / rollout_length starts (the first of a fresh sample; the 32 model
                       transitions' starts when rollout_length = 10, as the official code)
                    -> rollouts of rollout_length steps with softmax(Q / temperature) actions
                    -> DQN step on the batch_size imagined transitions, continuation-weighted
    every target_update_every updates: copy the Q-network into the target network

With ``model_first_updates = n > 0`` the model agent instead takes n model steps first (32 samples
each) and then keeps the model fixed while Q learns on its rollouts: Section 2's protocol ("We
train the model on transitions from the dataset and subsequently train the action-value function on
model rollouts"). ``n = 0`` interleaves one model step per update, as the online code does.

So every agent's Q step sees the same number of transitions (the paper controls it). Networks are
3 x 200 ELU, gamma 0.9, AdamW (betas 0.9 / 0.99, eps 1e-5, decoupled weight decay 1e-6 per step
as the official code: ``x <- x - lr adam - 1e-6 x``), model step size 2e-4 (REFERENCE 4.3).

Seeds: ``seeds`` consecutive seeds from ``seed``; seed ``s`` has its own initial parameters
(``models.mlp.seeded_members_``) and its own generator for every random draw, and AdamW is
elementwise, so seed ``s`` follows the same path as a run of that seed alone (to float rounding of
the batched matrix multiplies; a test checks). Optimizers by name: ``q`` and ``model``.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.algos.seeded import SeededAgent
from lightning_mbrl.envs import grid3x3
from lightning_mbrl.errors import ConfigError, check_arguments
from lightning_mbrl.models.mlp import BatchedMLP, seeded_members_
from lightning_mbrl.models.simple_model import BernoulliModel
from lightning_mbrl.models.utils import seeded_generator
from lightning_mbrl.objectives import dyna_dqn

Agent = Literal["er", "model"]
Starts = Literal["dataset", "evaluation"]
GENERATOR_STREAM = 100  # seeded_members_ streams 0-3 are the networks


class OfflineDynaDQN(SeededAgent):
    def __init__(
        self,
        coverage: grid3x3.Coverage = "path_to_goal",
        agent: Agent = "model",
        rollout_length: PositiveInt = 10,
        seed: int = 0,
        seeds: PositiveInt = 30,
        updates: PositiveInt = 20_000,
        batch_size: PositiveInt = 320,
        model_batch_size: PositiveInt = 32,
        hidden: tuple[PositiveInt, ...] = (200, 200, 200),
        gamma: float = 0.9,
        lr: PositiveFloat = 1e-4,
        model_lr: PositiveFloat = 2e-4,
        temperature: PositiveFloat = 1.0,
        target_update_every: PositiveInt = 100,
        log_every: PositiveInt = 500,
        model_first_updates: NonNegativeInt = 0,
        starts: Starts = "dataset",
    ) -> None:
        """``starts="evaluation"`` (a diagnostic, not the paper's protocol) draws the model agent's rollout
        starts only from the dataset's evaluation-layout transitions; ``"dataset"`` from all of it."""
        check_arguments(OfflineDynaDQN, locals())
        super().__init__()
        if agent == "model" and batch_size % rollout_length:
            raise ConfigError(f"batch_size ({batch_size}) must be a multiple of rollout_length ({rollout_length})")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.seed_list = list(range(seed, seed + seeds))
        self.data = grid3x3.dataset(coverage)
        # starts="evaluation": the observations the rollouts may start from (None: the sampled transitions')
        self.start_obs = (self.data[grid3x3.evaluation_rows(coverage)][keys.OBSERVATION]
                          if starts == "evaluation" else None)
        if self.start_obs is not None and (agent != "model" or len(self.start_obs) == 0):
            raise ConfigError(f"starts=evaluation needs agent=model and a dataset with evaluation-layout "
                              f"transitions, got agent={agent}, coverage={coverage}")
        self.eval_cells = grid3x3.evaluation_cells()
        self.q = seeded_members_(BatchedMLP(seeds, grid3x3.OBS_DIM, hidden, grid3x3.NUM_ACTIONS, "elu"), self.seed_list)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.model = BernoulliModel(self.seed_list, grid3x3.OBS_DIM, grid3x3.NUM_ACTIONS, hidden) if agent == "model" else None
        self.generators = [seeded_generator(s, GENERATOR_STREAM) for s in self.seed_list]
        self.updates_done = 0
        self.model_steps = 0
        hp = self.hparams
        self.n_starts = hp.batch_size // rollout_length if agent == "model" else 0
        self.n_sampled = max(model_batch_size, self.n_starts) if agent == "model" else batch_size


    # ------------------------------------------------------------------ the update
    def _model_step(self, real: TensorDict) -> dict[str, Tensor]:
        losses = self.model.loss(real[keys.OBSERVATION], real[keys.ACTION], real[keys.REWARD],
                                 real[keys.NEXT_OBSERVATION], real[keys.TERMINATED])
        self._step("model", sum(losses[k].sum() for k in losses.keys()))
        self.model_steps += 1
        return {k: v.detach() for k, v in losses.items()}

    def fit_model(self, steps: int) -> dict[str, Tensor]:
        """``steps`` model steps, each on ``model_batch_size`` transitions per seed; the last losses."""
        n_data, logs = len(self.data), {}
        for _ in range(steps):
            index = (self._uniforms(self.hparams.model_batch_size) * n_data).long().clamp_max(n_data - 1)
            logs = self._model_step(self.data.to(self.device)[index])
        return logs

    @torch.no_grad()
    def model_accuracy(self) -> Tensor:
        """``[S]``: the fraction of the evaluation layouts' non-terminal transitions (all of them, seen in
        training or not) whose most likely next agent cell under the model is the true one (the paper's
        footnote 3 checks the same)."""
        data = torch.cat([grid3x3.transitions(layout) for layout in grid3x3.EVALUATION_LAYOUTS]).to(self.device)
        data = data[~data[keys.TERMINATED]]
        obs = data[keys.OBSERVATION].expand(len(self.seed_list), *data[keys.OBSERVATION].shape)
        _, _, logits = self.model(obs, data[keys.ACTION].expand(len(self.seed_list), len(data)))
        return (logits[..., : grid3x3.CELLS].argmax(-1) == data["next_cell"]).float().mean(-1)

    def update(self) -> dict[str, Tensor]:
        """One update of every seed; returns per-seed losses ``[S]``."""
        hp, n_data = self.hparams, len(self.data)
        n_roll = hp.rollout_length * self.n_starts * (grid3x3.NUM_ACTIONS + grid3x3.OBS_DIM) if self.model else 0
        u = self._uniforms(self.n_sampled + n_roll)
        index = (u[:, : self.n_sampled] * n_data).long().clamp_max(n_data - 1)
        sample = self.data.to(self.device)[index]  # [S, n_sampled]
        logs: dict[str, Tensor] = {}
        if self.model is None:
            batch = sample
        else:
            if hp.model_first_updates == 0:
                logs.update(self._model_step(sample[:, : hp.model_batch_size]))
            elif self.model_steps == 0:
                self.fit_model(hp.model_first_updates)
            shape = (len(self.seed_list), hp.rollout_length, self.n_starts, grid3x3.NUM_ACTIONS + grid3x3.OBS_DIM)
            starts = sample[:, : self.n_starts][keys.OBSERVATION]
            if self.start_obs is not None:  # the same uniforms, mapped onto the evaluation-layout rows only
                pick = (u[:, : self.n_starts] * len(self.start_obs)).long().clamp_max(len(self.start_obs) - 1)
                starts = self.start_obs.to(self.device)[pick]
            batch = dyna_dqn.imagine(self.model, self.q, starts,
                                     hp.rollout_length, hp.temperature, u[:, self.n_sampled:].reshape(shape))
        q_losses = dyna_dqn.td_loss(self.q, self.q_target, batch, hp.gamma)
        self._step("q", q_losses["loss_q"].sum())
        logs.update({k: v.detach() for k, v in q_losses.items()})
        self.updates_done += 1
        if self.updates_done % hp.target_update_every == 0:
            self.q_target.load_state_dict(self.q.state_dict())
        return logs

    @torch.no_grad()
    def greedy_correct(self) -> Tensor:
        """Bool ``[S, 12]``: seed ``s``'s greedy action is the correct one in evaluation cell ``c``
        (``envs.grid3x3.evaluation_cells``)."""
        cells = self.eval_cells.to(self.device)
        return self.q(cells[keys.OBSERVATION]).argmax(-1) == cells["correct_action"]

    # ------------------------------------------------------------------ Lightning
    def train_dataloader(self):
        return range(self.hparams.updates - self.updates_done)

    def training_step(self, batch: int, batch_idx: int) -> None:
        logs = self.update()
        if self.updates_done % self.hparams.log_every == 0 or self.updates_done == self.hparams.updates:
            metrics = {f"train/{k}": v.mean().item() for k, v in logs.items()}
            metrics["eval/correct_fraction"] = self.greedy_correct().float().mean().item()
            self._log_row(metrics, self.updates_done)
