"""The command line: a LightningCLI subclass shared by every recipe.

A recipe is ``run_recipe(AlgorithmClass, "recipes/<name>.yaml")``: the YAML holds the paper's
values and is applied first; ``--config recipes/tiny.yaml`` and flags override it. Sizes derived
from the env (observation and action dimensions) are computed by the algorithm from ``model.env``,
never typed in YAML. Bad values end the program with one line naming the field, and exit code 2.
"""

from __future__ import annotations

import csv
import inspect
import os
import re
import sys
import traceback
import typing
import warnings
from pathlib import Path
from typing import Any, Literal, NoReturn, Sequence

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_only

from callbacks.checkpoint import FrameCheckpoint
from callbacks.divergence import DivergenceGuard
from callbacks.evaluation import PolicyEval
from callbacks.limits import apply_callback_limits
from callbacks.progress import callbacks_with_progress_bar
from lightning_mbrl.allocator import keep_freed_memory
from lightning_mbrl.errors import ConfigError, TrainingDiverged, describe_type
from lightning_mbrl.precision import default_precision, flush_denormals, precision_reason

DEFAULT_SAVE_DIR = "runs"  # run folders: runs/<recipe>/version_N
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the frame budget (model.max_frames) ends training, not epochs or steps
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,  # iterations between log rows
    "enable_model_summary": False,
    "enable_checkpointing": False,  # Lightning's epoch-end ModelCheckpoint; the `checkpoint` section replaces it
}


