"""The floors of the package: lower floors never import upper ones (every import, lazy ones too).

Floors, low to high: the counterpoint base (errors, settings, schemas, jsonl, textfiles, datasets,
models, decoding, ...) → ``infra`` → ``workers`` → ``services`` → the SDK (``client``, which needs
only the base) → ``ui`` → the CLI and the local stack (``cli``, ``__main__``, ``infra.launcher``,
``infra.demo``), which start and drive everything below them. Each package's docstring says the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"counterpoint": "counterpoint", "infra": "counterpoint.infra", "workers": "counterpoint.workers",
           "services": "counterpoint.services", "ui": "counterpoint.ui"}  # fmt: skip
STACK = (
    "counterpoint.cli",
    "counterpoint.__main__",
    "counterpoint.infra.launcher",
    "counterpoint.infra.demo",
)
ALLOWED = {
    "base": {"base"},
    "infra": {"base", "infra"},
    "workers": {"base", "infra", "workers", "workers.config"},
    "services": {"base", "infra", "services", "workers.config"},
    "client": {"base", "client"},
    "ui": {"base", "client", "ui", "workers.config"},
}


def floor(module: str) -> str | None:
    """The floor a ``counterpoint...`` module lives on (None for other packages)."""
    parts = module.split(".")
    if parts[0] != "counterpoint":
        return None
    if any(module == top or module.startswith(f"{top}.") for top in STACK):
        return "stack"
    if module == "counterpoint.workers.config" or module.startswith("counterpoint.workers.config."):
        return "workers.config"
    if len(parts) > 1 and parts[1] in ("infra", "workers", "services", "ui", "client"):
        return parts[1]
    return "base"


def modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            found.append((".".join((package, *parts)).removesuffix(".__init__"), path))
    return found


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # the module or its member
    return names


def test_the_floor_rules_see_every_package() -> None:
    found = {floor(name) for name, _ in modules()}
    assert found == {"base", "infra", "workers", "workers.config", "services", "client", "ui", "stack"}
    assert floor("counterpoint.decoding.loading") == "base" and floor("torch") is None


@pytest.mark.parametrize("name,path", modules(), ids=lambda value: str(value))
def test_no_module_imports_a_floor_above_its_own(name: str, path: Path) -> None:
    own = floor(name)
    if own == "stack":
        return
    allowed = ALLOWED["workers" if own == "workers.config" else own]
    wrong = sorted(n for n in imported(path) if floor(n) not in (None, *allowed))
    assert not wrong, f"{name} ({own}) imports {wrong}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from counterpoint.infra.tracking import client\n")
    assert imported(bad) == {"counterpoint.infra.tracking.client"}
    assert floor("counterpoint.infra.tracking.client") not in ALLOWED["base"]
