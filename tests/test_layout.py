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
