"""The one exception type for bad user input.

Raised with a one-line message that names the offending field and what is allowed; the CLI prints
it without a traceback.
"""


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


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite value or a loss that exploded (``callbacks.DivergenceGuard``).
    The CLI prints its one-line message without a traceback and exits with code 1."""
