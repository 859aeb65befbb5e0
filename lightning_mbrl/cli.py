"""The command line: a LightningCLI subclass shared by every recipe.

A recipe is ``run_recipe(AlgorithmClass, "recipes/<name>.yaml")``: the YAML holds the paper's
values and is applied first; ``--config recipes/tiny.yaml`` and flags override it. Sizes derived
from the env (observation and action dimensions) are computed by the algorithm from ``model.env``,
never typed in YAML. Bad values end the program with one line naming the field, and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from callbacks.checkpoint import FrameCheckpoint
from callbacks.evaluation import PolicyEval
from lightning_mbrl.allocator import keep_freed_memory
from lightning_mbrl.errors import ConfigError

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,  # the frame budget (model.max_frames) ends training, not epochs or steps
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 50,  # iterations between log rows
    "enable_model_summary": False,
    "enable_checkpointing": False,  # Lightning's epoch-end ModelCheckpoint; the `checkpoint` section replaces it
}


class MBRLCLI(LightningCLI):
    """LightningCLI with the library's defaults: an ``eval`` section for the deterministic-policy
    evaluator, a ``checkpoint`` section (``callbacks.FrameCheckpoint``: every 50k frames and at the
    end), CSV and TensorBoard loggers under ``runs/<recipe>``, and ``--ckpt_path last``."""

    def __init__(self, model_class: type[pl.LightningModule], recipe: str, config: Path | None,
                 args: Sequence[str] | None = None, run: bool = True) -> None:
        self.recipe = recipe
        parser_kwargs = {"default_config_files": [str(config)]} if config else {}
        trainer_defaults = dict(TRAINER_DEFAULTS)
        trainer_defaults["default_root_dir"] = f"runs/{recipe}"
        trainer_defaults["logger"] = [
            {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": recipe}},
            {"class_path": "pytorch_lightning.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": recipe}},
        ]
        super().__init__(
            model_class,
            trainer_defaults=trainer_defaults,
            seed_everything_default=False,  # seeding is per rank, from model.seed, in on_fit_start
            parser_kwargs=parser_kwargs if not run else {"fit": parser_kwargs, "validate": parser_kwargs},
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PolicyEval, "eval")
        parser.add_lightning_class_args(FrameCheckpoint, "checkpoint")

    def _last_checkpoint(self) -> Path:
        """The newest ``last.ckpt`` of this recipe: in the ``checkpoint`` section's ``dirpath`` if set,
        else in any ``<logger save_dir>/<recipe>/version_*/checkpoints/``."""
        config = self.config[self.config.subcommand]
        candidates = []
        if config.checkpoint.dirpath:
            candidates.append(Path(config.checkpoint.dirpath) / "last.ckpt")
        else:
            loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else []
            roots = {Path(lg.init_args.save_dir) / lg.init_args.name for lg in loggers if "init_args" in lg}
            roots.add(Path(config.trainer.default_root_dir or "."))
            for root in roots:
                candidates += root.glob("version_*/checkpoints/last.ckpt")
                candidates.append(root / "checkpoints" / "last.ckpt")
        found = [p for p in candidates if p.is_file()]
        if not found:
            where = ", ".join(sorted({str(p.parent) for p in candidates})) or "the run folders"
            raise ConfigError(f"ckpt_path 'last': no last.ckpt in {where}")
        return max(found, key=lambda p: p.stat().st_mtime)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI reads ``--ckpt_path`` first thing: ``last`` becomes the newest ``last.ckpt`` of the
        recipe; a truncated or corrupted file becomes a one-line error (checkpoints written by
        ``callbacks.FrameCheckpoint`` are atomic, so the earlier ones in that folder are intact)."""
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        if config.get("ckpt_path") == "last":
            config.ckpt_path = str(self._last_checkpoint())
        if config.get("ckpt_path") and not Path(config.ckpt_path).is_file():
            raise ConfigError(f"ckpt_path {config.ckpt_path!r}: no such file (give a checkpoint file or 'last')")
        try:
            super()._parse_ckpt_path()
        except Exception as err:  # noqa: BLE001 -- any failure to read means "not a checkpoint"
            path = self.config[self.config.subcommand].get("ckpt_path")
            raise ConfigError(
                f"ckpt_path {path!r} is not a readable checkpoint (torch.load raised {type(err).__name__}); "
                f"resume from an earlier one in {str(Path(path).parent)!r}"
            ) from None

    def before_instantiate_classes(self) -> None:
        """Give the default CSV and TensorBoard loggers one shared ``runs/<recipe>/version_N``, or the
        folder named by ``--trainer.logger.init_args.version NAME`` (which sets it on the last logger
        only) for both."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        loggers = config.trainer.logger
        if not isinstance(loggers, list):
            return
        dirs = {(lg.init_args.save_dir, lg.init_args.name) for lg in loggers if "init_args" in lg}
        versions = {lg.init_args.get("version") for lg in loggers if "init_args" in lg} - {None}
        if len(dirs) != 1 or len(versions) > 1:
            return
        if versions:
            version = versions.pop()
        else:
            root = Path(*dirs.pop())
            taken = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()]
            version = max(taken, default=-1) + 1
        for lg in loggers:
            lg.init_args.version = version


def run_recipe(model_class: type[pl.LightningModule], config: str | Path | None,
               args: Sequence[str] | None = None, run: bool = True) -> MBRLCLI:
    """Entry point of ``python -m recipes.<name> fit``. A ``ConfigError`` becomes one line on stderr."""
    keep_freed_memory()  # glibc keeps freed tensor memory for reuse (allocator.py: steadier, faster steps)
    config = Path(config) if config else None
    recipe = config.stem if config else model_class.__name__.lower()
    try:
        return MBRLCLI(model_class, recipe, config, args=args, run=run)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