class RunFolderOfRankZero(pl.Callback):
    """Once the processes are connected, every rank's CSV and TensorBoard loggers take rank 0's run folder
    (``version``). Each process picked ``version_N`` by itself from the folders it saw
    (:meth:`MBRLCLI.before_instantiate_classes`); a node of a multi-node run that sees another disk may
    pick another N. Outputs follow rank 0 anyway (``trainer.log_dir`` is a broadcast, only rank 0
    writes); this makes ``logger.log_dir`` name the same folder on every rank. One process: no-op."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, (CSVLogger, TensorBoardLogger))]
        if trainer.world_size > 1 and loggers:
            for lg, version in zip(loggers, trainer.strategy.broadcast([lg.version for lg in loggers])):
                lg._version = version  # read by log_dir; the loggers take no other setter


class OneLineErrorParser(LightningArgumentParser):
    """jsonargparse's parse errors (a value its type does not allow, an unknown key, a malformed config)
    become a ``ConfigError`` with one line naming the key, instead of the usage text and a multi-line
    message; for the model's arguments, in the words of ``errors.check_arguments``:
    ``model.max_frames must be a positive int, got 0``. Parsers that raise instead of exiting
    (``exit_on_error=False``, jsonargparse's internal ones) keep jsonargparse's behaviour."""

    model_class: type | None = None  # set by MBRLCLI.init_parser

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        raise ConfigError(_parse_error_line(message, self.model_class)) from None


class MBRLCLI(LightningCLI):
    """LightningCLI with the library's defaults: an ``eval`` section for the deterministic-policy
    evaluator, a ``checkpoint`` section (``callbacks.FrameCheckpoint``: every 50k frames and at the
    end), CSV and TensorBoard loggers sharing one run folder ``runs/<recipe>/version_N`` (or
    ``<--trainer.default_root_dir>/version_N``), ``--ckpt_path last`` (a resumed run continues its run
    folder), ``--ckpt_recipe``, and one-line errors for Lightning's checks of the trainer flags."""

    def __init__(self, model_class: type[pl.LightningModule], recipe: str, config: Path | None,
                 args: Sequence[str] | None = None, run: bool = True) -> None:
        self.recipe = recipe
        self._resume_candidate: tuple[Path, int | None] | None = None  # (fit --ckpt_path, its frames)
        self._resume: tuple[Path, int | None] | None = None  # (run folder continued, the checkpoint's frames)
        parser_kwargs = {"default_config_files": [str(config)]} if config else {}
        trainer_defaults = dict(TRAINER_DEFAULTS)
        # bf16-mixed where bf16 GEMMs are native and the algorithm's learning tests pass in it (precision.py)
        trainer_defaults["precision"] = default_precision() if getattr(model_class, "bf16_by_default", False) else "32-true"
        trainer_defaults["default_root_dir"] = f"{DEFAULT_SAVE_DIR}/{recipe}"
        trainer_defaults["logger"] = [  # moved to --trainer.default_root_dir when it is given
            {"class_path": f"pytorch_lightning.loggers.{cls}",
             "init_args": {"save_dir": DEFAULT_SAVE_DIR, "name": recipe}}
            for cls in ("CSVLogger", "TensorBoardLogger")
        ]
        super().__init__(
            model_class,
            trainer_defaults=trainer_defaults,
            seed_everything_default=False,  # seeding is per rank, from model.seed, in on_fit_start
            parser_kwargs=parser_kwargs if not run else {"fit": parser_kwargs, "validate": parser_kwargs},
            save_config_kwargs={"overwrite": True},
            parser_class=OneLineErrorParser,
            args=args,
            run=run,
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        parser = super().init_parser(**kwargs)
        parser.model_class = self.model_class
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PolicyEval, "eval")
        # the guard checks each iteration before the checkpoint callback may save it
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_argument("--callback_limits", type=dict[str, int] | None, default=None,
                            help="cap these arguments (episodes, n_candidates, ...) of every callback in "
                                 "trainer.callbacks that takes them (recipes/tiny.yaml; callbacks/limits.py)")
        self._add_checkpoint_arguments(parser)

    @staticmethod
    def _add_checkpoint_arguments(parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(FrameCheckpoint, "checkpoint")
        parser.add_argument(
            "--ckpt_recipe", type=Literal["same", "any"], default="same",
            help="same: --ckpt_path must be a checkpoint written by this recipe (same recipe and algorithm); "
                 "any: also accept another recipe's checkpoint of this algorithm (the run then takes the "
                 "checkpoint's env and hyperparameters, as every resume does)",
        )

    # ------------------------------------------------------------------------------------ run folders
    @staticmethod
    def _logger_configs(config: Any) -> list:
        loggers = config.trainer.logger
        return [lg for lg in loggers if "init_args" in lg] if isinstance(loggers, list) else []

    @staticmethod
    def _logger_root(logger: Any) -> Path:
        return Path(logger.init_args.save_dir) / (logger.init_args.get("name") or "")

    def _place_default_loggers(self, config: Any) -> None:
        """``--trainer.default_root_dir DIR`` moves the default CSV and TensorBoard loggers (save_dir
        ``runs``, name ``<recipe>``) to ``DIR``, so the run folder is ``DIR/version_N`` and every output
        follows it (metrics, events, config, checkpoints, videos). A logger given another save_dir or name
        keeps it. Idempotent."""
        root = config.trainer.get("default_root_dir")
        if not root or Path(root) == Path(DEFAULT_SAVE_DIR, self.recipe):
            return
        for lg in self._logger_configs(config):
            if (lg.init_args.get("save_dir"), lg.init_args.get("name")) == (DEFAULT_SAVE_DIR, self.recipe):
                lg.init_args.save_dir, lg.init_args.name = str(root), ""

    def _last_checkpoint(self) -> Path:
        """The newest ``last.ckpt`` of this recipe: in the ``checkpoint`` section's ``dirpath`` if set,
        else in any ``<logger save_dir>/<logger name>/version_*/checkpoints/`` (``runs/<recipe>/...``,
        or ``<default_root_dir>/...``)."""
        config = self.config[self.config.subcommand]
        candidates = []
        if config.checkpoint.dirpath:
            candidates.append(Path(config.checkpoint.dirpath) / "last.ckpt")
        else:
            roots = {self._logger_root(lg) for lg in self._logger_configs(config)}
            roots.add(Path(config.trainer.default_root_dir or "."))
            for root in roots:
                candidates += root.glob("*/checkpoints/last.ckpt")
                candidates.append(root / "checkpoints" / "last.ckpt")
        found = [p for p in candidates if p.is_file()]
        if not found:
            where = ", ".join(sorted({str(p.parent) for p in candidates})) or "the run folders"
            raise ConfigError(f"ckpt_path 'last': no last.ckpt in {where}")
        return max(found, key=lambda p: p.stat().st_mtime)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI reads ``--ckpt_path`` first thing: ``last`` becomes the newest ``last.ckpt`` of the
        recipe; a truncated or corrupted file becomes a one-line error (checkpoints written by
        ``callbacks.FrameCheckpoint`` are atomic, so the earlier ones in that folder are intact); a
        checkpoint of another recipe is refused unless ``--ckpt_recipe any``."""
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        self._place_default_loggers(config)
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(self._last_checkpoint())
        path = config.get("ckpt_path")
        if not path:
            return
        if not Path(path).is_file():
            raise ConfigError(f"ckpt_path {path!r}: no such file (give a checkpoint file or 'last')")
        unreadable = (f"ckpt_path {path!r} is not a readable checkpoint (torch.load raised {{}}); "
                      f"resume from an earlier one in {str(Path(path).parent)!r}")
        try:  # mmap: the tensors (replay buffers) are not read, only the small entries looked at here
            ckpt = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except Exception as err:  # noqa: BLE001 -- any failure to read means "not a checkpoint"
            raise ConfigError(unreadable.format(type(err).__name__)) from None
        self._check_checkpoint_recipe(config, ckpt, path)
        frames = (ckpt.get("loop_counters") or {}).get("frames")
        del ckpt
        try:
            super()._parse_ckpt_path()
        except ConfigError:  # the checkpoint's hyperparameters rejected by the parser (OneLineErrorParser)
            raise
        except Exception as err:  # noqa: BLE001
            raise ConfigError(unreadable.format(type(err).__name__)) from None
        if self.config.subcommand == "fit":
            self._resume_candidate = (Path(path), frames)

    def _check_checkpoint_recipe(self, config: Any, ckpt: dict, path: str) -> None:
        """A checkpoint written by another recipe (or, for checkpoints that do not record their recipe,
        one of another env) would train that task under this recipe's name: refuse it unless
        ``--ckpt_recipe any``. Another algorithm is refused always (its hyperparameters and weights are
        not this class's)."""
        run = ckpt.get("run") if isinstance(ckpt.get("run"), dict) else {}
        hparams = ckpt.get("hyper_parameters") or {}
        their_recipe, their_algo, their_env = run.get("recipe"), run.get("algorithm"), hparams.get("env")
        our_algo, our_env = _qualname(self.model_class), config.model.get("env")
        if their_algo is None:  # an older checkpoint: its hyperparameters tell whether they fit this class
            their_algo = _other_algorithm(self.model_class, hparams)
        algo = _short(their_algo or our_algo)
        theirs = f"recipe {their_recipe} ({algo} on {their_env})" if their_recipe else f"{algo} on {their_env}"
        ours = f"recipe {self.recipe} ({_short(our_algo)} on {our_env})"
        if their_algo is not None and their_algo != our_algo:
            raise ConfigError(
                f"ckpt_path {path!r} is a checkpoint of {theirs}, but {ours} is another algorithm; "
                f"resume it with its own recipe{_recipe_hint(their_recipe)}"
            )
        other = their_recipe != self.recipe if their_recipe else their_env not in (None, our_env)
        if other and config.get("ckpt_recipe") != "any":
            raise ConfigError(
                f"ckpt_path {path!r} is a checkpoint of {theirs}, not of {ours}; resume it with its own "
                f"recipe{_recipe_hint(their_recipe)}, or add --ckpt_recipe any to train the checkpoint's env "
                f"with its hyperparameters under {self.recipe}"
            )

    def before_instantiate_classes(self) -> None:
        """Cap the callbacks' arguments named by ``--callback_limits`` (``callbacks/limits.py``). Give the
        default CSV and TensorBoard loggers one shared run folder: ``<root>/version_N`` (root
        ``runs/<recipe>`` or ``--trainer.default_root_dir``), the folder named by
        ``--trainer.logger.init_args.version NAME`` (which sets it on the last logger only) for both, or,
        when ``fit --ckpt_path`` resumes a checkpoint of a run folder under that root, that folder (its
        metrics continue, see :meth:`before_fit`)."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        apply_callback_limits(config.trainer.callbacks, config.get("callback_limits"))
        self._place_default_loggers(config)
        loggers = self._logger_configs(config)
        roots = {self._logger_root(lg).resolve() for lg in loggers}
        versions = {lg.init_args.get("version") for lg in loggers} - {None}
        if len(roots) != 1 or len(versions) > 1:
            return
        root = roots.pop()
        continued = None
        if self._resume_candidate is not None:
            ckpt, frames = self._resume_candidate
            folder = ckpt.resolve().parent.parent
            if ckpt.resolve().parent.name == "checkpoints" and folder.parent == root:
                continued = (folder, frames)
        if versions:
            version = versions.pop()
        elif continued is not None:
            name = continued[0].name
            version = int(name[len("version_"):]) if re.fullmatch(r"version_\d+", name) else name
        else:
            taken = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()]
            version = max(taken, default=-1) + 1
        for lg in loggers:
            lg.init_args.version = version
        folder = root / (version if isinstance(version, str) else f"version_{version}")
        if continued is not None and continued[0] == folder:
            self._resume = continued

    # ------------------------------------------------------------------------------------ the trainer
    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Lightning's checks of the trainer flags (an accelerator this machine lacks, a bad device count,
        an unknown strategy) become one line; any other error keeps its traceback. The progress bar is
        ``callbacks.FrameProgressBar`` unless ``--trainer.enable_progress_bar false``."""
        with_bar = callbacks_with_progress_bar(self._get(self.config_init, "trainer", default={}))
        if with_bar is not None:
            kwargs.setdefault("callbacks", with_bar)
        try:
            return super().instantiate_trainer(**kwargs)
        except ConfigError:
            raise
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:
            if not _is_trainer_flag_check(err):
                raise
            raise ConfigError(_trainer_flag_message(err, self._get(self.config, "trainer"))) from None

    def after_instantiate_classes(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, FrameCheckpoint):
                callback.recipe = self.recipe  # recorded in its checkpoints, checked by _check_checkpoint_recipe
        self.trainer.callbacks.append(RunFolderOfRankZero())

    def before_fit(self) -> None:
        """Says the run's precision and why (precision.py). Resuming into the checkpoint's run folder:
        ``metrics.csv`` keeps its rows up to the checkpoint's frames (rows the killed run logged after it
        are dropped; the resumed run logs them again) and the resumed run appends to it; TensorBoard hides
        the old events after those frames (``purge_step``)."""
        rank_zero_info(precision_reason(str(self.trainer.precision), self.trainer.strategy.root_device,
                                        getattr(self.model_class, "bf16_by_default", False)))
        if self._resume is None or rank_zero_only.rank != 0:
            return
        folder, frames = self._resume
        for logger in self.trainer.loggers:
            if Path(logger.log_dir).resolve() != folder:
                continue
            if isinstance(logger, CSVLogger):
                _continue_metrics_csv(logger, frames)
            elif isinstance(logger, TensorBoardLogger) and frames is not None:
                kwargs = getattr(logger, "_kwargs", None)  # passed to SummaryWriter when it is created
                if isinstance(kwargs, dict) and kwargs.get("purge_step") is None and logger._experiment is None:
                    kwargs["purge_step"] = frames + 1


GPU_ACCELERATORS = {"gpu": "CUDA or MPS GPU", "cuda": "CUDA GPU", "mps": "MPS (Apple) GPU"}
LIGHTNING_FLAG_CHECKS = ("pytorch_lightning/trainer/connectors/", "pytorch_lightning/accelerators/",
                         "lightning_fabric/connector.py", "lightning_fabric/accelerators/")


#: Hyperparameters older checkpoints may carry that no algorithm takes any more (Lightning drops them on load):
#: ``model_gemm_dtype`` (MBPO, MAAC), replaced by ``--trainer.precision``.
RETIRED_HPARAMS = frozenset({"model_gemm_dtype"})


def _other_algorithm(cls: type, hparams: dict) -> str | None:
    """For a checkpoint that does not record its algorithm: a description of the other algorithm its
    hyperparameters show (keys ``cls`` does not take, or most of the arguments ``cls`` adds to its
    base classes missing: a SAC checkpoint given to MBPO), else ``None`` (it fits ``cls``)."""
    accepted = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        return None
    unknown = sorted(k for k in hparams if not k.startswith("_") and k not in accepted and k not in RETIRED_HPARAMS)
    inherited = {name for base in cls.__mro__[1:] if "__init__" in vars(base)
                 for name in inspect.signature(base.__init__).parameters}
    own = [name for name in accepted if name not in inherited and name != "self"]
    missing = [name for name in own if name not in hparams]
    if unknown:
        return f"another algorithm (hyperparameters {', '.join(unknown[:3])})"
    if own and len(missing) > len(own) / 2:
        return f"another algorithm (without {', '.join(missing[:3])})"
    return None


_GIVEN_VALUE = (  # where jsonargparse's messages say the value they rejected, most specific first
    r"Given value: (.+)", r"Got value: (.+)", r"Not of type \w+: (.+?) does not conform to restriction",
    r"Not of type \w+: (.+?) not an? (?:integer|number)", r"invalid literal for int\(\) with base 10: (.+)",
    r"could not convert string to float: (.+)",
)


def _parse_error_line(message: str, model_class: type | None) -> str:
    """One line for a jsonargparse parse error: ``model.<name> must be <allowed>, got <value>`` when the
    key is an argument of ``model_class`` (its annotation says what is allowed), else the message's
    lines joined."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    joined = " ".join(lines)
    key = re.match(r'Parser key "([^"]+)":', lines[0]) if lines else None
    name = re.search(r"(?:^|\.)model\.(\w+)$", key.group(1)) if key else None
    if name is None or model_class is None:
        return joined
    try:
        annotation = typing.get_type_hints(model_class.__init__).get(name.group(1))
    except Exception:  # noqa: BLE001 -- an annotation that does not resolve: say what jsonargparse said
        annotation = None
    if annotation is None:
        return joined
    allowed = describe_type(annotation)
    if "a list" not in allowed:  # for a list, the value jsonargparse names is one of its items
        for pattern in _GIVEN_VALUE:
            found = re.search(pattern, message)
            if found:
                return f"{key.group(1)} must be {allowed}, got {found.group(1).strip()}"
    return f"{key.group(1)} must be {allowed} ({' '.join(lines[1:])})"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1] if qualname.count(" ") == 0 else qualname


def _recipe_hint(recipe: str | None) -> str:
    return f" (python -m recipes.{recipe} fit --ckpt_path ...)" if recipe else ""


def _is_trainer_flag_check(err: BaseException) -> bool:
    """Lightning's own validation of Trainer arguments: a ``MisconfigurationException``, or a
    ValueError / TypeError / ImportError raised in its accelerator and connector modules."""
    if isinstance(err, MisconfigurationException):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    where = frames[-1].filename.replace(os.sep, "/") if frames else ""
    return any(part in where for part in LIGHTNING_FLAG_CHECKS)


def _trainer_flag_message(err: BaseException, trainer: Any) -> str:
    text = " ".join(str(err).replace("`", "").split())
    accelerator = trainer.get("accelerator") if trainer is not None else None
    if isinstance(accelerator, str) and accelerator in GPU_ACCELERATORS and (
            "not available" in text or "No supported gpu backend" in text):
        available = ["cpu"] + ["gpu"] * torch.cuda.is_available() + ["mps"] * torch.backends.mps.is_available()
        return (f"--trainer.accelerator {accelerator}: no {GPU_ACCELERATORS[accelerator]} on this machine "
                f"(available: {', '.join(available)}); use {' or '.join(available)} or auto")
    return f"--trainer flags: {text}"


def _step_of(row: dict) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


def _continue_metrics_csv(logger: CSVLogger, frames: int | None) -> None:
    """Keep the run folder's ``metrics.csv`` (Lightning's CSV writer deletes an existing one when it
    starts) with its rows up to ``frames``, and make the writer append to it under the same header."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = [row for row in reader
                if (step := _step_of(row)) is not None and (frames is None or step <= frames)]
    kept = path.with_name("metrics.csv.resumed")
    with open(kept, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        experiment = logger.experiment  # removes metrics.csv: the kept rows replace it next
    os.replace(kept, path)
    if hasattr(experiment, "metrics_keys"):
        experiment.metrics_keys = header  # appended rows follow this header; new keys rewrite it (Lightning)


class SeedsCLI(MBRLCLI):
    """The command line of modules that train S seeds as one batched run and evaluate themselves per seed
    (paper 001's ``algos.dyna_dqn.DynaDQN``): :class:`MBRLCLI` (run folders, CSV and TensorBoard loggers,
    the ``checkpoint`` section counting env steps per seed, ``fit --ckpt_path last``, one-line errors)
    without the policy evaluator and the divergence guard, which do not apply to them."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        self._add_checkpoint_arguments(parser)


def run_seeds_recipe(model_class: type[pl.LightningModule], config: str | Path | None,
                     args: Sequence[str] | None = None, run: bool = True) -> SeedsCLI:
    """Entry point of a batched-seeds recipe (``python -m recipes.dyna_dqn_procmaze fit``); errors as
    :func:`run_recipe`'s."""
    return _run_cli(SeedsCLI, model_class, config, args, run)


def run_recipe(model_class: type[pl.LightningModule], config: str | Path | None,
               args: Sequence[str] | None = None, run: bool = True) -> MBRLCLI:
    """Entry point of ``python -m recipes.<name> fit``. A ``ConfigError`` becomes one line on stderr."""
    return _run_cli(MBRLCLI, model_class, config, args, run)


def _run_cli(cli_class: type, model_class: type[pl.LightningModule], config: str | Path | None,
             args: Sequence[str] | None, run: bool):
    """``cli_class`` for the recipe named by ``config``'s stem; a ``ConfigError`` becomes one line on stderr
    and exit code 2, a ``TrainingDiverged`` one line and exit code 1. First, before any parallel torch op:
    subnormal floats flush to zero in every thread (``precision.flush_denormals``) and glibc keeps freed
    tensor memory for reuse (``allocator.keep_freed_memory``), both for steadier, faster steps."""
    flush_denormals()
    keep_freed_memory()
    config = Path(config) if config else None
    recipe = config.stem if config else model_class.__name__.lower()
    try:
        return cli_class(model_class, recipe, config, args=args, run=run)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
