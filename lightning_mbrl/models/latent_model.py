"""Paper 001's latent-space models (Young et al. 2023, Section 4 and Appendix D; REFERENCE 4.3): a
Dreamer-like world model without the recurrent state (the environments are Markov), with categorical
or Gaussian latents. No Lightning imports.

Five networks (3 x 200 ELU by default), each a ``BatchedMLP``; ``z`` is a latent, ``a`` a one-hot action:

- encoder (posterior) ``q(z | o)``;
- transition (prior) ``p(z' | z, a)``;
- reward ``r(z, a)``: the mean of a Gaussian with sigma = 1 (loss ``0.5 (r - mu)^2``); rollouts use the mean;
- continuation ``c(z, a)``: one Bernoulli logit for "not terminated" (loss: binary cross-entropy);
- decoder ``o(z)``: Bernoulli logits of the *current* observation (loss: binary cross-entropy summed
  over features, masked out on terminal transitions, as the official code does).

Latents: ``kind="categorical"``: ``num_features`` (32) one-hot variables of ``num_classes`` (32) classes,
flattened to ``num_features * num_classes`` (1024), sampled with straight-through gradients,
``z = one_hot + p - sg(p)`` (forward: the one-hot sample; backward: the gradient of the softmax ``p``).
``kind="gaussian"``: ``num_features`` (32) dimensions, ``z = mu + std eps`` (reparameterised; the official
config's ``latent_type`` is ``"gaussian"``, not its ``"tanh_gaussian"``, so no tanh) with
``std = max(2 sigmoid(x / 2), 1e-6) + min_std`` in the encoder (``min_std`` 0.1) and
``std = max(2 sigmoid(x / 2), 1e-6)`` in the transition (the official code adds ``min_std`` to the
encoder only).

Loss of one real transition ``(o, a, r, o', terminated)``, every weight 1 but the KL's::

    z ~ q(. | o)                                              (with gradients: ST / reparameterised)
    loss_reward         = 0.5 (r - r(z, a))^2
    loss_continuation   = BCE(c(z, a), not terminated)
    loss_reconstruction = (not terminated) * sum_d BCE(o(z)_d, o_d)
    loss_kl             = 0.8 KL(sg(q(. | o')) || p(. | z, a)) + 0.2 KL(q(. | o') || sg(p(. | z, a)))

(KL balancing, Hafner et al. 2021; posterior-entropy weight 0; summed over latent variables and,
categorical, classes.) The 0.8 part trains the prior (and, through its input ``z``, the encoder),
the 0.2 part trains the encoder on ``o'`` only. The KL is not masked on terminal transitions: the
official code masks the reconstruction only.

Randomness comes from passed-in uniforms in [0, 1) (so that per-seed generators stay with the
caller), ``noise_dim`` (= ``num_features``) of them per latent sample: categorical variables by inverse
CDF, Gaussian dimensions by ``eps = Phi^-1(u)``.

Members: every network has a leading member axis ``E`` (``BatchedMLP``), one per seed. Shapes:
``observation [E, B, D]``, ``action long [E, B]``, ``reward [E, B]``, ``terminated bool [E, B]``,
``latent [E, B, latent_dim]``, ``uniform [E, B, noise_dim]``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, distributions, nn

from lightning_mbrl.models.mlp import BatchedMLP, seeded_members_

Kind = Literal["categorical", "gaussian"]
#: ``seeded_members_`` streams of the five networks (the Q-network of the same seed uses stream 0,
#: the simple model's heads 1-3).
STREAMS = {"encoder": 4, "transition": 5, "reward": 6, "continuation": 7, "decoder": 8}
#: KL balancing (REFERENCE 4.3, official configs ``KL_prior_weight`` / ``KL_posterior_weight``).
KL_PRIOR_WEIGHT = 0.8
#: The transition's (prior's) ``min_std``: the official code adds ``min_std`` to the encoder's std only.
PRIOR_MIN_STD = 0.0
#: Lower bound of a std before ``min_std`` is added (the official code's ``min_denom``).
MIN_DENOMINATOR = 1e-6
#: Uniforms are clamped to ``[EPS, 1 - EPS]`` before ``Phi^-1`` (``torch.rand`` can return 0).
EPS = 1e-7


def straight_through_one_hot(logits: Tensor, uniform: Tensor) -> Tensor:
    """One-hot samples ``[*B, C]`` of ``Categorical(softmax(logits))`` (``logits [*B, C]``), class ``k``
    where ``cdf_{k-1} <= uniform < cdf_k`` (``uniform [*B]`` in [0, 1)), with straight-through
    gradients: the forward value is exactly the one-hot, the gradient that of ``softmax(logits)``."""
    probs = torch.softmax(logits, -1)
    with torch.no_grad():
        index = (probs.cumsum(-1)[..., :-1] <= uniform.unsqueeze(-1)).sum(-1)
        one_hot = F.one_hot(index, logits.shape[-1]).to(probs.dtype)
    return one_hot + (probs - probs.detach())


def gaussian_std(pre_activation: Tensor, min_std: float) -> Tensor:
    """The official ``sigmoid2`` std: ``max(2 sigmoid(x / 2), 1e-6) + min_std``, in ``(min_std, 2 + min_std)``."""
    return (2 * torch.sigmoid(pre_activation / 2)).clamp_min(MIN_DENOMINATOR) + min_std


def balanced_kl(posterior: distributions.Distribution, prior: distributions.Distribution,
                posterior_sg: distributions.Distribution, prior_sg: distributions.Distribution,
                prior_weight: float = KL_PRIOR_WEIGHT) -> Tensor:
    """KL balancing: ``prior_weight KL(sg(q) || p) + (1 - prior_weight) KL(q || sg(p))`` summed over
    the latent variables (the distributions' last batch axis), ``[*B]``. ``posterior_sg`` / ``prior_sg``
    are the same distributions built from detached parameters (the named stop-gradients)."""
    to_prior = distributions.kl_divergence(posterior_sg, prior).sum(-1)
    to_posterior = distributions.kl_divergence(posterior, prior_sg).sum(-1)
    return prior_weight * to_prior + (1 - prior_weight) * to_posterior


class LatentModel(nn.Module):
    def __init__(self, seeds: Sequence[int], observation_dim: int, num_actions: int, kind: Kind,
                 hidden: Sequence[int] = (200, 200, 200), num_features: int = 32, num_classes: int = 32,
                 min_std: float = 0.1, act: str = "elu") -> None:
        super().__init__()
        if kind not in ("categorical", "gaussian"):
            raise ValueError(f"kind must be 'categorical' or 'gaussian', got {kind!r}")
        n = len(seeds)
        self.kind, self.num_actions, self.min_std = kind, num_actions, min_std
        self.num_features, self.num_classes = num_features, num_classes
        #: Length of a (flattened) latent, the Q-network's input.
        self.latent_dim = num_features * num_classes if kind == "categorical" else num_features
        #: Uniforms per latent sample.
        self.noise_dim = num_features
        # raw head outputs: logits, or (mu, std pre-activation)
        params = num_features * num_classes if kind == "categorical" else 2 * num_features
        step_in = self.latent_dim + num_actions

        def net(name: str, in_dim: int, out_dim: int) -> BatchedMLP:
            return seeded_members_(BatchedMLP(n, in_dim, hidden, out_dim, act), seeds, STREAMS[name])

        self.encoder = net("encoder", observation_dim, params)
        self.transition = net("transition", step_in, params)
        self.reward = net("reward", step_in, 1)
        self.continuation = net("continuation", step_in, 1)
        self.decoder = net("decoder", self.latent_dim, observation_dim)

    # ------------------------------------------------------------------ distributions
    def distribution(self, params: Tensor, min_std: float) -> distributions.Distribution:
        """The latent distribution of raw head outputs ``params [*B, P]``, batch shape ``[*B, num_features]``:
        ``Categorical`` over ``num_classes``, or ``Normal(mu, gaussian_std(x, min_std))``."""
        if self.kind == "categorical":
            return distributions.Categorical(logits=params.unflatten(-1, (self.num_features, self.num_classes)))
        mu, pre_std = params.chunk(2, dim=-1)
        return distributions.Normal(mu, gaussian_std(pre_std, min_std))

    def rsample(self, dist: distributions.Distribution, uniform: Tensor) -> Tensor:
        """A differentiable latent ``[*B, latent_dim]`` from ``uniform [*B, num_features]`` (module docstring)."""
        if self.kind == "categorical":
            return straight_through_one_hot(dist.logits, uniform).flatten(-2)
        eps = torch.special.ndtri(uniform.clamp(EPS, 1 - EPS))
        return dist.loc + dist.scale * eps

    def posterior(self, observation: Tensor) -> distributions.Distribution:
        """``q(z | o)``, batch shape ``[E, B, num_features]``."""
        return self.distribution(self.encoder(observation), self.min_std)

    def _step_input(self, latent: Tensor, action: Tensor) -> Tensor:
        return torch.cat([latent, F.one_hot(action, self.num_actions).to(latent.dtype)], dim=-1)

    # ------------------------------------------------------------------ the paper's verbs
    def features(self, observation: Tensor, uniform: Tensor) -> Tensor:
        """The latent Q sees for real observations: a sample ``[E, B, latent_dim]`` of ``q(z | o)``
        (the official agent acts and evaluates on a sampled latent, not on the mode). Differentiable."""
        return self.rsample(self.posterior(observation), uniform)

    @torch.no_grad()
    def sample(self, latent: Tensor, action: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One imagined step in latent space: ``(next latent [E, B, latent_dim] ~ p(. | z, a),
        reward mean [E, B], continue_prob [E, B])``. No graph (rollouts are data for the Q step)."""
        x = self._step_input(latent, action)
        next_latent = self.rsample(self.distribution(self.transition(x), PRIOR_MIN_STD), uniform)
        return next_latent, self.reward(x).squeeze(-1), torch.sigmoid(self.continuation(x).squeeze(-1))

    def loss(self, observation: Tensor, action: Tensor, reward: Tensor, next_observation: Tensor,
             terminated: Tensor, uniform: Tensor) -> TensorDict:
        """Per-member losses ``[E]`` (each a mean over the batch; module docstring): ``loss_reward``,
        ``loss_continuation``, ``loss_reconstruction``, ``loss_kl``. Sum them (and over members) to
        train. ``uniform [E, B, noise_dim]`` draws the latent of ``observation``."""
        latent = self.features(observation, uniform)
        x = self._step_input(latent, action)
        alive = (~terminated.bool()).to(latent.dtype)
        recon = F.binary_cross_entropy_with_logits(self.decoder(latent), observation, reduction="none").sum(-1)
        prior_params, posterior_params = self.transition(x), self.encoder(next_observation)
        kl = balanced_kl(self.distribution(posterior_params, self.min_std),
                         self.distribution(prior_params, PRIOR_MIN_STD),
                         self.distribution(posterior_params.detach(), self.min_std),  # named stop-gradients
                         self.distribution(prior_params.detach(), PRIOR_MIN_STD))
        return TensorDict({
            "loss_reward": (0.5 * (reward - self.reward(x).squeeze(-1)) ** 2).mean(-1),
            "loss_continuation": F.binary_cross_entropy_with_logits(
                self.continuation(x).squeeze(-1), alive, reduction="none").mean(-1),
            "loss_reconstruction": (recon * alive).mean(-1),
            "loss_kl": kl.mean(-1),
        }, batch_size=[])
