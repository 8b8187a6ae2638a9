"""The shape of the ``harness`` package: no import cycles, no oversized modules.

The import graph is read from the source with :mod:`ast`, not by importing: a cycle that
Python tolerates today (one side imports lazily, inside a function) still counts, because
it ties the modules together all the same. Imports under ``if TYPE_CHECKING:`` are left
out: they never run. Importing ``a.b.c`` counts as an import of ``a.b.c`` only, not of the
packages ``a`` and ``a.b`` it passes through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import harness

PACKAGE_DIR = Path(harness.__file__).resolve().parent
MAX_LINES = 600

Graph = dict[str, dict[str, list[int]]]


def _modules(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Module name -> file, for every module of the package in ``root`` (packages as their
    ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at module level or nested, outside TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The longest module of the package that ``name`` is or lies in (an attribute of it)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path = PACKAGE_DIR) -> Graph:
    """``{module: {imported module of the same package: [line, ...]}}``."""
    modules = _modules(root)
    graph: Graph = {m: {} for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    # relative: level 1 is the package the module is in (a package: itself)
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                # ``from pkg import x``: the module pkg.x when x is one, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                owner = _owner(target, modules)
                if owner is not None:
                    graph[mod].setdefault(owner, []).append(node.lineno)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module, and modules importing
    themselves (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    if len(comp) > 1 or node in graph.get(node, {}):
                        found.append(sorted(comp))
    return sorted(found)


def describe_cycle(comp: list[str], graph: Graph, root: Path = PACKAGE_DIR) -> str:
    """The modules of one cycle and every import that ties them, with where it is."""
    members = set(comp)
    files = _modules(root)
    edges = []
    for a in comp:
        where = files[a].relative_to(root.parent)
        for b in sorted(graph[a]):
            if b in members:
                lines = ", ".join(map(str, sorted(set(graph[a][b]))))
                edges.append(f"    {a} -> {b}  ({where}, line {lines})")
    return f"  {len(comp)} modules: {', '.join(comp)}\n" + "\n".join(edges)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_reader_sees_relative_lazy_and_package_imports(tmp_path):
    # the reader must find every kind of import the real test relies on, or a cycle could hide
    root = tmp_path / "pkg"
    _write(root, {
        "__init__.py": "",
        "a.py": "from . import b\n",  # a sibling module, relatively
        "b.py": "def f():\n    from pkg.sub.c import thing\n",  # lazily, an attribute of c
        "sub/__init__.py": "from .c import thing\n",  # a package importing its own module
        "sub/c.py": ("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from pkg import a\n"  # never runs: no edge
                     "else:\n    import os\n"
                     "from .. import a\n"),  # two levels up
        "solo.py": "import pkg.solo\nimport json\n",  # itself; outside modules ignored
        "leaf.py": "from pkg import sub\nfrom pkg.sub import c\n",
    })
    graph = import_graph(root)
    assert graph == {
        "pkg": {}, "pkg.a": {"pkg.b": [1]}, "pkg.b": {"pkg.sub.c": [2]},
        "pkg.sub": {"pkg.sub.c": [1]}, "pkg.sub.c": {"pkg.a": [6]},
        "pkg.solo": {"pkg.solo": [1]}, "pkg.leaf": {"pkg.sub": [1], "pkg.sub.c": [2]},
    }
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.solo"]]
    text = describe_cycle(["pkg.a", "pkg.b", "pkg.sub.c"], graph, root)
    assert "pkg.b -> pkg.sub.c  (pkg/b.py, line 2)" in text
    assert cycles({"a": {"b": [1]}, "b": {}}) == []


def test_the_reader_reads_harness():
    graph = import_graph()
    assert "harness.errors" in graph["harness.registry"]  # at module level
    assert "harness.names" in graph["harness.metrics"]  # ``from harness import names``
    assert "harness.registry" in graph["harness.trial"]  # inside a function
    assert "harness.builtin.cgan" in graph["harness.builtin"]


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, (
        f"{len(found)} import cycle(s) in harness/ (lazy imports count; TYPE_CHECKING ones "
        "do not):\n" + "\n".join(describe_cycle(c, graph) for c in found))


def test_no_module_is_too_long():
    modules = _modules()
    long = sorted((len(p.read_text().splitlines()), m) for m, p in modules.items())
    over = [f"  {m}: {n} lines ({modules[m].relative_to(PACKAGE_DIR.parent)})"
            for n, m in long if n > MAX_LINES]
    assert not over, (f"{len(over)} module(s) above {MAX_LINES} lines (split them by job):\n"
                      + "\n".join(over))


def test_the_install_puts_only_harness_at_top_level():
    """Built-in plugins and report builders live inside ``harness``: nothing generic
    (``variants``, ``reports``) lands in site-packages, where a user's folder of that name
    would hide it or be hidden by it."""
    import importlib.metadata

    top = importlib.metadata.distribution("gan-harness").read_text("top_level.txt")
    assert top is not None and top.split() == ["harness"], top
    pyproject = (PACKAGE_DIR.parent / "pyproject.toml").read_text()
    assert 'include = ["harness*"]' in pyproject
