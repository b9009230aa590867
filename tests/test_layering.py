"""The import direction of ../shared/DESIGN.md, checked on the source: supernet imports none of the other
packages; latency and pruning import supernet only (not each other); search may import those three;
nothing imports experiments but the CLI (search/cli.py lists command modules by name)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"supernet", "latency", "pruning", "search", "experiments"}
ALLOWED = {"supernet": set(), "latency": {"supernet"}, "pruning": {"supernet"},
           "search": {"supernet", "latency", "pruning"}, "experiments": PACKAGES}


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports; relative ones stay inside)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & PACKAGES


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    bad = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(f) - ALLOWED[package] - {package}
        if wrong:
            bad[str(f.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"imports against the layering of DESIGN.md: {bad}"


def test_the_check_sees_a_wrong_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\nfrom pruning.masks import apply_plan\nfrom . import sibling\n")
    assert imported_packages(f) == {"pruning"}
