"""Imports point downward only: cli -> services -> domain/adapters; domain stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "airochat"
# what each layer may import from airochat
ALLOWED = {
    "domain": {"domain", "errors"},
    "adapters": {"adapters", "errors"},
    "services": {"services", "domain", "adapters", "errors"},
}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airochat"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("airochat")}
    return out


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports(layer: str) -> None:
    for path in (PKG / layer).glob("*.py"):
        for mod in imports(path):
            parts = mod.split(".")
            target = parts[1] if len(parts) > 1 else ""
            assert target in ALLOWED[layer], f"{path.name} ({layer}) imports {mod}"


def test_domain_has_no_io_libraries() -> None:
    for path in (PKG / "domain").glob("*.py"):
        text = path.read_text()
        for lib in ("llama_cpp", "prompt_toolkit", "rich", "huggingface_hub", "typer"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, (path.name, lib)


def test_modules_stay_readable() -> None:
    for path in PKG.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path
