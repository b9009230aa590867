"""The README and docs/ say only what exists: short README, live links, real commands and options, real tests."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from srnas.search.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments/weights/README.md"]


def code_lines(page: Path) -> list[str]:
    """Lines inside ``` fences, with backslash continuations joined."""
    out, inside, pending = [], False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            pending += line.rstrip("\\")
            if not line.endswith("\\"):
                out.append(pending)
                pending = ""
    return out


def srnas_commands(page: Path) -> list[list[str]]:
    """Every `srnas ...` command shown in a code block, as tokens, comments dropped."""
    cmds = []
    for line in code_lines(page):
        line = line.split("#", 1)[0].strip()
        if line.startswith("srnas "):
            cmds.append(line.split()[1:])
    return cmds


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) < 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name} links to missing {target}"
        if anchor and dest.suffix == ".md":
            heads = {slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
            assert anchor in heads, f"{page.name} links to missing heading {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shown_commands_and_options_exist(page):
    root = build_parser()
    for tokens in srnas_commands(page):
        parser = root
        for tok in tokens:                      # descend through subcommand names
            subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
            if not subs or tok not in subs[0].choices:
                break
            parser = subs[0].choices[tok]
        assert parser is not root, f"{page.name}: no such command: srnas {' '.join(tokens)}"
        options = {o for tok in tokens for o in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", tok)}
        known = set(parser._option_string_actions)
        assert options <= known, f"{page.name}: srnas {' '.join(tokens)} uses unknown {sorted(options - known)}"


def test_named_test_files_exist():
    text = "".join(p.read_text() for p in PAGES)
    named = set(re.findall(r"tests/test_\w+\.py", text))
    assert named, "the README names the tests that show its claims"
    missing = [n for n in sorted(named) if not (ROOT / n).exists()]
    assert not missing, f"named but missing: {missing}"
