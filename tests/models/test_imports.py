"""The model package imports without cycles, and the registry imports a model module only when
that model is asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from seqbench.models.registry import BUILTIN, all_models, get_model

PACKAGE = Path(__file__).resolve().parents[2] / "seqbench"
MODELS = "seqbench.models"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in (PACKAGE / "models").rglob("*.py")}


def import_time_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements that run when the module is imported: the top level, class bodies and
    branches, but not function bodies nor ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.extend(import_time_statements(node.orelse))
            continue
        out.append(node)
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and not isinstance(node, ast.ExceptHandler):
                out.extend(import_time_statements(inner))
    return out


def imported_modules(path: Path) -> set[str]:
    """The seqbench.models modules that importing ``path`` imports first (packages included:
    importing a.b.c runs a.b's __init__ first)."""
    found: set[str] = set()
    for node in import_time_statements(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [t if t in MODULES else node.module for t in targets]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            found.update(
                ".".join(parts[:i])
                for i in range(2, len(parts) + 1)
                if ".".join(parts[:i]) in MODULES
            )
    return found - {module_name(path)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (node → nodes it depends on) as a path, or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for dependency in sorted(graph.get(name, set())):
            cycle = visit(dependency, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


def test_the_model_package_has_no_import_cycle() -> None:
    graph = {name: imported_modules(path) for name, path in MODULES.items()}
    # the parser sees the edges, including packages and submodules named in a from-import
    assert {"seqbench.models.mamba_family", "seqbench.models.registry"} <= graph[
        "seqbench.models.mamba4rec"
    ]
    assert "seqbench.models.layers" in graph["seqbench.models.layers.mamba"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_each_model_module_imports_on_its_own() -> None:
    """Every model module first in a fresh interpreter (an order-dependent cycle would fail)."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('seqbench')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *sorted(MODULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_builtin_table_names_each_models_own_module() -> None:
    for name, module in BUILTIN.items():
        assert get_model(name).cls.__module__ == module
    ours = {n for n, s in all_models().items() if s.cls.__module__.startswith("seqbench.")}
    assert ours == set(BUILTIN)


def test_a_model_is_imported_only_when_asked_for() -> None:
    code = (
        "import sys\n"
        "from seqbench.models.registry import get_model\n"
        "get_model('sasrec')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('seqbench.models.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "seqbench.models.sasrec" in loaded
    assert not {"seqbench.models.mamba4rec", "seqbench.models.m2rec"} & loaded
