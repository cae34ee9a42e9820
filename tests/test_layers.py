"""Imports point downward only: cli -> services -> adapters -> domain. The domain is pure Python
at the bottom (templates, conversation, events, the Engine protocol); adapters implement its
protocols; services wire them; the CLI parses and maps errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "airochat"
# what each layer may import from airochat
ALLOWED = {
    "domain": {"domain", "errors"},
    "adapters": {"adapters", "domain", "errors"},
    "services": {"services", "adapters", "domain", "errors"},
    "cli": {"cli", "services", "adapters", "domain", "errors", "entry", ""},
}
MAX_FUNCTION_LINES = 60


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
        for lib in ("llama_cpp", "prompt_toolkit", "rich", "huggingface_hub", "typer", "httpx"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, (path.name, lib)


def test_services_never_touch_the_terminal() -> None:
    for path in (PKG / "services").glob("*.py"):
        text = path.read_text()
        for lib in ("prompt_toolkit", "rich", "typer"):
            assert f"import {lib}" not in text and f"from {lib}" not in text, (path.name, lib)


def test_functions_stay_short() -> None:
    """Short enough to read at once. typer commands are exempt: their parameter lists are
    the option declarations, one per line."""
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body_start = node.body[0].lineno
            if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                body_start = node.body[1].lineno if len(node.body) > 1 else node.end_lineno or 0
            length = (node.end_lineno or 0) - body_start + 1
            if length > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(PKG)}:{node.name} ({length} lines)")
    assert not long, long
