"""The package's layering: pure domain packages, and no import cycle anywhere."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sigmasight_assets

PACKAGE_DIR = Path(sigmasight_assets.__file__).parent
DOMAIN_PACKAGES = ["accounting", "risk", "market_data"]


def _modules() -> dict[str, Path]:
    found = {}
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="sigmasight_assets."):
        spec = info.module_finder.find_spec(info.name)  # type: ignore[call-arg]
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The sigmasight_assets modules ``name`` imports (module level or inside functions)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in out if m.startswith("sigmasight_assets")}


@pytest.mark.parametrize("package", DOMAIN_PACKAGES)
def test_domain_packages_import_no_dagster(package):
    modules = [m for m in _modules() if m.startswith(f"sigmasight_assets.{package}")]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster'))\n"
        "print(','.join(loaded))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert modules and loaded == "", f"importing {package} loads {loaded}"


def test_the_package_has_no_import_cycle():
    modules = _modules()
    graph = {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))
