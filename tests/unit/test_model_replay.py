import pytest
import torch
from tensordict import TensorDict

from lightning_mbrl.data.model_replay import ModelReplay, model_replay_capacity, rollout_length
from lightning_mbrl.errors import ConfigError


def items(lo, hi):
    return TensorDict({"x": torch.arange(lo, hi)}, [hi - lo])


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 1), (20, 1), (21, 1), (60, 8), (100, 15), (150, 15)],  # Hopper (paper): [20, 100, 1, 15]
)
def test_rollout_length_schedule_matches_mbpo(epoch, expected):
    # int(1 + (60 - 20) / 80 * 14) = int(8.0) = 8; int(1 + 1/80 * 14) = 1
    assert rollout_length(epoch, [20, 100, 1, 15]) == expected


def test_rollout_schedule_constant_and_errors():
    assert [rollout_length(e, [1, 15, 1, 1]) for e in (0, 7, 99)] == [1, 1, 1]
    for bad in ([1, 2, 3], [5, 2, 1, 2], [1, 2, 0, 3], [1, 2, 4, 3]):
        with pytest.raises(ConfigError, match="rollout_schedule"):
            rollout_length(0, bad)


def test_capacity_formula():
    # HalfCheetah: 1 epoch * k=1 * 100k * 1000/250 = 400k; Humanoid: 5 * 25 * 100k * 1 = 12.5M
    assert model_replay_capacity(1, 1, 100_000, 1000, 250) == 400_000
    assert model_replay_capacity(5, 25, 100_000, 1000, 1000) == 12_500_000


def test_newest_and_resize_keep_the_most_recent():
    rb = ModelReplay(5)
    rb.extend(items(0, 3))
    assert rb.newest(2)["x"].tolist() == [1, 2]
    rb.extend(items(3, 8))  # wraps: storage holds 5..7 and 3..4
    assert rb.newest(5)["x"].tolist() == [3, 4, 5, 6, 7]
    rb.resize(3)
    assert len(rb) == 3 and sorted(rb.buffer.storage[torch.arange(3)]["x"].tolist()) == [5, 6, 7]
    rb.resize(10)
    assert len(rb) == 3
    rb.extend(items(8, 10))
    assert rb.newest(5)["x"].tolist() == [5, 6, 7, 8, 9]


def _mbpo_at(recipe: str, frames: int):
    """The recipe's MBPO (tiny networks) with ``frames`` real frames collected this iteration."""
    import yaml

    from lightning_mbrl.algos.mbpo import MBPO
    from tests.conftest import ROOT

    values = yaml.safe_load((ROOT / "recipes" / f"{recipe}.yaml").read_text())["model"]
    keep = ("env", "env_kwargs", "init_random_frames", "rollout_schedule", "epoch_length", "model_train_freq")
    model = MBPO(**{k: values[k] for k in keep if k in values}, hidden=(8,), model_hidden=(8,))
    model.frames = frames
    return model


@pytest.mark.parametrize(
    "recipe, policy_frames, expected",
    [
        # Hopper [20, 100, 1, 15]: epochs count policy frames only (5000 random frames first)
        ("mbpo_hopper", 0, 1), ("mbpo_hopper", 21_000, 1), ("mbpo_hopper", 95_000, 14),
        ("mbpo_hopper", 99_750, 14), ("mbpo_hopper", 100_000, 15), ("mbpo_hopper", 200_000, 15),
        # Ant [20, 100, 1, 25]
        ("mbpo_ant", 20_000, 1), ("mbpo_ant", 25_000, 2), ("mbpo_ant", 60_000, 13), ("mbpo_ant", 100_000, 25),
    ],
)
def test_mbpo_rollout_length_counts_epochs_after_the_warm_up(recipe, policy_frames, expected):
    """The MBPO code's epoch 0 starts after its initial exploration; counting the warm-up frames
    would reach Hopper's k = 15 at 100k frames instead of 105k (5 epochs early)."""
    model = _mbpo_at(recipe, frames=5_000 + policy_frames + 1)  # the iteration whose fit sees `policy_frames`
    assert model.hparams.init_random_frames == 5_000
    assert model.epoch == policy_frames // 1000
    assert model.current_rollout_length == expected
