"""Plain and batched MLPs. No Lightning imports.

``BatchedMLP`` computes E independent networks as one network: every layer is a single
``baddbmm`` over weights of shape ``[E, in, out]``. It serves the twin critics of SAC (E = 2) and
the world-model ensembles (E = 7) alike, with no Python loop over members.

Under autocast (``--trainer.precision bf16-mixed``, ``lightning_mbrl.precision``) the hidden layers run
in bf16 and every network's output layer in its parameters' dtype (fp32): Q-values, means, log-stds
and logits are never rounded to bf16.
"""

from __future__ import annotations

import contextlib
import math
from typing import Sequence

import torch
from torch import Tensor, nn

from lightning_mbrl.models.utils import seeded_generator

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


def outside_autocast(x: Tensor, dtype: torch.dtype) -> tuple[Tensor, contextlib.AbstractContextManager]:
    """``x`` in ``dtype`` and a context with autocast off on ``x``'s device if it is on there (else a
    no-op context): an output layer computed in its parameters' dtype from bf16 hidden activations."""
    if torch.is_autocast_enabled(x.device.type):
        return x.to(dtype), torch.autocast(x.device.type, enabled=False)
    return x, contextlib.nullcontext()


class OutputLinear(nn.Linear):
    """``nn.Linear`` that computes in its parameters' dtype even under autocast: a network's output
    layer (a few percent of its FLOPs), so that its outputs are not rounded to bf16. Same parameters
    and state-dict keys as ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:
        x, scope = outside_autocast(x, self.weight.dtype)
        with scope:
            return super().forward(x)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: str = "relu") -> nn.Sequential:
    """``in_dim -> hidden[0] -> ... -> out_dim`` with ``act`` between layers (none at the output); the
    output layer is an :class:`OutputLinear`."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation(act)]
        in_dim = width
    layers.append(OutputLinear(in_dim, out_dim))
    return nn.Sequential(*layers)


class BatchedLinear(nn.Module):
    """E independent affine maps: ``y[e] = x[e] @ weight[e] + bias[e]``.

    Shapes: ``x [E, B, in] -> y [E, B, out]``; ``weight [E, in, out]``, ``bias [E, 1, out]``.
    Each member is initialised like ``nn.Linear`` (uniform, bound ``1/sqrt(in)``).
    """

    def __init__(self, n_members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.n_members, self.in_dim, self.out_dim = n_members, in_dim, out_dim
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, in_dim={self.in_dim}, out_dim={self.out_dim}"


class BatchedMLP(nn.Module):
    """E independent MLPs of the same shape, computed together.

    ``forward(x)`` takes ``x [B, in]`` (the same input for every member) or ``x [E, B, in]``
    (one input per member) and returns ``[E, B, out]``.
    """

    def __init__(self, n_members: int, in_dim: int, hidden: Sequence[int], out_dim: int, act: str = "relu") -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.n_members = n_members
        self.layers = nn.ModuleList(BatchedLinear(n_members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # shared input: a stride-0 view, no copy
            x = x.expand(self.n_members, *x.shape)
        h = x
        for layer in self.layers[:-1]:
            h = self.act(layer(h))
        out = self.layers[-1]
        h, scope = outside_autocast(h, out.weight.dtype)  # the output layer in fp32 (module docstring)
        with scope:
            return out(h)


def seeded_members_(net: BatchedMLP, seeds: Sequence[int], stream: int = 0) -> BatchedMLP:
    """Re-initialise member ``i`` of ``net`` from its own generator, seeded by ``(seeds[i], stream)``.

    The init of a member then depends on its seed only, never on the other members: member ``i`` of a
    network built for seeds ``[0, ..., 29]`` equals member 0 of one built for ``[seeds[i]]``, which
    makes S independent runs one batched computation (paper 001's many seeds in one process).
    ``stream`` separates networks of the same seed (Q, model heads). Same distribution as
    ``BatchedLinear``'s own init.
    """
    if len(seeds) != net.n_members:
        raise ValueError(f"{len(seeds)} seeds for a network of {net.n_members} members")
    with torch.no_grad():
        for i, seed in enumerate(seeds):
            generator = seeded_generator(seed, stream)
            for layer in net.layers:
                bound = 1.0 / math.sqrt(layer.in_dim)
                w = torch.empty(layer.in_dim, layer.out_dim).uniform_(-bound, bound, generator=generator)
                b = torch.empty(1, layer.out_dim).uniform_(-bound, bound, generator=generator)
                layer.weight[i].copy_(w)
                layer.bias[i].copy_(b)
    return net
