"""T0: ``callback_limits`` (recipes/tiny.yaml) caps the named arguments of every callback config that
takes them, never raises one, leaves unset (None) and boolean values alone, and rejects names no
callback takes."""

import pytest
from jsonargparse import Namespace

from callbacks.limits import apply_callback_limits
from lightning_mbrl.errors import ConfigError


def configs():
    return [
        Namespace(class_path="callbacks.BootsEval",
                  init_args=Namespace(every_frames=50_000, episodes=5, n_candidates=8, max_episode_steps=None)),
        Namespace(class_path="callbacks.VideoEval",
                  init_args=Namespace(every_frames=100_000, width=256, planners=True)),
        Namespace(class_path="tests.helpers.KillAt", init_args=Namespace(frames=150)),
    ]


def test_limits_lower_only_what_is_above_them():
    boots, video, kill = configs_ = configs()
    apply_callback_limits(configs_, {"episodes": 2, "n_candidates": 16, "width": 64, "max_episode_steps": 10,
                                     "planners": 1})
    assert boots.init_args == Namespace(every_frames=50_000, episodes=2, n_candidates=8, max_episode_steps=None)
    assert video.init_args == Namespace(every_frames=100_000, width=64, planners=True)
    assert kill.init_args == Namespace(frames=150)


def test_no_limits_and_no_callbacks_change_nothing():
    unchanged = configs()
    apply_callback_limits(unchanged, None)
    apply_callback_limits(None, {"episodes": 1})
    assert unchanged == configs()


@pytest.mark.parametrize("limits, message", [
    ({"n_candidatez": 16}, "'n_candidatez' is not an argument of any callback"),
    ({"episodes": 0}, "callback_limits.episodes"),
])
def test_bad_limits_name_the_field(limits, message):
    with pytest.raises(ConfigError, match=message):
        apply_callback_limits(configs(), limits)
