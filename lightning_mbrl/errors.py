"""The one exception type for bad user input, and the check of constructor arguments against their types.

Raised with a one-line message that names the offending field and what is allowed; the CLI prints
it without a traceback.

The algorithms' constructors say what each argument allows through its annotation: ``Literal[...]``
for choices and jsonargparse's restricted numbers (``PositiveInt``, ``ClosedUnitInterval``, ...) for
ranges. LightningCLI (jsonargparse) enforces those types when it parses a config; the same types are
enforced for direct Python construction by :func:`check_arguments`, which each ``__init__`` calls
first with ``locals()``. Cross-field rules (``num_elites <= ensemble_size``, ...) stay code.
"""

from __future__ import annotations

import collections.abc
import functools
import numbers
import operator
import types
import typing
from typing import Any, Callable, Literal, Mapping, Union

from jsonargparse.typing import restricted_number_type


#: A number in (0, 1] (DQN's tau: 1 is a hard target copy).
LeftOpenUnitInterval = restricted_number_type(
    "LeftOpenUnitInterval", float, [(">", 0), ("<=", 1)], docstring="float restricted to be >0 and ≤1")
#: A number in [0, 0.9] (MBPO's holdout_ratio: at least a tenth of the data is trained on).
HoldoutRatio = restricted_number_type(
    "HoldoutRatio", float, [(">=", 0), ("<=", 0.9)], docstring="float restricted to be ≥0 and ≤0.9")


class ConfigError(ValueError):
    """A configuration value is invalid (unknown env id, non-positive budget, ...)."""


