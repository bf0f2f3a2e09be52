"""No import cycles inside formers/, read from the source (nothing is imported to check it).

Every `import` and `from ... import` counts, at the top of a module or inside a function: a
deferred import hides a cycle, it does not remove one. Only `if TYPE_CHECKING:` blocks are left
out (they never run). Importing `formers.a.b` also runs the package `formers.a`, so that is an
edge too, except to a package that contains the importing module (Python has already started it).
Tables of "module:Class" strings (families, tasks, kernels) are imported on demand by design and
are not imports of the module that holds the table.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "formers"


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module and package of formers/."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The formers modules `name` imports anywhere in its body (TYPE_CHECKING blocks excepted)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for stmt in child.orelse:
                    visit_node(stmt)
                continue
            visit_node(child)

    def visit_node(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
        visit(node)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        parts = name.split(".")
        own_packages = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        edges = set()
        for target in imported(name, path, known):
            pieces = target.split(".")
            for i in range(1, len(pieces) + 1):  # the target and the packages Python runs to reach it
                step = ".".join(pieces[:i])
                if step in known and step not in own_packages:
                    edges.add(step)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycle_inside_formers():
    graph = import_graph()
    assert len(graph) > 50 and graph["formers.io"]  # the walk found the package and its imports
    found = cycles(graph)
    assert found == [], "import cycles (each a set of modules that import each other):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_the_checker_finds_a_deferred_cycle_and_skips_type_checking(tmp_path, monkeypatch):
    pkg = tmp_path / "formers"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from formers.sub import b\n")  # deferred: still an edge
    (pkg / "sub" / "b.py").write_text("import formers.a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import formers.d\n")
    (pkg / "d.py").write_text("import formers.c\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert cycles(import_graph()) == [["formers.a", "formers.sub.b"]]  # and not c <-> d


def test_leaves_stay_leaves():
    graph = import_graph()
    assert graph["formers.storage"] == {"formers.errors"}  # below training, interop and loading
    assert graph["formers.nn.kernels"] == {"formers.nn.masks"}  # the dense math: no table, no long kinds
    assert "formers.io" not in graph["formers.training.trainer"] | graph["formers.interop.hf"]
