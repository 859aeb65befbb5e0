"""The "simple model" of paper 001 (Young et al. 2023, Section 2 and Appendix; REFERENCE 4.3): a
feed-forward model of binary observations. No Lightning imports.

Three separate MLPs (3 x 200 ELU by default), each on ``concat(observation, one_hot(action))``:

- reward: the mean of a Gaussian with sigma = 1 (loss ``0.5 (r - mu)^2``, its negative
  log-likelihood up to a constant); rollouts use the mean;
- continuation: one Bernoulli logit for "not terminated" (loss: binary cross-entropy);
- next observation: one independent Bernoulli logit per feature (loss: binary cross-entropy summed
  over features, masked out on terminal transitions, whose next observation says nothing).

The three loss weights are 1. Rollouts sample the next observation from ``Bernoulli(sigmoid(logit))``
(the official code passes the raw logit to its Bernoulli sampler as if it were a probability; this
follows the paper, docs/generalization.md).

Members: every network has a leading member axis ``E`` (``BatchedMLP``); paper 001 uses it for S
independent seeds (member ``s`` is seed ``s``'s model). Shapes: ``observation [E, B, D]``,
``action long [E, B]``, ``reward [E, B]``, ``terminated bool [E, B]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl.models.mlp import BatchedMLP, seeded_members_

#: ``seeded_members_`` streams of the three heads (the Q-network of the same seed uses stream 0).
HEAD_STREAMS = {"reward": 1, "continuation": 2, "observation": 3}


class BernoulliModel(nn.Module):
    def __init__(self, seeds: Sequence[int], observation_dim: int, num_actions: int,
                 hidden: Sequence[int] = (200, 200, 200), act: str = "elu") -> None:
        super().__init__()
        n, in_dim = len(seeds), observation_dim + num_actions
        self.num_actions = num_actions
        self.reward = seeded_members_(BatchedMLP(n, in_dim, hidden, 1, act), seeds, HEAD_STREAMS["reward"])
        self.continuation = seeded_members_(BatchedMLP(n, in_dim, hidden, 1, act), seeds, HEAD_STREAMS["continuation"])
        self.observation = seeded_members_(BatchedMLP(n, in_dim, hidden, observation_dim, act), seeds,
                                           HEAD_STREAMS["observation"])

    def forward(self, observation: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(reward mean [E, B], continuation logit [E, B], next-observation logits [E, B, D])``."""
        x = torch.cat([observation, F.one_hot(action, self.num_actions).to(observation.dtype)], dim=-1)
        return self.reward(x).squeeze(-1), self.continuation(x).squeeze(-1), self.observation(x)

    def loss(self, observation: Tensor, action: Tensor, reward: Tensor, next_observation: Tensor,
             terminated: Tensor) -> TensorDict:
        """Per-member losses ``[E]``: ``loss_reward``, ``loss_continuation``, ``loss_observation``
        (each a mean over the batch; module docstring). Sum them (and over members) to train."""
        mean, cont_logit, obs_logits = self(observation, action)
        alive = (~terminated.bool()).to(mean.dtype)
        obs_nll = F.binary_cross_entropy_with_logits(obs_logits, next_observation, reduction="none").sum(-1)
        return TensorDict({
            "loss_reward": (0.5 * (reward - mean) ** 2).mean(-1),
            "loss_continuation": F.binary_cross_entropy_with_logits(cont_logit, alive, reduction="none").mean(-1),
            "loss_observation": (obs_nll * alive).mean(-1),
        }, batch_size=[])

    @torch.no_grad()
    def sample(self, observation: Tensor, action: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One imagined step: ``(next_observation [E, B, D] in {0, 1}, reward [E, B], continue_prob [E, B])``;
        feature ``d`` is 1 where ``uniform[..., d] < sigmoid(logit_d)`` (``uniform [E, B, D]`` in [0, 1))."""
        mean, cont_logit, obs_logits = self(observation, action)
        next_observation = (uniform < torch.sigmoid(obs_logits)).to(observation.dtype)
        return next_observation, mean, torch.sigmoid(cont_logit)