def require_positive(name: str, value: int | float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def require_non_negative(name: str, value: int | float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value!r}")


def require_in_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")


# --------------------------------------------------------------------------------- arguments vs. types
_INVALID = object()  # what _conform returns for a value its type does not allow


def check_arguments(fn: Callable | type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check each of ``values`` (an ``__init__``'s ``locals()``) against the annotation of the parameter
    of that name of ``fn`` (a function, or a class: its ``__init__``), with the types LightningCLI
    enforces: ``Literal`` choices, jsonargparse's restricted numbers (``PositiveInt(v)`` must accept the
    value; ints must be ints, never bools, and floats any real number but a bool), ``X | None`` (None
    allowed), tuples, lists and sequences element-wise, and plain ``int``, ``float``, ``bool``, ``str``,
    ``dict``. Names without an annotation (``self``, ``__class__``) are skipped.

    Raises ``ConfigError`` for the first value its type does not allow, naming the field and what
    is allowed: ``max_frames must be a positive int, got 0``. Returns the checked values as plain
    Python values (jsonargparse's ``PositiveInt(3)`` becomes ``3``; containers keep their type)."""
    hints = _type_hints(fn)
    checked = {}
    for name, value in values.items():
        if name not in hints or name == "return":
            continue
        plain_value = _conform(hints[name], value)
        if plain_value is _INVALID:
            raise ConfigError(f"{name} must be {describe_type(hints[name])}, got {value!r}")
        checked[name] = plain_value
    return checked


def plain(value: Any) -> Any:
    """``value`` with jsonargparse's restricted numbers (``PositiveInt(3)``, ...) made plain ``int`` /
    ``float``, inside tuples, lists and dicts too (containers keep their type); anything else as is.
    (jsonargparse passes such instances to the constructor; checkpoints, loaded with
    ``torch.load(weights_only=True)``, must hold plain values.)"""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and type(value) is not int:
        return int(value)
    if isinstance(value, float) and type(value) is not float:
        return float(value)
    if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
        return type(value)(plain(v) for v in value)
    if type(value) is dict:
        return {k: plain(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=None)
def _type_hints(fn: Callable | type) -> dict[str, Any]:
    return typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn)


def _is_restricted_number(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, (int, float)) and hasattr(tp, "_restrictions")


def _conform(tp: Any, value: Any) -> Any:
    """``value`` as a plain value if ``tp`` allows it, else ``_INVALID``."""
    if tp is Any:
        return value
    if tp is type(None) or tp is None:
        return value if value is None else _INVALID
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        for arg in args:
            result = _conform(arg, value)
            if result is not _INVALID:
                return result
        return _INVALID
    if origin is Literal:
        return value if any(type(value) is type(a) and value == a for a in args) else _INVALID
    if _is_restricted_number(tp):
        base = tp._type
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if base is int else numbers.Real):
            return _INVALID
        try:
            tp(value)
        except (ValueError, TypeError):
            return _INVALID
        return base(value)
    if tp is bool:
        return value if isinstance(value, bool) else _INVALID
    if tp is int:
        return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else _INVALID
    if tp is float:
        return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else _INVALID
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (tuple, list)):
            return _INVALID
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length
            if len(args) != len(value):
                return _INVALID
            items = [_conform(a, v) for a, v in zip(args, value)]
        else:
            items = [_conform(args[0], v) for v in value] if args else list(value)
        if any(item is _INVALID for item in items):
            return _INVALID
        return type(value)(items)
    if origin in (dict, collections.abc.Mapping) or tp in (dict, collections.abc.Mapping):
        return value if isinstance(value, collections.abc.Mapping) else _INVALID
    if isinstance(tp, type):
        return value if isinstance(value, tp) else _INVALID
    return value  # a type this check does not know: jsonargparse's business


_NAMED = {  # restricted number types by (base type, sorted restrictions): (singular, plural)
    (int, ((operator.gt, 0),)): ("a positive int", "positive ints"),
    (float, ((operator.gt, 0),)): ("a positive number", "positive numbers"),
}
_NOUNS = {
    int: ("an int", "ints"), float: ("a number", "numbers"), bool: ("a bool", "bools"), str: ("a string", "strings"),
}
_BRACKETS = {operator.ge: "[", operator.gt: "(", operator.le: "]", operator.lt: ")"}
_SYMBOLS = {
    operator.gt: ">", operator.ge: ">=", operator.lt: "<", operator.le: "<=", operator.eq: "==", operator.ne: "!=",
}


def describe_type(tp: Any, plural: bool = False) -> str:
    """What ``tp`` allows, in words: ``a positive int``, ``a number in [0, 1]``, ``an int >= 0 or None``,
    ``one of ['known', 'learned', 'never']``, ``a list of positive ints`` (``plural``: ``positive ints``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None) or tp is None:
        return "None"
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe_type(a, plural) for a in args)
    if origin is Literal:
        return f"one of {list(args)}"
    if _is_restricted_number(tp):
        return _describe_restricted(tp, plural)
    if tp in _NOUNS:
        return _NOUNS[tp][plural]
    if origin in (tuple, list, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} ({', '.join(describe_type(a) for a in args)})"
        return f"a list of {describe_type(args[0], plural=True)}" if args else "a list"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, collections.abc.Mapping):
        return "mappings" if plural else "a mapping"
    return getattr(tp, "__name__", str(tp))


def _describe_restricted(tp: Any, plural: bool) -> str:
    restrictions = tuple(sorted(tp._restrictions, key=lambda r: (r[1], r[0].__name__)))
    named = _NAMED.get((tp._type, restrictions))
    if named is not None:
        return named[plural]
    noun = _NOUNS[tp._type][plural]
    ops = [op for op, _ in restrictions]
    if (tp._join == "and" and len(restrictions) == 2 and ops[0] in (operator.ge, operator.gt)
            and ops[1] in (operator.le, operator.lt)):
        (low_op, low), (high_op, high) = restrictions
        return f"{noun} in {_BRACKETS[low_op]}{low:g}, {high:g}{_BRACKETS[high_op]}"
    return f" {tp._join} ".join(f"{noun} {_SYMBOLS[op]} {ref:g}" for op, ref in restrictions)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite value or a loss that exploded (``callbacks.DivergenceGuard``).
    The CLI prints its one-line message without a traceback and exits with code 1."""
