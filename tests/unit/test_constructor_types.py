"""The algorithms' constructor arguments are typed with what they allow (``Literal`` choices, jsonargparse's
restricted numbers), and those types are the checks: LightningCLI (jsonargparse) enforces them when it
parses a config, and ``errors.check_arguments`` enforces the same types when the classes are constructed
directly in Python. Either way a bad value is one line naming the field and what is allowed."""

from __future__ import annotations

import inspect
import io
import re
import typing

import pytest
import torch
from jsonargparse import ArgumentParser
from jsonargparse.typing import ClosedUnitInterval, PositiveFloat, PositiveInt

import recipes.dqn_cartpole
import recipes.mbpo_halfcheetah
import recipes.mbsac_halfcheetah
import recipes.sac_pendulum
from lightning_mbrl.algos.base import OffPolicyAlgorithm
from lightning_mbrl.algos.dqn import DQN
from lightning_mbrl.algos.mbpo import MBPO
from lightning_mbrl.algos.maac import MAAC
from lightning_mbrl.algos.mbsac import MBSAC
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.errors import ConfigError, check_arguments
from tests.conftest import TINY

SMALL = dict(max_frames=200, init_random_frames=100, batch_size=32, hidden=(8, 8))
#: cheap valid arguments of each algorithm (classic-control envs: no MuJoCo needed)
VALID = {
    SAC: dict(env="Pendulum-v1", **SMALL),
    DQN: dict(env="CartPole-v1", **SMALL),
    MBPO: dict(env="Pendulum-v1", termination="never", model_hidden=(8, 8), rollout_batch_size=100, **SMALL),
    MBSAC: dict(env="Pendulum-v1", model_units=8, **SMALL),
}
ALGOS = list(VALID)


def build(cls: type, **overrides):
    return cls(**{**VALID[cls], **overrides})


def hints(fn) -> dict[str, typing.Any]:
    return typing.get_type_hints(fn)


# ------------------------------------------------------------------------------- direct construction
SHARED_BAD = [  # every algorithm takes these (OffPolicyAlgorithm's, and SAC's / DQN's gamma and hidden)
    ("max_frames", 0, "max_frames must be a positive int, got 0"),
    ("max_frames", 1000.0, "max_frames must be a positive int, got 1000.0"),
    ("batch_size", True, "batch_size must be a positive int, got True"),  # a bool is not an int
    ("updates_per_frame", 1.5, "updates_per_frame must be a positive int, got 1.5"),
    ("init_random_frames", -5, "init_random_frames must be an int >= 0, got -5"),
    ("max_episode_steps", 0, "max_episode_steps must be a positive int or None, got 0"),
    ("gamma", 1.5, "gamma must be a number in [0, 1], got 1.5"),
    ("gamma", True, "gamma must be a number in [0, 1], got True"),
    ("hidden", (8, 0), "hidden must be a list of positive ints, got (8, 0)"),
    ("hidden", "8", "hidden must be a list of positive ints, got '8'"),
]
OWN_BAD = {
    SAC: [
        ("alpha", -0.1, "alpha must be a number >= 0 or None, got -0.1"),
        ("actor_lr", 0.0, "actor_lr must be a positive number, got 0.0"),
        ("tau", 1.5, "tau must be a number in [0, 1], got 1.5"),
        ("n_critics", False, "n_critics must be a positive int, got False"),
    ],
    DQN: [
        ("exploration", "greedy", "exploration must be one of ['epsilon', 'softmax'], got 'greedy'"),
        ("loss", "l1", "loss must be one of ['huber', 'mse'], got 'l1'"),
        ("activation", "gelu", "activation must be one of ['relu', 'silu', 'tanh', 'elu'], got 'gelu'"),
        ("tau", 0.0, "tau must be a number in (0, 1], got 0.0"),
        ("max_grad_norm", 0, "max_grad_norm must be a positive number or None, got 0"),
        ("target_update_every", True, "target_update_every must be a positive int, got True"),
        ("double", 1, "double must be a bool, got 1"),
        ("epsilon_decay_frames", -1, "epsilon_decay_frames must be an int >= 0, got -1"),
    ],
    MBPO: [
        ("termination", "foo", "termination must be one of ['known', 'learned', 'never'], got 'foo'"),
        ("holdout_ratio", 0.95, "holdout_ratio must be a number in [0, 0.9], got 0.95"),
        ("real_ratio", 1.5, "real_ratio must be a number in [0, 1], got 1.5"),
        ("ensemble_size", True, "ensemble_size must be a positive int, got True"),
        ("max_model_epochs", 0, "max_model_epochs must be a positive int or None, got 0"),
        ("model_hidden", (200, -1), "model_hidden must be a list of positive ints, got (200, -1)"),
    ],
    MBSAC: [
        ("imagined_termination", "sometimes",
         "imagined_termination must be one of ['never', 'known'], got 'sometimes'"),
        ("model_blocks", -1, "model_blocks must be an int >= 0, got -1"),
        ("real_ratio", -0.1, "real_ratio must be a number in [0, 1], got -0.1"),
        ("rollout_horizon", True, "rollout_horizon must be a positive int, got True"),
        ("normalize_observations", 1, "normalize_observations must be a bool, got 1"),
        ("model_pretrain_iters", -1, "model_pretrain_iters must be an int >= 0 or None, got -1"),
    ],
}
CASES = [(cls, *case) for cls in ALGOS for case in SHARED_BAD + OWN_BAD[cls]]


