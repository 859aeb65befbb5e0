"""The mechanics shared by paper 001's agents that train S seeds as one batched run
(``algos.offline_dyna.OfflineDynaDQN``, ``algos.dyna_dqn.DynaDQN``): named optimizers, use without a
Trainer, per-seed uniforms, one optimizer step, one log row. The algorithms stay in their own files.

A subclass sets ``self.q`` (the batched Q-network), ``self.model`` (its model, or ``None``),
``self.generators`` (one ``torch.Generator`` per seed) and the hyperparameters ``lr`` and ``model_lr``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from lightning_mbrl.models.utils import adamw
from lightning_mbrl.precision import check_precision, parameters_changed


class SeededAgent(pl.LightningModule):
    def setup(self, stage: str) -> None:
        check_precision(self.trainer.precision)

    # ------------------------------------------------------------------ optimizers (by name)
    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        opts = [adamw(self.q.parameters(), self.hparams.lr)]
        if self.model is not None:
            opts.append(adamw(self.model.parameters(), self.hparams.model_lr))
        return opts

    def optimizer(self, name: str) -> torch.optim.Optimizer:
        """The optimizer ``"q"`` or ``"model"`` (``KeyError`` naming those this agent has)."""
        names = ["q"] + (["model"] if self.model is not None else [])
        if name not in names:
            raise KeyError(f"no optimizer {name!r}; this agent has {names}")
        opts = self.optimizers() if self._trainer is not None else self._standalone_optimizers
        opts = opts if isinstance(opts, list) else [opts]
        return opts[names.index(name)]

    def standalone(self):
        """Use without a Trainer (tests, benchmarks that drive ``update`` / ``step`` directly)."""
        self._standalone_optimizers = self.configure_optimizers()
        return self

    # ------------------------------------------------------------------ per-seed randomness, steps, logs
    def _uniforms(self, n: int, generators: list[torch.Generator] | None = None) -> Tensor:
        """``[S, n]`` uniforms, row ``s`` from seed ``s``'s generator (or ``generators[s]``) alone."""
        generators = self.generators if generators is None else generators
        return torch.stack([torch.rand(n, generator=g) for g in generators]).to(self.device)

    def _step(self, name: str, loss: Tensor) -> None:
        """One step of optimizer ``name`` on ``loss`` (a sum of per-seed losses)."""
        opt = self.optimizer(name)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss) if self._trainer is not None else loss.backward()
        opt.step()
        parameters_changed()

    def _log_row(self, metrics: dict[str, float], step: int) -> None:
        """One row in every logger at ``step`` (updates or env steps, not optimizer steps)."""
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)
