"""The discounted, done-masked k-step return: one function for every planner, rollout and batch.

BOOTS (Eq. 5 of paper 000), MPC (paper 004, Section 5.4), MBPO's kept rollout transitions and
MBSAC's imagined terminals all use the same convention:

    m_0 = 1,  m_{t+1} = m_t * (1 - d_t)                                  (alive mask)
    G   = sum_{t<k} gamma^t m_t r_t  +  gamma^k m_k V(s_k)               (k-step return)

The terminating step's own reward counts; nothing after it does, the bootstrap included. With a
learned continuation probability ``c_t = P(not d_t)`` (MAAC, the gridworld models of paper 001)
the hard mask is replaced by its expectation ``m_{t+1} = m_t * c_t``, which is differentiable.
No Lightning imports.
"""

from __future__ import annotations

import torch
from torch import Tensor


def alive_mask(terminated: Tensor) -> Tensor:
    """``terminated bool [H, *B] -> mask bool [H, *B]``: ``mask[t]`` is False once a step before
    ``t`` terminated (the terminating step itself is alive)."""
    alive = torch.ones_like(terminated[:1], dtype=torch.bool)
    masks = [alive]
    for t in range(terminated.shape[0] - 1):
        alive = alive & ~terminated[t : t + 1]
        masks.append(alive)
    return torch.cat(masks, dim=0)


def discounted_return(
    reward: Tensor,
    terminated: Tensor | None = None,
    *,
    discount: float = 1.0,
    bootstrap: Tensor | None = None,
    continue_prob: Tensor | None = None,
) -> Tensor:
    """``G = sum_{t<k} gamma^t m_t r_t + gamma^k m_k bootstrap`` over the leading (time) dim.

    ``reward [k, *B]``; ``terminated bool [k, *B]`` (``None``: never); ``bootstrap [*B]`` the value
    of the state after the last step (``None``: 0); ``continue_prob [k, *B]`` replaces the hard mask
    by ``m_{t+1} = m_t * c_t`` (then ``terminated`` must be ``None``). Masked terms are replaced,
    not multiplied, so a NaN or inf after a termination is harmless. Returns ``[*B]``; keeps the
    graph to every input.
    """
    if terminated is not None and continue_prob is not None:
        raise ValueError("give terminated (a hard mask) or continue_prob (its expectation), not both")
    ret = torch.zeros_like(reward[0])
    alive = torch.ones_like(reward[0], dtype=torch.bool)
    weight = None
    scale = 1.0
    for t in range(reward.shape[0]):
        if weight is None:
            ret = ret + scale * torch.where(alive, reward[t], 0.0)
        else:
            ret = ret + scale * weight * reward[t]
        if terminated is not None:
            alive = alive & ~terminated[t]
        elif continue_prob is not None:
            weight = continue_prob[t] if weight is None else weight * continue_prob[t]
        scale *= discount
    if bootstrap is not None:
        ret = ret + scale * (torch.where(alive, bootstrap, 0.0) if weight is None else weight * bootstrap)
    return ret
