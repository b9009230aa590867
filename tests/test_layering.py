"""The import direction of ../shared/DESIGN.md, checked on the source: supernet imports none of the other
packages; latency and pruning import supernet only (not each other); search may import those three;
nothing imports experiments but the CLI (search/cli.py lists command modules by name) and the front door
(srnas/, the public API). Every import of the project goes through the one namespace (srnas.supernet, ...,
mapped from the folders by pyproject.toml): a bare `import supernet` works only beside the source. And no two files of the
project import each other, directly or round a circle, counting imports inside functions: a circle hidden in a
function-local import still breaks the module that loads second."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "srnas"
PACKAGES = {"supernet", "latency", "pruning", "search", "experiments"}
# the front door (srnas/: the API, `python -m srnas`) may import everything; no package imports it
ALLOWED = {"supernet": set(), "latency": {"supernet"}, "pruning": {"supernet"},
           "search": {"supernet", "latency", "pruning"}, "experiments": PACKAGES, NAMESPACE: PACKAGES}


def canonical(name: str) -> str:
    """A dotted import name as the module of the source tree it loads: srnas.supernet.config -> supernet.config;
    the front door's own modules keep their name (srnas, srnas.api)."""
    head, _, rest = name.partition(".")
    return rest if head == NAMESPACE and rest.split(".")[0] in PACKAGES else name


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports; relative ones stay inside); a package
    imported without the namespace is named as 'bare <name>'."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [f"{node.module}.{a.name}" for a in node.names] if node.module == NAMESPACE else [node.module]
    out = set()
    for name in names:
        head = name.split(".")[0]
        if head in PACKAGES:
            out.add(f"bare {head}")
        elif head == NAMESPACE:
            out.add(canonical(name).split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    bad = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(f) - ALLOWED[package] - {package}
        if wrong:
            bad[str(f.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"imports against the layering of DESIGN.md: {bad}"


def test_tests_import_through_the_namespace():
    bare = {str(f.relative_to(ROOT)): sorted(w for w in imported_packages(f) if w.startswith("bare "))
            for f in sorted((ROOT / "tests").rglob("*.py"))}
    assert not {k: v for k, v in bare.items() if v}, f"imports that miss the srnas namespace: {bare}"


def test_the_check_sees_a_wrong_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\nfrom srnas.pruning.masks import apply_plan\nfrom . import sibling\n"
                 "from srnas import latency\nimport search.loop\nimport srnas\n")
    assert imported_packages(f) == {"pruning", "latency", "bare search", NAMESPACE}


# ---- no import cycles between the project's files ---------------------------------------------------------

def _type_checking_only(node: ast.AST) -> bool:
    """Whether ``node`` is an ``if TYPE_CHECKING:`` block (its imports never run)."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST):
    """Every Import / ImportFrom of a module, inside functions too, but not under ``if TYPE_CHECKING``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def module_graph(root: Path, packages: set[str]) -> dict[str, set[str]]:
    """Module name -> the project modules it imports anywhere in its file (functions included).

    ``from pkg import name`` points at pkg/name.py when that file exists, else at pkg/__init__.py; an
    import of pkg.mod also points at pkg/__init__.py when the importer lies outside pkg.
    """
    files = {}
    for package in sorted(packages | ({NAMESPACE} if (root / NAMESPACE).is_dir() else set())):
        for f in sorted((root / package).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def known(name: str) -> str | None:
        """The longest prefix of a dotted name that is a project module."""
        parts = canonical(name).split(".")
        while parts and ".".join(parts) not in files:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, f in files.items():
        package = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [known(full) if (full := canonical(f"{base}.{a.name}")) in files else known(base)
                           for a in node.names]
            for t in filter(None, targets):
                # importing a.b.c runs a/__init__ and a/b/__init__ first, unless they are the importer's own
                # (already running) packages
                parts = t.split(".")
                runs = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
                if t.split(".")[0] in PACKAGES and NAMESPACE in files:
                    runs.add(NAMESPACE)   # srnas.supernet.x runs srnas/__init__ first
                graph[mod] |= {p for p in runs if p in files and p != mod and not mod.startswith(p + ".")}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> ... -> a) for every strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_a_cycle(graph, g) for g in groups]


def _a_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group (breadth first)."""
    start = min(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(group)


def test_no_import_cycles_between_files():
    cycles = import_cycles(module_graph(ROOT, PACKAGES))
    assert not cycles, "import cycles (function-local imports count too): " + "; ".join(
        " -> ".join(c) for c in cycles)


def test_the_cycle_check_catches_a_file_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\nfrom .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.sub import c  # a local import still counts\n    return c\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
                                      "def g():\n    from .. import a\n")
    (pkg / "clean.py").write_text("from . import a\n")
    graph = module_graph(tmp_path, {"pkg"})
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}   # a package's __init__ runs before its module
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]
    (pkg / "sub" / "c.py").write_text("def g():\n    return 1\n")
    assert import_cycles(module_graph(tmp_path, {"pkg"})) == []
