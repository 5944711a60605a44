"""The package layout holds: imports run downwards only, no circle between files, no private names
borrowed across files, class paths imported in one place, and each package imports alone.

Floors, lowest first (a module imports its own floor's package or lower floors):

    ram_lightning.errors, ram_lightning.seeds      leaves
    estimators | datamodules                       the estimators' contract | data (neither imports the other)
    ram_lightning.core                             networks
    ram_lightning.models                           LightningModules
    ram_lightning.diagnostics | ram_lightning.viz  (neither imports the other)
    ram_lightning.run                              the `ram` command
    ram_lightning.compare                          `ram compare`: runs of `ram fit` as jobs, the report
    ram_lightning (top: __init__, the console script and alias modules), benchmarks
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from tests.tiny_run import ROOT, subprocess_env

PACKAGES = ("ram_lightning", "estimators", "datamodules", "benchmarks")
# (prefix, floor): the longest matching prefix decides a module's floor.
FLOORS = (
    ("ram_lightning.errors", 0), ("ram_lightning.seeds", 0),
    ("estimators", 1), ("datamodules", 1),
    ("ram_lightning.core", 2),
    ("ram_lightning.models", 3),
    ("ram_lightning.diagnostics", 4), ("ram_lightning.viz", 4),
    ("ram_lightning.run", 5),
    ("ram_lightning.compare", 6),
    ("ram_lightning", 7), ("benchmarks", 8),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> Dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def floor_of(module: str) -> Tuple[str, int]:
    """``(the prefix that decides it, floor)`` of a project module."""
    prefix, floor = max(((p, f) for p, f in FLOORS if module == p or module.startswith(p + ".")), key=lambda pf: len(pf[0]))
    return prefix, floor


def imports_of(module: str, path: Path, modules: Dict[str, Path]) -> List[Tuple[str, Optional[str], int]]:
    """``(imported project module, imported name or None, line)`` for every import in the file,
    module-level and lazy (inside functions) alike."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((child, None, node.lineno) if child in modules else (base, alias.name, node.lineno))
    return [(target, name, line) for target, name, line in found if target.split(".")[0] in PACKAGES and target in modules]


def graph() -> Dict[str, Set[str]]:
    modules = project_modules()
    return {module: {target for target, _, _ in imports_of(module, path, modules)} for module, path in modules.items()}


def test_imports_run_downwards_only():
    modules = project_modules()
    upward = []
    for module, path in modules.items():
        prefix, floor = floor_of(module)
        for target, _, line in imports_of(module, path, modules):
            target_prefix, target_floor = floor_of(target)
            if target_floor > floor or (target_floor == floor and target_prefix != prefix and floor not in (7, 8)):
                upward.append(f"{path.relative_to(ROOT)}:{line} ({prefix}) imports {target} ({target_prefix})")
    assert upward == []


def strongly_connected(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Tarjan's strongly connected components with more than one file (the circles)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return circles


def test_no_circle_between_files():
    # A package's __init__ gathering its own modules is no circle; a module importing its own
    # package's __init__ (``from ram_lightning.models import X`` inside models/) would be one.
    assert strongly_connected(graph()) == []


def test_the_checker_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_borrowed_from_another_file():
    modules = project_modules()
    borrowed = [f"{path.relative_to(ROOT)}:{line} imports {target}.{name}"
                for module, path in modules.items() for target, name, line in imports_of(module, path, modules)
                if name and name.startswith("_") and not name.startswith("__") and target != module]
    assert borrowed == []


def test_class_paths_are_imported_in_one_file_and_the_registry_is_private():
    offenders = []
    for module, path in project_modules().items():
        text = path.read_text()
        if "import_module(" in text and module != "estimators.registry":
            offenders.append(f"{module} calls importlib.import_module")
        if "_REGISTRY" in text and not module.startswith("estimators"):
            offenders.append(f"{module} reads estimators' private registry")
    assert offenders == []


# Each package imported alone in a fresh interpreter, and what it must not pull in.
ALONE = {
    "datamodules": ("ram_lightning.core", "ram_lightning.models"),
    "estimators": ("ram_lightning.core", "ram_lightning.models", "datamodules"),
    "ram_lightning.core": ("ram_lightning.models", "estimators", "datamodules"),
    "ram_lightning.models": ("ram_lightning.run", "ram_lightning.viz", "ram_lightning.diagnostics", "datamodules"),
    "ram_lightning.diagnostics": ("ram_lightning.run", "ram_lightning.viz"),
    "ram_lightning.viz": ("ram_lightning.run", "ram_lightning.diagnostics"),
    "ram_lightning.cli": (),
}


@pytest.mark.slow
def test_each_package_imports_alone_and_pulls_in_nothing_above_it():
    script = "\n".join([
        "import importlib, subprocess, sys",
        f"ALONE = {ALONE!r}",
        "bad = []",
        "for package, forbidden in ALONE.items():",
        "    code = f'import sys, {package}; print(*[m for m in {forbidden!r} if m in sys.modules])'",
        "    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)",
        "    if result.returncode or result.stdout.strip():",
        "        bad.append((package, result.stdout.strip(), result.stderr[-2000:]))",
        "print(bad)",
    ])
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
