from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def top_level_modules() -> set[str]:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in ROOT.glob("*.py")}
    return packages | modules


def test_it_finds_the_projects_packages() -> None:
    assert {"gridplatform", "ledger", "market", "meters", "supervision", "manage"} <= (
        top_level_modules()
    )


def test_it_shadows_no_standard_library_module() -> None:
    shadowing = top_level_modules() & set(sys.stdlib_module_names)
    assert shadowing == set()
    assert "platform" in sys.stdlib_module_names  # why the site package is not called that


def test_no_template_comment_spans_lines() -> None:
    """Django's ``{# ... #}`` is one line only: one that spans lines is shown on the page as
    text (``{% comment %}`` is the multi-line form)."""
    spanning = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "{#" in line and "#}" not in line.split("{#", 1)[1]
    ]
    assert spanning == []
