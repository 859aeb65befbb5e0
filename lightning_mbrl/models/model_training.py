"""Fitting the ``GaussianEnsemble`` as MBPO does (``BNN.train``; REFERENCE 1.3). Pure functions,
no Lightning imports.

The optimizer (``make_model_optimizer``) is Adam with MBPO's learning rate 1e-3 and MBPO's per-layer
weight decays as L2 ``weight_decay`` of one parameter group per layer: Adam then steps on
``grad + decay_l * W_l``, the gradient of MBPO's loss term ``decay_l * l2_loss(W_l)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from tensordict import TensorDict

from lightning_mbrl.distributed import RankSync
from lightning_mbrl.errors import require_non_negative, require_positive
from lightning_mbrl.models.ensemble import GaussianEnsemble
from lightning_mbrl.models.utils import adam
from lightning_mbrl.precision import full_precision_context, parameters_changed


def make_model_optimizer(model: GaussianEnsemble, lr: float = 1e-3) -> torch.optim.Optimizer:
    """Fused Adam over all the ensemble's parameters (MBPO: lr 1e-3) with ``model.weight_decays``:
    layer ``l``'s weights in a group with L2 ``weight_decay=decay_l`` (Adam adds ``decay_l * W_l``
    to the gradient, inside the fused kernel), biases and log-variance bounds undecayed.

    This is where MBPO's weight-decay loss term ``GaussianEnsemble.weight_decay_loss`` is trained:
    an optimizer built otherwise trains the ensemble without it."""
    require_positive("lr", lr)
    groups = [
        {"params": [layer.weight], "weight_decay": decay} for decay, layer in zip(model.weight_decays, model.layers)
    ]
    undecayed = [layer.bias for layer in model.layers] + [model.max_logvar, model.min_logvar]
    groups.append({"params": undecayed, "weight_decay": 0.0})
    return adam(groups, lr=lr)


def _total_loss(losses: TensorDict) -> torch.Tensor:
    return sum(value for name, value in losses.items() if name.startswith("loss_"))


def fit_ensemble(
    model: GaussianEnsemble,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int = 256,
    holdout_ratio: float = 0.2,
    max_holdout: int = 5000,
    max_epochs: int | None = None,
    max_epochs_since_update: int = 5,
    improvement_threshold: float = 0.01,
    generator: torch.Generator | None = None,
    sync: RankSync | None = None,
    on_epoch: Callable[[], None] | None = None,
) -> TensorDict:
    """Train ``model`` on ``inputs [N, in]``, ``targets [N, out]`` with MBPO's early stopping.

    1. A random permutation splits off a holdout of ``min(int(N * holdout_ratio), max_holdout)``
       samples; the input normaliser is re-fit on the training split.
    2. Each member gets its own bootstrap of the training split (indices drawn with replacement,
       as many as training samples), reshuffled every epoch; an epoch is
       ``ceil(n_train / batch_size)`` Adam steps on ``[E, batch_size, *]`` minibatches (the last one
       partial), minimising the sum of ``model.loss``'s ``loss_*`` terms (and MBPO's weight decay,
       which ``make_model_optimizer``'s Adam applies).
    3. After each epoch, member ``e``'s holdout MSE ``m_e`` (``model.holdout_mse``, no variance
       term) is compared with its best so far ``b_e`` (infinite at the start of the call): if
       ``(b_e - m_e) / b_e > improvement_threshold`` the member's parameters are snapshotted
       (``torch.where`` over the member dimension of every batched parameter, no loop over members)
       and ``b_e = m_e``. Training stops once no member has improved for more than
       ``max_epochs_since_update`` consecutive epochs, or after ``max_epochs``.
    4. Each member's best snapshot is restored, and ``model.elites`` is set to the ``n_elites``
       members with the lowest holdout MSE.

    The log-variance bounds are shared by the members and are not snapshotted: they keep their
    last trained values (as MBPO, whose snapshots hold only the layers' weights and biases). The
    holdout MSE does not depend on them, so the restored members' holdout MSE is their best.
    The optimizer state (Adam moments) is kept as it is, and the model is never re-initialised:
    calling this again warm-starts from the current parameters (MBPO retrains the same networks).

    With an empty holdout (``int(N * holdout_ratio) == 0``) there is no early stopping:
    ``max_epochs`` is required, the last parameters are kept, ``holdout_mse`` is NaN and the elites
    are left unchanged.

    All work happens on the model's device; the only host sync is one per epoch (the stopping rule).
    Random draws use ``generator`` (on the model's device) if given.

    Data-parallel ranks (``sync``, a :class:`~lightning_mbrl.distributed.RankSync`; each rank passes
    its own data, all of the same size): the normaliser is fitted on all ranks' training splits,
    every step's gradients and every holdout MSE are averaged across ranks, so the ranks stop at the
    same epoch, snapshot the same members and pick the same elites with bit-identical parameters.

    Precision: the training steps run under whatever autocast is on where this is called (Lightning's
    ``--trainer.precision bf16-mixed`` runs ``training_step`` under bf16 autocast; outside Lightning,
    ``torch.autocast``). Under bf16 autocast the hidden layers' GEMMs (and their backward) and the
    hidden activations are bf16; the output layer, the log-variance bounds, the loss, the parameters,
    their gradients and the Adam state stay in the parameters' dtype, and the holdout evaluation (the
    early-stopping rule and the elites) runs with autocast off. On CPUs with bf16 instructions
    (AVX512-BF16, AMX) an epoch at MBPO's sizes is 1.25-1.4x faster (``python -m benchmarks.world_model``)
    for the same holdout MSE (see the tests); results are not bit-identical to fp32's.

    ``on_epoch`` (optional) is called after every epoch, e.g. to report progress.

    Returns a TensorDict with ``holdout_mse [E]`` (after restoring), ``elites long [n_elites]``,
    ``epochs`` (int64 scalar: epochs trained), ``steps`` (int64 scalar: optimizer steps taken),
    ``train_loss`` (mean over the last epoch's steps of the
    sum of ``model.loss``'s ``loss_*`` terms; the weight decay, applied by the optimizer, is not in it).
    """
    n_members = model.n_members
    if inputs.dim() != 2 or inputs.shape[-1] != model.in_dim:
        raise ValueError(f"inputs must be [N, {model.in_dim}], got {tuple(inputs.shape)}")
    if targets.shape != (inputs.shape[0], model.out_dim):
        raise ValueError(f"targets must be [{inputs.shape[0]}, {model.out_dim}], got {tuple(targets.shape)}")
    require_positive("batch_size", batch_size)
    if not 0.0 <= holdout_ratio < 1.0:
        raise ValueError(f"holdout_ratio must be in [0, 1), got {holdout_ratio!r}")
    require_non_negative("max_holdout", max_holdout)
    if max_epochs is not None:
        require_positive("max_epochs", max_epochs)
    require_non_negative("max_epochs_since_update", max_epochs_since_update)
    require_non_negative("improvement_threshold", improvement_threshold)

    device, dtype = model.input_mean.device, model.input_mean.dtype
    inputs = inputs.detach().to(device=device, dtype=dtype)
    targets = targets.detach().to(device=device, dtype=dtype)
    n = inputs.shape[0]
    n_holdout = min(int(n * holdout_ratio), max_holdout)
    n_train = n - n_holdout
    if n_train < 1:
        raise ValueError(f"inputs must leave at least one training sample after the holdout, got N={n}")
    if n_holdout == 0 and max_epochs is None:
        raise ValueError("max_epochs is required when the holdout is empty (no early stopping)")

    permutation = torch.randperm(n, generator=generator, device=device)
    x_holdout, y_holdout = inputs[permutation[:n_holdout]], targets[permutation[:n_holdout]]
    x_train, y_train = inputs[permutation[n_holdout:]], targets[permutation[n_holdout:]]
    model.fit_normalizer(x_train, sync=sync)

    member_params = model.member_parameters()
    best_params = [p.detach().clone() for p in member_params]
    best_mse = torch.full((n_members,), float("inf"), device=device, dtype=dtype)
    bootstrap = torch.randint(n_train, (n_members, n_train), generator=generator, device=device)  # [E, n_train]

    epochs, epochs_since_update = 0, 0
    train_loss = torch.zeros((), device=device, dtype=dtype)
    while True:
        # Reshuffle every member's bootstrap indices independently.
        shuffle = torch.rand(n_members, n_train, generator=generator, device=device).argsort(dim=1)
        bootstrap = bootstrap.gather(1, shuffle)
        loss_sum = torch.zeros((), device=device, dtype=dtype)
        for start in range(0, n_train, batch_size):
            index = bootstrap[:, start : start + batch_size]  # [E, B]
            xb = x_train.index_select(0, index.reshape(-1)).view(*index.shape, model.in_dim)
            yb = y_train.index_select(0, index.reshape(-1)).view(*index.shape, model.out_dim)
            loss = _total_loss(model.loss(xb, yb))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if sync is not None:
                sync.average_gradients(model.parameters())
            optimizer.step()
            parameters_changed()
            loss_sum += loss.detach()
        train_loss = loss_sum / -(-n_train // batch_size)
        epochs += 1
        if on_epoch is not None:
            on_epoch()  # progress reporting (lightning_mbrl.progress.phase's tick)

        if n_holdout > 0:
            with torch.no_grad(), full_precision_context():  # evaluation only
                mse = model.holdout_mse(x_holdout, y_holdout)  # [E]
                if sync is not None:
                    sync.mean_(mse)
                improved = (best_mse - mse) > improvement_threshold * best_mse
                improved |= torch.isinf(best_mse) & torch.isfinite(mse)
                best_mse = torch.where(improved, mse, best_mse)
                for snapshot, p in zip(best_params, member_params):
                    mask = improved.view(-1, *([1] * (p.dim() - 1)))
                    snapshot.copy_(torch.where(mask, p, snapshot))
            epochs_since_update = 0 if bool(improved.any()) else epochs_since_update + 1  # one sync per epoch
            if epochs_since_update > max_epochs_since_update:
                break
        if max_epochs is not None and epochs >= max_epochs:
            break

    if n_holdout > 0:
        with torch.no_grad(), full_precision_context():
            for snapshot, p in zip(best_params, member_params):
                p.copy_(snapshot)
            holdout_mse = model.holdout_mse(x_holdout, y_holdout)
            if sync is not None:
                sync.mean_(holdout_mse)
            model.elites.copy_(holdout_mse.argsort()[: model.n_elites])
        parameters_changed()
    else:
        holdout_mse = torch.full((n_members,), float("nan"), device=device, dtype=dtype)
    return TensorDict(
        {
            "holdout_mse": holdout_mse,
            "elites": model.elites.clone(),
            "epochs": torch.tensor(epochs, device=device),
            "steps": torch.tensor(epochs * -(-n_train // batch_size), device=device),
            "train_loss": train_loss,
        },
        batch_size=[],
    )
