"""The probabilistic ensemble of MBPO (Janner et al. 2019, Section 4.1; REFERENCE 1.3), no Lightning
imports.

``GaussianEnsemble``: E independent MLPs ``x -> N(mu_e(x), diag(exp(logvar_e(x))))`` computed
together (one ``baddbmm`` per layer for all members), with MBPO's soft log-variance bounds, input
normalisation, weight decays and elite set; its prediction modes (``PREDICT_MODES``, see
``GaussianEnsemble.predict``) and its training losses. ``forward_selected`` runs, for every sample,
only the member assigned to it (the cost of one member per sample, not E; the kernel is
``lightning_mbrl.models.segmented_gemm``).

The dynamics over it (``EnsembleDynamics``) live in ``lightning_mbrl.models.world_model``, fitting
in ``lightning_mbrl.models.model_training``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl.distributed import RankSync
from lightning_mbrl.errors import require_non_negative, require_positive
from lightning_mbrl.models.mlp import ACTIVATIONS, BatchedLinear, activation, outside_autocast
from lightning_mbrl.models.segmented_gemm import segmented_forward
from lightning_mbrl.models.utils import truncated_normal_

PREDICT_MODES = ("sample", "mean", "elite_mean")
MEMBER_DRAWS = ("independent", "stratified")


class GaussianEnsemble(nn.Module):
    """E probabilistic MLPs computed as one batched network (MBPO's ``BNN``).

    Member ``e`` maps a normalised input ``(x - input_mean) / input_std`` through ``len(hidden)``
    SiLU (swish) layers to ``[mu, raw]``; the log-variance is soft-bounded (REFERENCE 1.3)::

        logvar = max_logvar - softplus(max_logvar - raw)
        logvar = min_logvar + softplus(logvar - min_logvar)

    with ``max_logvar``, ``min_logvar`` trainable, ``[n_gaussian]``, shared by all members.

    Shapes: ``x [N, in]`` (the same input for every member) or ``[E, N, in]`` -> ``mean [E, N, out]``,
    ``logvar [E, N, out - n_logits]``.

    ``n_logits`` (default 0, which is MBPO) makes the last ``n_logits`` outputs Bernoulli logits
    instead of Gaussians: their "mean" column is the logit, they have no log-variance, and they are
    trained by binary cross-entropy (``EnsembleDynamics(learn_termination=True)`` uses one).

    Layers are ``BatchedLinear`` (``weight [E, in, out]``, ``bias [E, 1, out]``), initialised as
    MBPO: weights truncated normal with std ``1 / (2 sqrt(fan_in))``, biases 0.
    Buffers: ``input_mean``, ``input_std`` ``[in]`` (set by ``fit_normalizer``), ``elites``
    ``long [n_elites]`` (set by ``fit_ensemble``; initially ``0..n_elites-1``).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        n_members: int = 7,
        n_elites: int = 5,
        hidden: Sequence[int] = (200, 200, 200, 200),
        act: str = "silu",
        weight_decays: Sequence[float] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4),
        init_max_logvar: float = 0.5,
        init_min_logvar: float = -10.0,
        *,
        n_logits: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("in_dim", in_dim), ("out_dim", out_dim), ("n_members", n_members), ("n_elites", n_elites)):
            if not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
            require_positive(name, value)
        if n_elites > n_members:
            raise ValueError(f"n_elites must be <= n_members ({n_members}), got {n_elites}")
        for width in hidden:
            require_positive("hidden", width)
        if len(weight_decays) != len(hidden) + 1:
            raise ValueError(
                f"weight_decays needs one value per layer ({len(hidden) + 1} for hidden={tuple(hidden)}), "
                f"got {len(weight_decays)}"
            )
        for decay in weight_decays:
            require_non_negative("weight_decays", decay)
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
        if not init_min_logvar < init_max_logvar:
            raise ValueError(f"init_min_logvar must be < init_max_logvar, got {init_min_logvar} >= {init_max_logvar}")
        if not isinstance(n_logits, int) or not 0 <= n_logits < out_dim:
            raise ValueError(f"n_logits must be an int in [0, out_dim), got {n_logits!r}")

        self.in_dim, self.out_dim, self.n_logits = in_dim, out_dim, n_logits
        self.n_gaussian = out_dim - n_logits
        self.n_members, self.n_elites = n_members, n_elites
        self.weight_decays = tuple(float(d) for d in weight_decays)
        dims = [in_dim, *hidden, out_dim + self.n_gaussian]  # [mean (out_dim) | raw logvar (n_gaussian)]
        self.layers = nn.ModuleList(BatchedLinear(n_members, a, b) for a, b in itertools.pairwise(dims))
        with torch.no_grad():
            for layer in self.layers:
                truncated_normal_(layer.weight, 1.0 / (2.0 * math.sqrt(layer.in_dim)))
                layer.bias.zero_()
        self.act = activation(act)
        self.max_logvar = nn.Parameter(torch.full((self.n_gaussian,), float(init_max_logvar)))
        self.min_logvar = nn.Parameter(torch.full((self.n_gaussian,), float(init_min_logvar)))
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))
        self.register_buffer("elites", torch.arange(n_elites))

    # ------------------------------------------------------------------------------ normaliser
    def fit_normalizer(self, x: Tensor, sync: RankSync | None = None) -> None:
        """Set ``input_mean``, ``input_std`` to the per-dimension mean and (population) standard
        deviation of ``x [N, in]``; a std below ``1e-12`` is replaced by 1 (MBPO's scaler).
        With data-parallel ranks (``sync`` active), of every rank's ``x`` together (two passes:
        sums, then squared deviations from the common mean)."""
        if x.dim() != 2 or x.shape[-1] != self.in_dim or x.shape[0] == 0:
            raise ValueError(f"x must be [N >= 1, {self.in_dim}], got {tuple(x.shape)}")
        x = x.detach()
        if sync is not None and sync.active:
            count = sync.sum_(x.new_tensor(float(x.shape[0])))
            mean = sync.sum_(x.sum(dim=0)) / count
            std = (sync.sum_((x - mean).square().sum(dim=0)) / count).sqrt()
        else:
            mean = x.mean(dim=0)
            std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.zeros_like(mean)
        self.input_mean.copy_(mean)
        self.input_std.copy_(torch.where(std < 1e-12, torch.ones_like(std), std))

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - input_mean) / input_std``, any leading shape."""
        return (x - self.input_mean) / self.input_std

    # ------------------------------------------------------------------------------ network
    def _network(self, h: Tensor, members: Tensor | None = None) -> Tensor:
        """Normalised ``h [M, B, in]`` -> raw outputs ``[M, B, out + n_gaussian]``.

        Slice ``m`` goes through member ``members[m]`` (``long [M]``); ``members=None`` means all
        members in order (``M = E``). Selected weights are gathered with ``index_select``, so
        gradients flow back to exactly those members' parameters.
        """
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            weight, bias = layer.weight, layer.bias
            if members is not None:  # (on CPU, index_select of a 2-D view is ~1000x faster than of 3-D)
                weight = weight.flatten(1).index_select(0, members).view(-1, *weight.shape[1:])
                bias = bias.flatten(1).index_select(0, members).view(-1, *bias.shape[1:])
            if i == last:
                # Under autocast (``--trainer.precision bf16-mixed``) the hidden layers run in bf16;
                # the output layer (5% of MBPO's FLOPs) runs in the parameters' dtype so that the
                # predictions are not rounded to bf16 (models.mlp.outside_autocast).
                h, scope = outside_autocast(h, bias.dtype)
                with scope:
                    h = torch.baddbmm(bias, h, weight)
            else:
                h = torch.baddbmm(bias, h, weight)
            if i < last:
                h = self.act(h)
        return h

    def _split(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs ``[..., out + n_gaussian]`` -> ``mean [..., out]``, bounded ``logvar [..., n_gaussian]``."""
        mean, raw_logvar = raw.split([self.out_dim, self.n_gaussian], dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """All members: ``x [N, in]`` or ``[E, N, in]`` -> ``mean [E, N, out]``, ``logvar [E, N, n_gaussian]``."""
        if x.shape[-1] != self.in_dim or x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != self.n_members):
            raise ValueError(
                f"x must be [N, {self.in_dim}] or [{self.n_members}, N, {self.in_dim}], got {tuple(x.shape)}"
            )
        h = self.normalize(x)
        if h.dim() == 2:  # shared input: a stride-0 view, no copy
            h = h.expand(self.n_members, *h.shape)
        return self._split(self._network(h))

    def forward_members(self, x: Tensor, members: Tensor) -> tuple[Tensor, Tensor]:
        """The members ``members`` (``long [M]``) on the shared input ``x [N, in]``, or slice ``m``
        of ``x [M, N, in]`` through member ``members[m]``: ``mean [M, N, out]``, ``logvar [M, N,
        n_gaussian]``; other members are not computed."""
        h = self.normalize(x)
        if h.dim() == 2:
            h = h.expand(members.shape[0], *x.shape)
        return self._split(self._network(h, members))

    def forward_selected(
        self, x: Tensor, member: Tensor, *, chunk_size: int | None = None, block_rows: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Each sample through its own member only: ``x [N, in]``, ``member long [N]`` ->
        ``mean [N, out]``, ``logvar [N, n_gaussian]``, equal to ``forward(x)`` indexed at
        ``[member[i], i]`` (up to float rounding), and differentiable in ``x`` and the parameters.

        A segmented GEMM without a host sync (``segmented_gemm.segmented_forward``): samples are
        grouped by member and padded to chunks of ``chunk_size`` rows, one member per chunk, and all
        chunks run through one ``baddbmm`` per layer. Members with no samples get no chunk: MBPO
        samples among the elites, so the non-elites cost nothing. The cost is
        ``N + E * chunk_size`` rows instead of ``E * N``; when that is no saving (small ``N``) the
        automatic choice computes all members and gathers.

        ``chunk_size=None`` picks ``min(512, max(64, ceil(N / (8 E))))`` (at most 12.5% padding for
        large N). ``block_rows`` runs the chunks through the network in groups of about that many
        rows (a loop over row blocks, not members), which keeps activations in cache on CPU (2x
        faster at N = 100k); ``None`` means 4096 on CPU and one group elsewhere.
        """
        n, n_members = x.shape[0], self.n_members
        if x.dim() != 2 or x.shape[-1] != self.in_dim:
            raise ValueError(f"x must be [N, {self.in_dim}], got {tuple(x.shape)}")
        if member.shape != (n,) or member.dtype != torch.long:
            raise ValueError(f"member must be a long tensor of shape [{n}], got {member.dtype} {tuple(member.shape)}")
        if chunk_size is None:
            chunk_size = min(512, max(64, -(-n // (8 * n_members))))
            if (n // chunk_size + n_members) * chunk_size >= n_members * n:  # all members are cheaper
                mean, logvar = self(x)
                rows = torch.arange(n, device=x.device)
                return mean[member, rows], logvar[member, rows]
        elif not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        if block_rows is None:
            block_rows = 4096 if x.device.type == "cpu" else n + n_members * chunk_size
        elif not isinstance(block_rows, int) or block_rows < 1:
            raise ValueError(f"block_rows must be a positive int, got {block_rows!r}")

        raw = segmented_forward(
            self._network, self.normalize(x), member, n_members, chunk_size=chunk_size, block_rows=block_rows
        )
        return self._split(raw)

    # ------------------------------------------------------------------------------ prediction
    def sample_elites(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``long [n]``: an elite drawn uniformly at random for each of ``n`` samples."""
        pick = torch.randint(self.n_elites, (n,), generator=generator, device=self.elites.device)
        return self.elites[pick]

    def expected_value(self, mean: Tensor) -> Tensor:
        """``E[y]`` from a ``mean [..., out]``: the mean itself for Gaussian dims, ``sigmoid`` of the
        logit for the Bernoulli dims."""
        if self.n_logits == 0:
            return mean
        gauss, logits = mean.split([self.n_gaussian, self.n_logits], dim=-1)
        return torch.cat([gauss, torch.sigmoid(logits)], dim=-1)

    def forward_stratified(self, x: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Each sample through a random elite, the elites sharing the samples equally: ``x [N, in]``
        -> ``mean [N, out]``, ``logvar [N, n_gaussian]``.

        A random permutation of the rows is cut into ``n_elites`` groups of ``ceil(N / n_elites)``
        (the last one padded), group ``k`` through elite ``k``. Each sample's member is still uniform
        over the elites (stratified instead of independent draws), and the cost is ``N`` rows in one
        ``baddbmm`` per layer with no padding chunks and no weight gather when every member is an
        elite: MAAC's pathwise actor loss steps 256 start states this way (``forward_selected``
        would run 768 rows for them).
        """
        n, k = x.shape[0], self.n_elites
        per = -(-n // k)
        perm = torch.randperm(n, generator=generator, device=x.device)
        h = self.normalize(x).index_select(0, perm)
        if per * k > n:
            h = torch.cat([h, h.new_zeros(per * k - n, h.shape[-1])])
        members = None if k == self.n_members else self.elites  # all members: the order is irrelevant
        raw = self._network(h.view(k, per, -1), members).reshape(per * k, -1)
        return self._split(raw.index_select(0, torch.argsort(perm)))

    def predict(
        self, x: Tensor, *, mode: str, generator: torch.Generator | None = None, draw: str = "independent"
    ) -> tuple[Tensor, Tensor]:
        """Elite-aware prediction for rollouts: ``x [N, in]`` -> ``y [N, out]``, ``var [N, n_gaussian]``.

        - ``"sample"``: per sample an elite ``e`` uniformly at random, ``y = mu_e + sigma_e * xi``,
          ``xi ~ N(0, I)`` (MBPO ``FakeEnv.step``; reparameterised), ``var = sigma_e^2``;
        - ``"elite_mean"``: per sample a random elite, ``y = mu_e``, ``var = sigma_e^2``;
        - ``"mean"``: ``y = mean_{e in elites} mu_e`` (deterministic), ``var`` the variance of the
          equal mixture of the elites: ``mean_e sigma_e^2 + var_e mu_e``.

        ``draw`` picks the elites of ``"sample"`` and ``"elite_mean"``: ``"independent"`` (MBPO:
        each sample's elite drawn on its own, ``forward_selected``) or ``"stratified"`` (a random
        equal share of the samples per elite, ``forward_stratified``; same marginal per sample).

        Logit columns (``n_logits > 0``) are never noised: the chosen elite's logit, or for
        ``"mean"`` the mean of the elites' logits. Random draws use ``generator`` (on ``x``'s device).
        """
        if mode not in PREDICT_MODES:
            raise ValueError(f"mode must be one of {PREDICT_MODES}, got {mode!r}")
        if draw not in MEMBER_DRAWS:
            raise ValueError(f"draw must be one of {MEMBER_DRAWS}, got {draw!r}")
        g = self.n_gaussian
        if mode == "mean":
            mean, logvar = self.forward_members(x, self.elites)  # [n_elites, N, *]
            var = logvar.exp().mean(dim=0) + mean[..., :g].var(dim=0, unbiased=False)
            return mean.mean(dim=0), var
        if draw == "stratified":
            mean, logvar = self.forward_stratified(x, generator=generator)
        else:
            mean, logvar = self.forward_selected(x, self.sample_elites(x.shape[0], generator=generator))
        if mode == "sample":
            noise = torch.randn(x.shape[0], g, generator=generator, device=x.device, dtype=x.dtype)
            gauss = mean[:, :g] + (0.5 * logvar).exp() * noise
            mean = torch.cat([gauss, mean[:, g:]], dim=-1) if self.n_logits else gauss
        return mean, logvar.exp()

    # ------------------------------------------------------------------------------ losses
    def weight_decay_loss(self) -> Tensor:
        """``sum_l decay_l * 0.5 * ||W_l||^2`` over every layer's weights of all members (biases not
        decayed): MBPO's ``decay * tf.nn.l2_loss(W)`` on the whole ``[E, in, out]`` variable.

        Its value, for diagnostics: training applies its gradient ``decay_l * W_l`` through the
        optimizer (``model_training.make_model_optimizer``), not through ``loss``."""
        return sum(
            (0.5 * decay) * torch.dot(layer.weight.view(-1), layer.weight.view(-1))
            for decay, layer in zip(self.weight_decays, self.layers)
        )

    def loss(self, x: Tensor, y: Tensor) -> TensorDict:
        """MBPO's training loss on per-member minibatches ``x [E, B, in]``, ``y [E, B, out]``.

        - ``loss_nll = sum_e mean_{b,d} [(mu - y)^2 exp(-logvar) + logvar]`` (Gaussian NLL up to
          constants and a factor 1/2, as MBPO);
        - ``loss_logvar_bounds = 0.01 sum(max_logvar) - 0.01 sum(min_logvar)``;
        - ``loss_bce = sum_e mean_{b,d} BCE(logit, y)`` over the logit columns (only if ``n_logits > 0``).

        The training objective is the sum of the ``loss_*`` entries (``fit_ensemble`` sums them)
        plus MBPO's per-layer weight decay ``weight_decay_loss()``, whose gradient
        ``decay_l * W_l`` the optimizer adds (``make_model_optimizer``: Adam's L2 ``weight_decay``
        per layer, the same update; as a loss term its backward made four passes over every weight
        tensor per step). ``mse`` is a detached diagnostic
        (``mean_{e,b,d} (E[y_hat] - y)^2``).
        """
        if y.shape != (*x.shape[:-1], self.out_dim):
            raise ValueError(f"y must be [{', '.join(map(str, x.shape[:-1]))}, {self.out_dim}], got {tuple(y.shape)}")
        mean, logvar = self(x)
        g = self.n_gaussian
        err = mean[..., :g] - y[..., :g]
        nll = (err.square() * torch.exp(-logvar) + logvar).mean(dim=(1, 2)).sum()
        out = {
            "loss_nll": nll,
            "loss_logvar_bounds": 0.01 * self.max_logvar.sum() - 0.01 * self.min_logvar.sum(),
        }
        if self.n_logits:
            bce = F.binary_cross_entropy_with_logits(mean[..., g:], y[..., g:], reduction="none")
            out["loss_bce"] = bce.mean(dim=(1, 2)).sum()
        out["mse"] = (self.expected_value(mean.detach()) - y).square().mean()
        return TensorDict(out, batch_size=[])

    def holdout_mse(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-member ``mean_{n,d} (E[y_hat_e] - y)^2``, the early-stopping and elite score (no
        variance term): ``x [N, in]``, ``y [N, out]`` (or ``[E, N, *]``) -> ``[E]``."""
        mean, _ = self(x)
        return (self.expected_value(mean) - y).square().mean(dim=(1, 2))

    def member_parameters(self) -> list[nn.Parameter]:
        """The parameters with one slice per member (dim 0 is the member): every layer's weight and
        bias. The log-variance bounds are shared by all members and are not among them."""
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]
