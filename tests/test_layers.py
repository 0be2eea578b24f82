"""The package's floors: a module imports only from its own floor and the ones below, so
data and models never depend on how runs are driven, and entry points stay on top.

Every module under ``src/`` must be placed on a floor here: a new module fails this test
until it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: lowest first; a pattern ending in ``*`` covers a package and its submodules
FLOORS: list[tuple[str, list[str]]] = [
    ("foundation", [
        "ser", "ser.errors", "ser.io", "ser.text", "ser.naming", "ser.checkpoint",
        "ser.hardware", "ser.runlock", "ser.quiet", "ser.plots", "ser.stats", "ser.search",
    ]),
    ("parts", [
        "ser.data*", "ser.models*", "ser.augment", "ser.stream", "ser.metrics", "ser.losses",
        "ser.schedules", "ser.averaging", "ser.callbacks", "ser.loggers",
    ]),
    ("configs and results", [
        "ser.resolvers", "ser.config", "ser.options", "ser.identity", "ser.results",
        "ser.tables", "ser.comparison", "ser.lengths",
    ]),
    ("runs", [
        "ser.module", "ser.inference", "ser.evaluate", "ser.record", "ser.resume",
        "ser.instantiate", "ser.out_of_memory", "ser.cross_eval", "ser.runner", "ser.trial",
        "ser.task",
    ]),
    ("entry points", [
        "ser.cli", "ser.sweep", "ser.predict", "ser.inspect", "ser.results_cli",
        "hydra_plugins*",
    ]),
]  # fmt: skip


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def floor_of(module: str) -> int | None:
    for level, (_, patterns) in enumerate(FLOORS):
        for pattern in patterns:
            package = pattern.removesuffix("*")
            if module == package or (pattern.endswith("*") and module.startswith(package + ".")):
                return level
    return None


def imported(path: Path) -> set[str]:
    """The project modules ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n for n in names if n in MODULES}


def test_every_module_is_on_a_floor():
    assert [m for m in MODULES if floor_of(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_nothing_from_a_floor_above(module):
    level = floor_of(module)
    above = {
        other: FLOORS[floor_of(other)][0]
        for other in imported(MODULES[module])
        if floor_of(other) is not None and floor_of(other) > level
    }
    assert above == {}, f"{module} ({FLOORS[level][0]}) imports from above: {above}"


def test_data_and_models_do_not_depend_on_each_other():
    for module, path in MODULES.items():
        for part, other in (("ser.data", "ser.models"), ("ser.models", "ser.data")):
            if module == part or module.startswith(part + "."):
                assert not [n for n in imported(path) if n.startswith(other)], module
