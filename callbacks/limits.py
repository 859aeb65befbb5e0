"""``--callback_limits``: cap the cost arguments of the run's callbacks (``recipes/tiny.yaml``).

A recipe adds its evaluators in ``trainer.callbacks`` (``mbsac_humanoid.yaml``: BootsEval with 5
episodes of 500-candidate CEM). An overlay cannot shrink them in YAML: a later config's
``trainer.callbacks`` replaces the recipe's list instead of changing its entries. So the CLI applies
``callback_limits`` (a mapping ``argument: value``) after parsing: every callback config in
``trainer.callbacks`` (the recipe's, an overlay's, a flag's) that takes a named argument gets
``min(its value, the limit)``.
"""

from __future__ import annotations

import inspect
from typing import Any

from lightning_mbrl.errors import ConfigError, require_positive


def callback_arguments() -> set[str]:
    """The arguments the library's callbacks (``callbacks.__all__``) take."""
    import callbacks

    return {name for cls_name in callbacks.__all__
            for name in inspect.signature(getattr(callbacks, cls_name)).parameters}


def apply_callback_limits(callback_configs: Any, limits: dict[str, int] | None) -> None:
    """Lower each argument named in ``limits`` to at most its value in every callback config
    (jsonargparse ``class_path`` / ``init_args`` namespaces) that takes it; ``None`` values (no cap
    set, e.g. ``max_episode_steps``) stay. A name no callback takes is a ``ConfigError``."""
    if not limits:
        return
    known = callback_arguments()
    for name, limit in limits.items():
        if name not in known:
            raise ConfigError(f"callback_limits: {name!r} is not an argument of any callback in callbacks/ "
                              f"(they take {', '.join(sorted(known))})")
        require_positive(f"callback_limits.{name}", limit)
    configs = callback_configs if isinstance(callback_configs, list) else [callback_configs] if callback_configs else []
    for config in configs:
        init_args = config.get("init_args") if hasattr(config, "get") else None
        if init_args is None:
            continue
        for name, limit in limits.items():
            value = init_args.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                init_args[name] = limit
