"""Unit: the runtime snapshots behind exact resume (envs/state.py, data/snapshot.py) and the rank
collectives (distributed.py)."""

import random

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_mbrl.data.collection import make_replay_buffer
from lightning_mbrl.data.snapshot import load_replay_state, load_rng_state, replay_state, rng_state
from lightning_mbrl.distributed import RankSync
from lightning_mbrl.envs import make_env
from lightning_mbrl.envs.state import env_state, load_env_state


def _actions(env, generator):
    spec = env.action_spec
    if spec.dtype.is_floating_point:
        return torch.rand(spec.shape, generator=generator) * 2 - 1
    return torch.randint(spec.space.n, (), generator=generator)


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Humanoid-v5", "Hopper-v5", "Pendulum-v1", "CartPole-v1",
                                    "pwl/semi-rand-0"])
def test_a_restored_env_steps_bit_identically_through_resets(env_id):
    """Run 37 steps, snapshot, restore into an env built with another seed and stepped elsewhere, then
    step both with the same actions past several time limits (the resets draw from the restored
    generator): every observation, reward and done flag is equal."""
    a = make_env(env_id, seed=0, max_episode_steps=25)
    gen = torch.Generator().manual_seed(1)
    td = a.reset()
    for _ in range(37):
        td["action"] = _actions(a, gen)
        _, td = a.step_and_maybe_reset(td)
    snapshot = env_state(a)
    assert snapshot is not None
    b = make_env(env_id, seed=123, max_episode_steps=25)
    b.rollout(7)  # somewhere else entirely
    load_env_state(b, snapshot)
    tdb = td.clone()
    for t in range(80):
        action = _actions(a, gen)
        td["action"], tdb["action"] = action, action.clone()
        out_a, td = a.step_and_maybe_reset(td)
        out_b, tdb = b.step_and_maybe_reset(tdb)
        for key in ("observation", "reward", "done", "truncated"):
            assert torch.equal(out_a["next", key], out_b["next", key]), (t, key)
    # without the snapshot the second env diverges at once (the test can tell)
    c = make_env(env_id, seed=123, max_episode_steps=25)
    c.reset()
    tdc = td.clone()
    tdc["action"] = _actions(a, gen)
    td["action"] = tdc["action"].clone()
    assert not torch.equal(a.step(td)["next", "observation"], c.step(tdc)["next", "observation"])


def test_rng_state_round_trip():
    state = rng_state()
    draws = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    load_rng_state(state)
    assert torch.equal(torch.rand(3), draws[0]) and np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]


def test_replay_round_trip_keeps_storage_order_and_cursor():
    """A wrapped-around buffer comes back with every transition at the same index and the same write
    cursor, so sampling indices and later writes land identically; the saved size is the data's."""
    from tensordict import TensorDict

    buffer = make_replay_buffer(10)
    for start in (0, 6):  # 13 writes into 10 slots: wraps around
        n = 6 if start == 0 else 7
        buffer.extend(TensorDict({"x": torch.arange(start, start + n).float().unsqueeze(-1)}, [n]))
    state = replay_state(buffer)
    assert state["size"] == 10 and state["writer"]["_cursor"] == 3
    restored = make_replay_buffer(10)
    load_replay_state(restored, state)
    assert torch.equal(restored.storage[:10]["x"], buffer.storage[:10]["x"])
    nxt = TensorDict({"x": torch.tensor([[100.0]])}, [1])
    buffer.extend(nxt), restored.extend(nxt.clone())
    assert torch.equal(restored.storage[:10]["x"], buffer.storage[:10]["x"])
    with pytest.raises(ValueError, match="capacity"):
        load_replay_state(make_replay_buffer(5), state)


def _rank_main(rank: int, port: int, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        sync = RankSync()
        a = torch.nn.Parameter(torch.zeros(2, 3))
        b = torch.nn.Parameter(torch.zeros(4))
        a.grad = torch.full((2, 3), float(rank + 1))  # rank 0: 1, rank 1: 2 -> mean 1.5
        if rank == 1:
            b.grad = torch.full((4,), 4.0)  # rank 0 has no gradient for b: counts as zero -> mean 2
        sync.average_gradients([a, b])
        mean = sync.mean_(torch.tensor([float(rank)]))
        total = sync.sum_(torch.tensor([float(rank + 1)]))
        cat = sync.cat(torch.tensor([[rank, rank]]))
        gathered = sync.gather_objects({"rank": rank})
        out[rank] = (a.grad.tolist(), b.grad.tolist(), float(mean), float(total), cat.tolist(), gathered)
    finally:
        dist.destroy_process_group()


def test_rank_sync_collectives_on_two_gloo_processes():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_rank_main, args=(port, out), nprocs=2, join=True)
    for rank in (0, 1):
        a_grad, b_grad, mean, total, cat, gathered = out[rank]
        assert a_grad == [[1.5] * 3] * 2 and b_grad == [2.0] * 4
        assert mean == 0.5 and total == 3.0 and cat == [[0, 0], [1, 1]]
        assert gathered == ([{"rank": 0}, {"rank": 1}] if rank == 0 else [])


def test_rank_sync_is_the_identity_in_one_process():
    sync = RankSync()
    assert sync.world_size == 1 and not sync.active
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    sync.average_gradients([p])
    assert p.grad.tolist() == [2.0] * 3 and sync.cat(torch.ones(2, 1)).shape == (2, 1)
    assert sync.gather_objects(5) == [5]
