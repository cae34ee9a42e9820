"""The shape of the package, held by tests: no import cycle anywhere, short command functions,
signals handled in one module. (Layer directions and the 60-line limit: test_layers.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "airochat"
MAX_CLI_FUNCTION_LINES = 40
SIGNAL_MODULES = {"adapters/process_signals.py", "entry.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imported(path: Path) -> set[str]:
    """Every airochat module `path` imports, at module level or inside a function (the
    names a `from` import brings are counted when they are modules themselves)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            names = {a.name for a in node.names}
            out |= subs if subs and len(subs) == len(names) else {node.module, *subs}
    return out & MODULES.keys()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph`, as the modules along it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(mod: str) -> list[str] | None:
        state[mod] = "open"
        path.append(mod)
        for dep in sorted(graph[mod]):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[mod] = "done"
        return None

    for mod in sorted(graph):
        if mod not in state and (found := visit(mod)):
            return found
    return None


def import_graph() -> dict[str, set[str]]:
    graph = {mod: imported(path) - {mod} for mod, path in MODULES.items()}
    assert len(graph) > 80  # the whole package was read
    return graph


def test_no_import_cycle_anywhere() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the body's first statement after the docstring to the end (a command's
    option declarations are its signature, not its body)."""
    first = node.body[0]
    start = first.lineno
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        start = node.body[1].lineno if len(node.body) > 1 else node.end_lineno or 0
    return (node.end_lineno or 0) - start + 1


def test_cli_functions_stay_under_40_lines() -> None:
    """Every function in cli/ -- the commands first -- is a few lines: build the request,
    call the service, print."""
    long = []
    for path in (PKG / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and (n := body_lines(node)) > MAX_CLI_FUNCTION_LINES:
                long.append(f"cli/{path.name}:{node.name} ({n} lines)")
    assert not long, long


def test_signal_is_imported_in_one_module_and_the_console_entry() -> None:
    """The chat takes a cancel token, the template budget counts steps: nothing else
    installs a handler or reads a signal."""
    found = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "signal" or n.startswith("signal.") for n in names):
                found.append(rel)
    assert set(found) <= SIGNAL_MODULES, found
    assert "adapters/process_signals.py" in found
