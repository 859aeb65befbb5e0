"""T0: the one discounted, done-masked k-step return (``objectives.returns``) against hand-computed
oracles; BOOTS, MPC, MBPO's kept transitions and MBSAC's imagined terminals all go through it."""

from __future__ import annotations

import pytest
import torch

from lightning_mbrl.objectives.returns import alive_mask, discounted_return

F64 = torch.float64


def test_alive_mask_keeps_the_terminating_step_and_drops_what_follows():
    terminated = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)  # [t, n]
    expected = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(alive_mask(terminated), expected)
    assert torch.equal(alive_mask(terminated.unsqueeze(-1)), expected.unsqueeze(-1))  # trailing dims kept


def test_discounted_return_matches_the_hand_computed_sum():
    reward = torch.tensor([[1.0, 2.0], [10.0, 20.0], [100.0, float("nan")]], dtype=F64)  # [k=3, N=2]
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    bootstrap = torch.tensor([1000.0, float("inf")], dtype=F64)
    g = 0.5
    ret = discounted_return(reward, terminated, discount=g, bootstrap=bootstrap)
    # row 0 never terminates; row 1 terminates at step 1: its reward counts, the NaN and inf after it do not
    expected = torch.tensor([1 + g * 10 + g**2 * 100 + g**3 * 1000, 2 + g * 20], dtype=F64)
    torch.testing.assert_close(ret, expected, rtol=0, atol=0)
    torch.testing.assert_close(discounted_return(reward[:2], None), reward[:2].sum(0))
    with pytest.raises(ValueError, match="not both"):
        discounted_return(reward, terminated, continue_prob=torch.ones_like(reward))


def test_the_continuation_weighted_return_is_the_expectation_of_the_masked_one():
    torch.manual_seed(0)
    k, n = 4, 6
    reward, bootstrap = torch.randn(k, n, dtype=F64), torch.randn(n, dtype=F64)
    cont = torch.rand(k, n, dtype=F64).requires_grad_(True)
    ret = discounted_return(reward, discount=0.9, bootstrap=bootstrap, continue_prob=cont)
    # oracle: sum over the 2^k termination patterns weighted by their probability
    expected = torch.zeros(n, dtype=F64)
    for pattern in range(2**k):
        done = torch.tensor([(pattern >> t) & 1 for t in range(k)], dtype=torch.bool)[:, None].expand(k, n)
        prob = torch.where(done, 1 - cont, cont).prod(0)
        expected = expected + prob * discounted_return(reward, done, discount=0.9, bootstrap=bootstrap)
    torch.testing.assert_close(ret, expected)
    # hard 0/1 continuation probabilities give the masked return exactly
    done = torch.rand(k, n) < 0.3
    torch.testing.assert_close(
        discounted_return(reward, discount=0.9, bootstrap=bootstrap, continue_prob=(~done).to(F64)),
        discounted_return(reward, done, discount=0.9, bootstrap=bootstrap),
    )
    ret.sum().backward()
    assert cont.grad is not None and cont.grad.abs().sum() > 0
