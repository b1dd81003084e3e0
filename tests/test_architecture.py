"""The import rules of CONTRIBUTING.md, checked on the source (an AST walk, nothing is imported).

1. **Stages follow the data flow.** Every module belongs to one layer of `LAYERS`; it may import its own
   layer and the layers before it, never a later one. Function-local imports count too: a local import
   that crosses the flow backwards is still a dependency against it.
2. **No circles.** The graph of module → module imports (local ones included) has no cycle, so every module
   can be read, tested and imported on its own.

`check_imports(root)` returns the violations as lines; the tests below run it on the package and on small
trees written on purpose with a forbidden import and with a circle, so that the check itself can fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hbench"

# Layers in flow order. A module's layer is its first sub-package (hbench/models/bpr.py -> "models") or,
# for a top-level module, its own name. Foundation modules hold what every stage shares (errors, atomic
# writes, configs, the run-directory layout, the protocol registry) and import no stage.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"version", "errors", "atomic", "paths", "locks", "devices", "compiled", "ui", "quiet_geoopt",
               "config", "protocols", "runs"}),
    frozenset({"geometry"}),
    frozenset({"datasets"}),
    frozenset({"features"}),
    frozenset({"models"}),
    frozenset({"evaluation"}),   # called by the trainer to validate, so it sits below training
    frozenset({"training"}),
    frozenset({"experiments"}),  # sweeps and tuning: many trainings, selection on validation
    frozenset({"reports"}),      # reads run and sweep directories; renders tables, summaries, plots
    frozenset({"__init__", "__main__", "api", "trackers", "cli"}),  # entry points
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (or package), dotted
    line: int


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def collect_imports(root: Path) -> tuple[set[str], list[Import]]:
    """Every module under `root` and every import of one of them (module level and function-local)."""
    package = root.name
    modules: set[str] = set()
    found: list[tuple[str, bool, ast.AST]] = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        modules.add(name)
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append((name, is_package, node))
    imports: list[Import] = []
    for name, is_package, node in found:
        if isinstance(node, ast.Import):
            imports += [Import(name, alias.name, node.lineno) for alias in node.names
                        if alias.name.split(".")[0] == package]
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != package:
            continue
        # `from pkg import sub` imports the sub-module when there is one.
        subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
        imports += [Import(name, sub, node.lineno) for sub in subs] or [Import(name, target, node.lineno)]
    return modules, imports


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    for index, layer in enumerate(LAYERS):
        if key in layer:
            return index
    raise KeyError(f"{module} belongs to no layer: add it to LAYERS (tests/test_architecture.py) and "
                   f"CONTRIBUTING.md")


def _cycles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a circle of imports."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.target in modules and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return components


def check_imports(root: Path) -> list[str]:
    """One line per violation of the two rules; empty when the tree follows them."""
    modules, imports = collect_imports(root)
    for module in modules:
        layer_of(module)  # every module must be placed before its imports can be judged
    problems = []
    for imp in imports:
        if layer_of(imp.target) > layer_of(imp.source):
            problems.append(f"{imp.source}:{imp.line} imports {imp.target}, a later stage")
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in _cycles(modules, imports)]
    return problems


def test_the_package_follows_the_import_rules() -> None:
    assert check_imports(PACKAGE) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "hbench"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    return root


def test_a_backward_import_is_reported_even_inside_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "geometry/scoring.py": "X = 1\n",
        "models/bpr.py": "from hbench.geometry.scoring import X\n",
        "evaluation/ranking.py": "from ..geometry import scoring\n",
        "models/base.py": "def f():\n    from hbench.evaluation.ranking import Y\n",
    })
    assert check_imports(root) == ["hbench.models.base:2 imports hbench.evaluation.ranking, a later stage"]


def test_a_foundation_module_importing_a_stage_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"datasets/store.py": "X = 1\n", "runs.py": "import hbench.datasets.store\n"})
    assert check_imports(root) == ["hbench.runs:1 imports hbench.datasets.store, a later stage"]


def test_a_circle_inside_one_stage_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "datasets/registry.py": "def lookup():\n    from .catalog import DATASETS\n",
        "datasets/catalog.py": "from hbench.datasets.registry import lookup\n",
        "datasets/store.py": "from . import registry\n",
    })
    assert check_imports(root) == ["import circle: hbench.datasets.catalog -> hbench.datasets.registry"]


def test_an_unknown_top_level_module_must_be_placed(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"newthing.py": "X = 1\n"})
    with pytest.raises(KeyError, match="belongs to no layer"):
        check_imports(root)
