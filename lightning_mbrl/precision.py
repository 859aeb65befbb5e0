"""Mixed precision: one switch, Lightning's ``--trainer.precision``.

Under ``--trainer.precision bf16-mixed`` Lightning runs ``training_step`` inside ``torch.autocast``
(CPU or CUDA, bf16, weight-cast cache off). The library keeps that one mechanism and decides, in the
few places below, what must not be rounded to bf16:

- every network's output layer (``models.mlp.OutputLinear``, ``BatchedMLP``'s last layer, the
  ensemble's): Q-values, means, log-stds, log-variances and logits are computed in fp32 from bf16
  hidden activations, so everything downstream (log-probabilities and the tanh correction, TD targets,
  losses and their reductions, rollouts' states) is fp32;
- known reward and termination functions and the envs' own arithmetic (:func:`full_precision`);
- the parameters, their gradients, optimizer states, target networks' Polyak updates and normaliser
  statistics are fp32 tensors that autocast never touches (it only changes the dtype of the listed
  matrix ops' outputs).

What runs in bf16: the hidden layers' matrix multiplies (and their backward) and the hidden activations,
in updates, model fits, imagination rollouts and planners (evaluation callbacks enter the same context
through :func:`evaluation_context`).

:func:`default_precision` is the recipes' default: ``bf16-mixed`` where bf16 matrix multiplies run in
hardware (a CPU with AMX or AVX512-BF16, a CUDA GPU with bf16), ``32-true`` elsewhere (and for algorithms
without bf16 learning evidence, ``OffPolicyAlgorithm.bf16_by_default``). :func:`check_precision` refuses
the precisions without fp32 master weights. :func:`parameters_changed` drops autocast's cached bf16 weights
after in-place parameter updates. :func:`flush_denormals` (the CLI calls it first) flushes subnormal floats,
which made trained agents' Adam steps several times slower. docs/precision.md has the evidence and speed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, ContextManager, TypeVar

import torch

from lightning_mbrl.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])



def has_native_bf16_gemms(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a CUDA device with bf16 support, or a
    CPU with AVX512-BF16 or AMX (elsewhere bf16 GEMMs are emulated and slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's (private) probes
        return any(getattr(torch.cpu, check, lambda: False)() for check in checks)
    return False


def default_precision(accelerator: str = "auto") -> str:
    """The recipes' ``--trainer.precision``: ``"bf16-mixed"`` where the device the run will use
    (CUDA if ``accelerator`` allows it and one is present, else the CPU) has bf16 GEMMs in hardware,
    else ``"32-true"``."""
    use_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if has_native_bf16_gemms("cuda" if use_cuda else "cpu") else "32-true"


def precision_reason(precision: str, device: torch.device | str = "cpu", algorithm_default: bool = True) -> str:
    """One line for the run's log: the precision in use on ``device``, and why it is the default or not."""
    device = torch.device(device)
    fast = has_native_bf16_gemms(device)
    if not algorithm_default:
        why = "this algorithm's recipes default to 32-true until its learning tests pass in bf16-mixed"
    else:
        why = f"{'has' if fast else 'no'} native bf16 matrix units, so the recipes' default here is " \
              f"{'bf16-mixed' if fast else '32-true'}"
    return f"precision {precision} on {device.type} ({why}; --trainer.precision sets it)"


def flush_denormals() -> bool:
    """Treat subnormal floats (below 1.2e-38 in fp32 and bf16) as zero on this CPU (FTZ and DAZ), in
    this thread and in every thread it starts later: the intra-op (OpenMP) pool inherits the setting
    when it is created, so call this before the first parallel torch op (the CLI does, first thing).

    Why: Adam's second moments of weights whose gradient is (nearly) always zero (an observation
    feature that never changes, a dead unit) decay geometrically into the subnormal range, and x86
    arithmetic on subnormals takes a microcode assist per operation. After 1,000 MBPO updates 5-9% of
    the critic's and actor's Adam moments were subnormal, and an Adam step over a 512 x 512 weight
    with 5% of them took 1.9 ms instead of 0.8 ms (50%: 5.1 ms). Nothing learned depends on values
    below 1e-38. Returns whether the CPU supports it."""
    return bool(torch.set_flush_denormal(True))


def _autocast_off() -> ContextManager:
    stack = contextlib.ExitStack()
    for device_type in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device_type):
            stack.enter_context(torch.autocast(device_type, enabled=False))
    return stack


def full_precision(fn: F) -> F:
    """Run ``fn`` with autocast off (on every device where it is on): for computations that must not be
    rounded to bf16 under ``bf16-mixed``, such as known reward and termination functions (forward
    kinematics by matrix products) and env dynamics. Its floating inputs are used as they come (the
    networks' outputs are fp32 already)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _autocast_off():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def full_precision_context() -> ContextManager:
    """A context with autocast off on every device where it is on (:func:`full_precision` as a ``with``)."""
    return _autocast_off()


def parameters_changed() -> None:
    """Call after changing parameters in place (an optimizer step, a snapshot restored) while autocast
    may be on. ``torch.autocast`` with its weight-cast cache on (its default; Lightning turns it off)
    keeps the bf16 copy of a parameter until the outermost autocast context exits, and does not notice
    in-place updates: without this, every later forward in the same context would use the old weights."""
    torch.clear_autocast_cache()


def evaluation_context(precision_plugin: Any) -> ContextManager:
    """The trainer's precision for work done outside ``training_step`` (evaluation callbacks, planners,
    their own model fits): Lightning's ``precision_plugin.forward_context()``, which is autocast under
    ``bf16-mixed`` and nothing under ``32-true`` (``None``: nothing)."""
    if precision_plugin is None:
        return contextlib.nullcontext()
    return precision_plugin.forward_context()


SUPPORTED = ("32-true", "bf16-mixed", "64-true")


def check_precision(precision: Any) -> None:
    """``ConfigError`` naming ``trainer.precision`` unless it is one the algorithms support: ``32-true``,
    ``bf16-mixed`` (fp32 parameters and optimizer states, bf16 hidden-layer GEMMs) or ``64-true`` (for
    numerical checks). ``16-mixed`` would need a loss scaler across several optimizers and manual
    backward passes, and the ``-true`` half precisions keep no fp32 master weights."""
    if str(precision) not in SUPPORTED:
        raise ConfigError(f"trainer.precision must be one of {list(SUPPORTED)}, got {str(precision)!r}")
