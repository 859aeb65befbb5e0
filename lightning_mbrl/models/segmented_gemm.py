"""The segmented GEMM behind ``GaussianEnsemble.forward_selected``: every sample through its own
ensemble member, at the cost of one member per sample (not E), without a host sync.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def segmented_forward(
    network: Callable[[Tensor, Tensor], Tensor],
    h: Tensor,
    member: Tensor,
    n_members: int,
    *,
    chunk_size: int,
    block_rows: int,
) -> Tensor:
    """Row ``i`` of ``h [N, in]`` through member ``member[i]`` (``long [N]``, values in
    ``[0, n_members)``) of ``network``: ``[N, out]``.

    ``network(h [K, chunk_size, in], members long [K]) -> [K, chunk_size, out]`` runs slice ``k``
    through member ``members[k]`` (``GaussianEnsemble._network``: one ``baddbmm`` per layer with
    the members' weights gathered, ``[K, in, out]``).

    Samples are grouped by member and each member's group is padded to a multiple of
    ``chunk_size`` rows, so that every chunk of ``chunk_size`` rows belongs to one member. There are
    at most ``K = N // chunk_size + E`` chunks (``E = n_members``), a bound known without reading
    ``member``; chunk ``k`` runs through member ``chunk_member[k]`` (one ``baddbmm`` per layer over
    all chunks, whatever their members). Members with no samples get no chunk. The cost is
    ``N + E * chunk_size`` rows instead of ``E * N``. The chunks go through ``network`` in groups
    of about ``block_rows`` rows (a loop over row blocks, not members).
    """
    n = h.shape[0]
    n_chunks = n // chunk_size + n_members
    # [E] samples per member (scatter_add, not bincount: bincount syncs with the host on CUDA)
    counts = torch.zeros(n_members, dtype=torch.long, device=h.device)
    counts.scatter_add_(0, member, torch.ones_like(member))
    member_chunks = (counts + chunk_size - 1) // chunk_size  # [E] chunks per member
    chunk_end = member_chunks.cumsum(0)  # [E] one past each member's last chunk
    # Rank of each sample within its member's group (stable sort by member).
    order = torch.argsort(member, stable=True)
    sorted_member = member[order]
    group_start = counts.cumsum(0) - counts  # [E] first sorted position of each member
    rank = torch.empty_like(member)
    rank[order] = torch.arange(n, device=h.device) - group_start[sorted_member]
    slot = (chunk_end - member_chunks)[member] * chunk_size + rank  # [N] row in the padded layout
    # Member of each chunk; the unused trailing chunks (padding only) take the last member.
    chunk_member = torch.searchsorted(chunk_end, torch.arange(n_chunks, device=h.device), right=True)
    chunk_member = chunk_member.clamp_(max=n_members - 1)

    padded = h.new_zeros(n_chunks * chunk_size, h.shape[-1]).index_copy(0, slot, h)
    padded = padded.view(n_chunks, chunk_size, h.shape[-1])
    group = max(1, block_rows // chunk_size)  # chunks per block
    blocks = [network(padded[k : k + group], chunk_member[k : k + group]) for k in range(0, n_chunks, group)]
    raw = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
    return raw.view(n_chunks * chunk_size, -1).index_select(0, slot)