@pytest.mark.parametrize("cls, field, value, message", CASES,
                         ids=[f"{c.__name__}-{f}-{v!r}" for c, f, v, _ in CASES])
def test_a_value_its_type_does_not_allow_is_a_one_line_config_error(cls, field, value, message) -> None:
    with pytest.raises(ConfigError) as err:
        build(cls, **{field: value})
    assert str(err.value) == message
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cls", ALGOS)
def test_the_check_runs_before_anything_is_built(cls) -> None:
    """The types are checked first: a bad value is reported even with an env id that does not exist."""
    with pytest.raises(ConfigError, match="max_frames must be a positive int"):
        build(cls, env="NoSuchEnv-v0", max_frames=-1)


@pytest.mark.parametrize("cls", ALGOS)
def test_edge_values_and_plain_python_numbers_are_accepted(cls) -> None:
    algo = build(cls, gamma=1, max_episode_steps=None, init_random_frames=0, max_frames=100, hidden=[8])
    assert algo.hparams.gamma == 1 and algo.hparams.init_random_frames == 0
    if cls is DQN:
        build(cls, tau=1, max_grad_norm=None, hidden=(), epsilon_decay_frames=0)
    else:
        build(cls, tau=0, alpha=0, actor_hidden=(4,))


@pytest.mark.parametrize("cls", ALGOS)
def test_every_default_conforms_to_its_annotation(cls) -> None:
    params = inspect.signature(cls.__init__).parameters
    defaults = {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
    assert set(defaults) == set(params) - {"self"}
    assert check_arguments(cls, defaults) == defaults
    parser = ArgumentParser(exit_on_error=False)  # and jsonargparse takes each type and default
    parser.add_class_arguments(cls, "model")
    parser.parse_args([])


# ------------------------------------------------------------------------------- plain values
def test_check_arguments_returns_plain_python_values() -> None:
    checked = check_arguments(SAC, {
        "self": object(), "max_frames": PositiveInt(10), "hidden": (PositiveInt(8), 4),
        "actor_hidden": [PositiveInt(4)],
        "gamma": ClosedUnitInterval(0.5), "tau": 1, "actor_lr": PositiveFloat(1e-3), "alpha": None,
    })
    assert checked == {"max_frames": 10, "hidden": (8, 4), "actor_hidden": [4], "gamma": 0.5, "tau": 1.0,
                       "actor_lr": 1e-3, "alpha": None}
    assert [type(v) for v in checked.values()] == [int, tuple, list, float, float, float, type(None)]
    assert [type(v) for v in checked["hidden"] + tuple(checked["actor_hidden"])] == [int, int, int]


@pytest.mark.parametrize("cls", ALGOS)
def test_hyperparameters_are_plain_when_jsonargparse_builds_the_module(cls) -> None:
    """Lightning's ``load_from_checkpoint`` of a CLI checkpoint builds the module through jsonargparse
    (``pytorch_lightning.cli.instantiate_module``), which passes ``PositiveInt(200)`` and the like:
    the hyperparameters (saved in every checkpoint) are still plain, so a checkpoint stays loadable with
    ``torch.load(weights_only=True)`` (as the CLI's resume reads it)."""
    from pytorch_lightning.cli import instantiate_module

    config = {k: list(v) if isinstance(v, tuple) else v for k, v in VALID[cls].items()}
    algo = instantiate_module(cls, config)
    assert type(algo.hparams.max_frames) is int and type(algo.hparams.gamma) is float
    assert all(type(w) is int for w in algo.hparams.hidden)

    def restricted(value):
        if isinstance(value, (list, tuple)):
            return any(restricted(v) for v in value)
        return isinstance(value, (int, float)) and type(value) not in (int, float, bool)

    assert [k for k, v in algo.hparams.items() if restricted(v)] == []
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": dict(algo.hparams)}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["hyper_parameters"] == dict(algo.hparams)


# ------------------------------------------------------------------------------- one source of truth
@pytest.mark.parametrize("subclass", [MBPO, MBSAC, MAAC])
def test_subclasses_repeat_sacs_arguments_with_the_same_types(subclass) -> None:
    """MBPO and MBSAC repeat SAC's signature (with their own defaults), so every SAC argument must be
    there, in the same order and with the same annotation: the copies cannot drift."""
    ours, theirs = hints(SAC.__init__), hints(subclass.__init__)
    sac_names = [n for n in inspect.signature(SAC.__init__).parameters if n != "self"]
    sub_names = [n for n in inspect.signature(subclass.__init__).parameters if n != "self"]
    assert sub_names[: len(sac_names)] == sac_names
    for name in sac_names:
        assert theirs[name] == ours[name], f"{subclass.__name__}.{name}: {theirs[name]} != SAC's {ours[name]}"


@pytest.mark.parametrize("cls", [SAC, DQN, MBPO, MBSAC, MAAC])
def test_every_algorithm_repeats_the_base_arguments_with_the_same_types(cls) -> None:
    base, theirs = hints(OffPolicyAlgorithm.__init__), hints(cls.__init__)
    for name in set(base) - {"continuous_only", "return"}:  # continuous_only: each algorithm's own constant
        assert name in theirs, f"{cls.__name__} lacks {name}"
        assert theirs[name] == base[name], f"{cls.__name__}.{name}: {theirs[name]} != the base's {base[name]}"


def test_maac_repeats_mbpos_arguments_with_the_same_types() -> None:
    mbpo, maac = hints(MBPO.__init__), hints(MAAC.__init__)
    names = [n for n in inspect.signature(MBPO.__init__).parameters if n != "self"]
    assert [n for n in inspect.signature(MAAC.__init__).parameters if n != "self"][: len(names)] == names
    for name in names:
        assert maac[name] == mbpo[name], f"MAAC.{name}: {maac[name]} != MBPO's {mbpo[name]}"


def test_choices_match_the_code_that_uses_them() -> None:
    from lightning_mbrl.models.mlp import ACTIVATIONS
    from lightning_mbrl.objectives.dqn import LOSSES

    dqn = hints(DQN.__init__)
    assert set(typing.get_args(dqn["activation"])) == set(ACTIVATIONS)
    assert typing.get_args(dqn["loss"]) == tuple(LOSSES)


# ------------------------------------------------------------------------------- the CLI
@pytest.mark.parametrize("recipe, args, message", [
    (recipes.sac_pendulum, ["--model.gamma", "1.5"], "model.gamma must be a number in [0, 1], got 1.5"),
    (recipes.sac_pendulum, ["--model.max_frames", "0"], "model.max_frames must be a positive int, got 0"),
    (recipes.sac_pendulum, ["--model.max_episode_steps", "0"],
     "model.max_episode_steps must be a positive int or None, got 0"),
    (recipes.dqn_cartpole, ["--model.exploration", "greedy"],
     "model.exploration must be one of ['epsilon', 'softmax'], got greedy"),
    (recipes.dqn_cartpole, ["--model.tau", "0"], "model.tau must be a number in (0, 1], got 0"),
    (recipes.mbpo_halfcheetah, ["--model.termination", "sometimes"],
     "model.termination must be one of ['known', 'learned', 'never'], got sometimes"),
    (recipes.mbpo_halfcheetah, ["--model.holdout_ratio", "0.95"],
     "model.holdout_ratio must be a number in [0, 0.9], got 0.95"),
    (recipes.mbsac_halfcheetah, ["--model.batch_size", "true"], "model.batch_size must be a positive int, got 'true'"),
    (recipes.mbsac_halfcheetah, ["--model.hidden", "[8, 0]"], "model.hidden must be a list of positive ints"),
])
def test_the_cli_rejects_a_bad_value_with_one_line(capsys, in_tmp, recipe, args, message) -> None:
    with pytest.raises(SystemExit) as exc:
        recipe.main(["fit", "--config", TINY, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [err.strip().splitlines()[-1]]  # one error line, the last one
    assert errors[0].startswith(f"error: {message}")


def test_the_cli_says_the_same_of_a_bad_value_in_a_config_file(capsys, in_tmp) -> None:
    (in_tmp / "bad.yaml").write_text("model:\n  real_ratio: 2\n")
    with pytest.raises(SystemExit) as exc:
        recipes.mbsac_halfcheetah.main(["fit", "--config", TINY, "--config", "bad.yaml"])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(r"error: model\.real_ratio must be a number in \[0, 1\], got 2", last), last
