"""The import rules of the layers (README "Architecture"), read from the source with ``ast``: every import
statement counts, inside functions too (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:`` (type hints only).

- no import cycles between modules;
- ``ensemble``'s core (``CORE``) imports only the core; the rest of ``ensemble`` outside the CLI (fusion,
  pipeline, post-processing, member check, evaluate, report) never imports ``members`` or ``submissions``;
- ``members`` imports only ``ensemble``'s core (never the pipeline, the member check, the report or the CLI);
  its contract (``MEMBER_CONTRACT``) imports no member infrastructure, and the infrastructure
  (``members.training``) imports no concrete member;
- ``submissions`` imports only ``ensemble``'s core;
- only ``ensemble.cli`` imports everything, and nothing imports ``ensemble.cli``;
- the committee's vote and the fusion's vote are one function of the core (``ensemble.voting.vote``).

On main at 3154541 (before issue 24) ``violations`` listed exactly:
- members.base imports members.predict, members.train (the base class implemented the image member);
- members.committee imports ensemble.fusion.vote, ensemble.pipeline;
- members.demo imports ensemble.check, ensemble.evaluate, ensemble.pipeline, submissions;
- members.video_predict imports ensemble.pipeline;
- import cycle: members.base -> members.predict -> members.registry -> members.base;
- members.committee and ensemble.fusion.vote do not vote with ensemble.voting.vote.
``violations(root)`` takes any checkout, so the claim can be rerun: ``python -c "import sys;
sys.path.insert(0, 'tests'); import test_layers; print(*test_layers.violations('/path/to/old/tree'), sep='\\n')"``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ensemble", "members", "submissions")
CORE_MODULES = "errors io tasks contract frames labels metrics outputs registry align voting params datasets"
CORE = {"ensemble"} | {f"ensemble.{m}" for m in CORE_MODULES.split()}  # the ground floor
MEMBER_CONTRACT = {"members", "members.base", "members.configs", "members.registry", "members.heads"}
CONCRETE_MEMBERS = {"members.cnn", "members.temporal", "members.committee", "members.keras"}


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> source file of every module of the three packages under ``root``."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST):
    """Every import statement, skipping ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if _type_checking_only(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the three packages that ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in modules}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def allowed(importer: str, imported: str) -> bool:
    """The rules, one importer at a time."""
    if importer.startswith("ensemble.cli"):
        return True
    if imported.startswith("ensemble.cli"):
        return False
    if importer in CORE:
        return imported in CORE
    if importer.startswith("ensemble."):
        return imported.startswith("ensemble")
    if importer.startswith("submissions"):
        return imported in CORE or imported.startswith("submissions")
    if importer in MEMBER_CONTRACT:
        return imported in CORE or imported in MEMBER_CONTRACT
    if importer.startswith("members.training"):
        return imported in CORE or (imported.startswith("members") and imported not in CONCRETE_MEMBERS)
    return imported in CORE or imported.startswith("members")


def violations(root: str | Path = ROOT) -> list[str]:
    """Every broken rule in the checkout at ``root``, one line each."""
    graph = import_graph(Path(root))
    found = [f"{a} imports {b}" for a, deps in sorted(graph.items()) for b in sorted(deps) if not allowed(a, b)]
    cycle = find_cycle(graph)
    if cycle:
        found.append("import cycle: " + " -> ".join(cycle))
    for voter in ("members.committee", "ensemble.fusion.vote"):
        if voter in graph and "ensemble.voting" not in graph[voter]:
            found.append(f"{voter} does not vote with ensemble.voting.vote")
    return found


def test_the_layers_keep_their_import_rules():
    assert violations() == []


def test_the_rules_catch_a_cycle_and_an_upward_import(tmp_path):
    """The checker itself: a tree with a cycle and a member importing the pipeline fails on both."""
    for rel, text in {
        "ensemble/__init__.py": "",
        "ensemble/pipeline.py": "",
        "ensemble/tasks.py": "from ensemble import errors\n",
        "ensemble/errors.py": "def f():\n    import ensemble.tasks\n",
        "members/__init__.py": "",
        "members/cnn.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ensemble.cli\n"
        "from ensemble.pipeline import x\n",
        "submissions/__init__.py": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = violations(tmp_path)
    assert "members.cnn imports ensemble.pipeline" in found
    assert "import cycle: ensemble.errors -> ensemble.tasks -> ensemble.errors" in found
    assert not any("ensemble.cli" in line for line in found)  # TYPE_CHECKING imports are hints only


def long_functions(root: Path = ROOT, limit: int = 50) -> list[str]:
    """Functions of the three packages longer than ``limit`` lines (decorators included)."""
    found = []
    for name, path in module_files(Path(root)).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                if node.end_lineno - start + 1 > limit:
                    found.append(f"{name}.{node.name}: {node.end_lineno - start + 1} lines")
    return found


def test_no_function_is_over_50_lines():
    assert long_functions() == []
