"""Snapshots of the per-rank runtime for exact resume (DESIGN.md section 5). No Lightning.

Each function returns plain tensors, numbers, strings, lists and dicts, which a ``weights_only``
checkpoint load accepts, and its ``load_*`` partner puts the state back:

- ``rng_state``: torch (CPU and initialised CUDA devices), numpy's global and Python's ``random``;
- ``replay_state``: the filled part of a replay buffer *in storage order* plus its writer's cursor,
  so a restored buffer holds every transition at the same index and uniform sampling draws the
  same transitions from the same random numbers (copied: the size is proportional to the data,
  not to the preallocated capacity);
- ``collector_state``: the TorchRL collector's carrier, the tensordict that carries the current
  observation, step count and episode return from one batch to the next.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer


def _cpu_dict(td) -> dict[str, Any]:
    return td.to("cpu").clone().to_dict()


# ------------------------------------------------------------------------------------------ RNG
def rng_state() -> dict[str, Any]:
    mt_name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"name": mt_name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def load_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))


# ------------------------------------------------------------------------------------------ replay
def replay_state(buffer: ReplayBuffer, exclude: tuple[str, ...] = ("index", "collector")) -> dict[str, Any]:
    n = len(buffer)
    data = _cpu_dict(buffer.storage[:n].exclude(*exclude)) if n else {}
    return {"size": n, "data": data, "writer": dict(buffer._writer.state_dict())}


def load_replay_state(buffer: ReplayBuffer, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
    """Refill an empty ``buffer`` of at least the saved size."""
    if len(buffer):
        raise ValueError("load_replay_state needs an empty buffer")
    n = state["size"]
    if not n:
        return
    capacity = buffer.storage.max_size
    if n > capacity:
        raise ValueError(f"the checkpoint holds {n} transitions, more than the buffer's capacity {capacity}")
    buffer.extend(TensorDict.from_dict(state["data"], batch_size=[n], device=device))
    buffer._writer.load_state_dict(state["writer"])


# ------------------------------------------------------------------------------------------ collector
def collector_state(collector: Collector) -> dict[str, Any]:
    return {"carrier": _cpu_dict(collector._carrier)}


def load_collector_state(collector: Collector, state: dict[str, Any]) -> None:
    carrier = collector._carrier
    saved = TensorDict.from_dict(state["carrier"], batch_size=carrier.batch_size)
    for key, value in saved.items(include_nested=True, leaves_only=True):
        current = carrier.get(key, None)
        carrier.set(key, value if current is None else value.to(current.device))
