"""T0: the import direction of docs/architecture.md holds. Each layer imports only the layers below it:
pure-torch layers (envs, data, models, objectives, planners) never import Lightning, callbacks never
import an algorithm (they read the module through ``lightning_mbrl.protocols``), and nothing imports
upwards (models never see objectives, objectives never see algorithms, nobody sees recipes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = {"keys", "errors", "protocols", "distributed", "progress", "allocator", "stats", "precision"}
# layer -> the lightning_mbrl layers it may import (besides itself); None: any but the forbidden
ALLOWED = {
    "core": set(),
    "envs": {"core"},
    "data": {"core", "envs"},
    "models": {"core"},
    "objectives": {"core", "models"},
    "planners": {"core", "models", "objectives"},
    "algos": {"core", "envs", "data", "models", "objectives", "planners"},
    "callbacks": {"core", "envs", "data", "models", "objectives", "planners"},
    "cli": {"core", "callbacks"},
    "recipes": {"core", "algos", "cli"},
}
LIGHTNING_FREE = {"core", "envs", "data", "models", "objectives", "planners"}


def layer_of_file(rel_path: Path) -> str:
    rel = rel_path.parts
    if rel[0] in ("callbacks", "recipes"):
        return rel[0]
    name = rel[1].removesuffix(".py")
    if name in ("cli", "plot", "report"):
        return "cli"
    return "core" if name in CORE or name == "__init__" else name


def layer_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in ("callbacks", "recipes"):
        return parts[0]
    if parts[0] != "lightning_mbrl" or len(parts) == 1:
        return None
    if parts[1] in ("cli", "plot", "report"):
        return "cli"
    return "core" if parts[1] in CORE else parts[1]


def imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lightning_mbrl":  # from lightning_mbrl import keys, progress
                found += [f"lightning_mbrl.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
    return found


FILES = sorted([*(ROOT / "lightning_mbrl").rglob("*.py"), *(ROOT / "callbacks").glob("*.py"),
                *(ROOT / "recipes").glob("*.py")])


def violations(rel_path: Path, source: str) -> list[str]:
    """The imports of the file at ``rel_path`` (relative to the repository) that break the layering."""
    layer = layer_of_file(rel_path)
    if layer not in ALLOWED:
        return [f"unknown layer {layer!r}: add it to docs/architecture.md and ALLOWED"]
    wrong = []
    for module in imports(source):
        target = layer_of_module(module)
        if target is not None and target != layer and target not in ALLOWED[layer]:
            wrong.append(f"{module} ({target})")
        if layer in LIGHTNING_FREE and module.split(".")[0] in ("pytorch_lightning", "lightning", "lightning_fabric"):
            wrong.append(f"{module} (Lightning)")
    return wrong


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    rel = path.relative_to(ROOT)
    assert not violations(rel, path.read_text()), f"{rel} ({layer_of_file(rel)}) imports {violations(rel, path.read_text())}"


def test_the_check_sees_a_wrong_import():
    source = "import torch\nfrom lightning_mbrl.algos.sac import SAC\nimport pytorch_lightning as pl\n"
    assert violations(Path("lightning_mbrl/models/x.py"), source) == [
        "lightning_mbrl.algos.sac (algos)", "pytorch_lightning (Lightning)"]
    assert violations(Path("callbacks/x.py"), "from lightning_mbrl.algos.mbpo import MBPO") == [
        "lightning_mbrl.algos.mbpo (algos)"]
    assert violations(Path("lightning_mbrl/algos/x.py"), source) == []


# What callbacks may read of a module besides the protocols: nn.Module / LightningModule's own API.
MODULE_API = {"device", "log", "named_parameters", "named_buffers", "global_rank"}


def protocol_members() -> set[str]:
    import inspect

    from lightning_mbrl import protocols

    names: set[str] = set()
    for _, proto in inspect.getmembers(protocols, inspect.isclass):
        if getattr(proto, "_is_protocol", False):
            names |= {n for n in vars(proto) if not n.startswith("_")} | set(getattr(proto, "__annotations__", {}))
    return names


def test_callbacks_read_modules_only_through_the_protocols():
    """Every attribute a callback reads of the LightningModule (``pl_module.x``, ``module.x``,
    ``trainer.lightning_module.x``) is declared by a protocol of ``lightning_mbrl.protocols`` (or is
    ``nn.Module``/``LightningModule`` API): no reaching into ``runtime``, ``hparams`` or ``world_model``."""
    allowed = protocol_members() | MODULE_API
    assert {"frames", "rank_seed", "real_replay", "step", "policy_dist", "q_values"} <= allowed
    reads: dict[str, set[str]] = {}
    for path in sorted((ROOT / "callbacks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            is_module = isinstance(owner, ast.Name) and owner.id in ("pl_module", "module", "run")
            is_module |= isinstance(owner, ast.Attribute) and owner.attr == "lightning_module"
            if is_module:
                reads.setdefault(node.attr, set()).add(path.name)
    undeclared = {name: sorted(files) for name, files in reads.items() if name not in allowed}
    assert not undeclared, f"callbacks read module attributes no protocol declares: {undeclared}"
