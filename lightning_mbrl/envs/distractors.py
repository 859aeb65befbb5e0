"""Gaussian distractors: uninformative observation dimensions (OMD, paper 003, Section 7 and Appendix D:
"we add distracting states by sampling noise from a standard gaussian and vary the number of
distractors", 2^4 ... 2^9 of them on CartPole). No Lightning.

``add_distractors(env, n, seed)`` wraps any env of the factory (one env or a batch) so that every
observation it returns, at reset and at every step, has ``n`` fresh i.i.d. ``N(0, 1)`` values appended
along its last dimension: ``observation [*B, D] -> [*B, D + n]``, the observation spec widened to match
(unbounded). This is what the official code's MuJoCo wrapper does (``np.random.randn(d)`` appended to
every observation, REFERENCE 3.2); its CartPole wrapper is not in the repository.

Reproducibility: the noise comes from the transform's own ``torch.Generator``, never the global RNG,
seeded from the env's seed (its own stream of that seed, apart from the env's dynamics). Two envs built
with the same seed return the same distractors, and ``env.set_seed(seed)`` reseeds the generator with
the env (evaluators reseed their env before each evaluation for common random numbers). The generator
state is plain tensors (:meth:`GaussianDistractors.generator_state`) for exact resumes.
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDictBase
from torch import Tensor
from torchrl.data import Composite, Unbounded
from torchrl.envs import EnvBase, Transform, TransformedEnv

from lightning_mbrl import keys

#: The stream of a seed that the distractors draw from (the env's own dynamics use the seed itself).
DISTRACTOR_STREAM = 1717


def _generator_seed(seed: int | None) -> int:
    """A 63-bit seed for ``(seed, DISTRACTOR_STREAM)``; ``None``: a draw from the global torch RNG."""
    if seed is None:
        return int(torch.randint(2**62, ()).item())
    return int(np.random.SeedSequence([int(seed) % 2**63, DISTRACTOR_STREAM]).generate_state(2, np.uint64)[0] >> 1)


class GaussianDistractors(Transform):
    """Append ``num_distractors`` standard-normal values to ``"observation"`` at every reset and step."""

    def __init__(self, num_distractors: int, seed: int | None = None) -> None:
        if not isinstance(num_distractors, int) or isinstance(num_distractors, bool) or num_distractors < 1:
            raise ValueError(f"num_distractors must be a positive int, got {num_distractors!r}")
        super().__init__(in_keys=[keys.OBSERVATION], out_keys=[keys.OBSERVATION])
        self.num_distractors = num_distractors
        self.generator = torch.Generator()
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        """Restart the noise stream of ``seed`` (``None``: a seed drawn from the global torch RNG)."""
        self.generator.manual_seed(_generator_seed(seed))

    def generator_state(self) -> Tensor:
        return self.generator.get_state()

    def load_generator_state(self, state: Tensor) -> None:
        self.generator.set_state(state)

    def _apply_transform(self, observation: Tensor) -> Tensor:
        shape = (*observation.shape[:-1], self.num_distractors)
        noise = torch.randn(shape, generator=self.generator, dtype=observation.dtype)
        return torch.cat([observation, noise.to(observation.device)], dim=-1)

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def _inv_call(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The base env gets its own observation back (without the distractors): a batched env copies the
        input observation of the members it does not step (partial steps) into its output."""
        observation = tensordict.get(keys.OBSERVATION, None)
        if observation is not None:
            tensordict.set(keys.OBSERVATION, observation[..., : -self.num_distractors])
        return tensordict

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        spec = observation_spec[keys.OBSERVATION]
        shape = (*spec.shape[:-1], spec.shape[-1] + self.num_distractors)
        observation_spec[keys.OBSERVATION] = Unbounded(shape=shape, dtype=spec.dtype, device=spec.device)
        return observation_spec


class DistractedEnv(TransformedEnv):
    """A ``TransformedEnv`` whose ``set_seed`` reseeds its ``GaussianDistractors`` too (TorchRL's own
    ``TransformedEnv.set_seed`` seeds only the base env)."""

    @property
    def distractors(self) -> GaussianDistractors:
        return self.transform

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        self.distractors.seed(seed)
        return super().set_seed(seed, static_seed=static_seed)


def add_distractors(env: EnvBase, num_distractors: int, seed: int | None = None) -> DistractedEnv:
    """``env`` with ``num_distractors`` Gaussian dimensions appended to its observation, their stream
    seeded by ``seed`` (the seed ``env`` was built with: the env itself is not reseeded here)."""
    return DistractedEnv(env, GaussianDistractors(num_distractors, seed))


def find_distractors(env: EnvBase) -> GaussianDistractors | None:
    """The distractor transform of an env built by :func:`add_distractors`, else ``None``."""
    return env.distractors if isinstance(env, DistractedEnv) else None
