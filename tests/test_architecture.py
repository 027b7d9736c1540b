"""Import contracts: the layers of docs/architecture.md, checked on the code as it is.

* The ledger's deterministic core and every application's ``chain`` package load no Django, no
  Celery and no site module (checked in a fresh interpreter, through ``sys.modules``).
* The ledger imports no application; a chain package imports only the ledger's core and the
  chain packages below it (meters < market < supervision).
* Each application's site side imports only its own package, the ledger, the site's base
  (``gridplatform``) and lower applications; only the composition root (settings, URLs, ASGI,
  the Celery app, the run and demo commands) imports them all.
* No cycle among the project's modules, lazy imports (inside functions) included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "gridplatform",
    "ledger",
    "meters",
    "market",
    "supervision",
    "flexibility",
    "retail",
    "dashboards",
)
FRAMEWORKS = ("django", "celery", "kombu", "channels", "rest_framework", "drf_spectacular")

# The ledger's deterministic core: what validators, `ledger verify` and replays run.
LEDGER_CORE = (
    "ledger.application",
    "ledger.audit",
    "ledger.blocks",
    "ledger.consensus",
    "ledger.crypto",
    "ledger.errors",
    "ledger.genesis",
    "ledger.identity",
    "ledger.node",
    "ledger.registry",
    "ledger.state",
    "ledger.store",
    "ledger.trie",
)
# The applications' replicated code, bottom to top.
CHAINS = ("meters.chain", "market.chain", "supervision.chain")
# The site's stack, bottom to top: a package may import its own and those before it.
STACK = PACKAGES
# The composition root: it names every application (settings, URLs, ASGI, the Celery app, the
# commands that run the system and the demo community).
COMPOSITION_ROOT = (
    "gridplatform.settings",
    "gridplatform.urls",
    "gridplatform.routing",
    "gridplatform.asgi",
    "gridplatform.celery",
    "gridplatform.demo",
    "gridplatform.simulation",
    "gridplatform.management",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


@cache
def imports(name: str) -> frozenset[str]:
    """The project's modules that ``name`` imports, anywhere in it (lazy imports too)."""
    known = modules()
    tree = ast.parse(known[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name if _is_package(name) else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # A name that is a submodule is an import of that module; any other name is one of
            # the module itself. (Python runs a package's __init__ before its submodules: that
            # is not counted, or every package that registers its submodules would be a cycle.)
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return frozenset(found)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _rank(name: str) -> int:
    """A module's place in the site's stack; the ledger core is below it all (Django-free, it
    is what the site's base builds identities on)."""
    if _within(name, LEDGER_CORE):
        return -1
    return STACK.index(name.split(".")[0])


def test_it_finds_the_modules_it_checks() -> None:
    assert set(LEDGER_CORE) - {"ledger.errors"} <= set(modules())
    assert set(CHAINS) <= set(modules())
    assert imports("market.chain") >= {"market.chain.contract", "meters.chain.metering"}


@pytest.mark.parametrize("name", [*LEDGER_CORE, *CHAINS])
def test_it_loads_no_framework_and_no_site_module_on_import(name: str) -> None:
    if name not in modules():
        pytest.skip(f"{name} does not exist in this tree")
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({name!r})\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    frameworks = sorted({m.split(".")[0] for m in loaded} & set(FRAMEWORKS))
    assert frameworks == [], f"{name} loads {frameworks}"
    project = [m for m in loaded if m.split(".")[0] in PACKAGES and m in modules()]
    site = [m for m in project if not _within(m, LEDGER_CORE + CHAINS) and m not in PACKAGES]
    assert site == [], f"{name} loads site modules {site}"


def test_the_ledger_imports_no_application() -> None:
    found = {
        (module, target)
        for module in modules()
        if _within(module, ("ledger",))
        for target in imports(module)
        if _within(target, PACKAGES[2:])
    }
    assert found == set()


def test_the_ledger_core_imports_only_the_ledger_core() -> None:
    found = {
        (module, target)
        for module in LEDGER_CORE
        if module in modules()
        for target in imports(module)
        if target not in LEDGER_CORE and target != "ledger"
    }
    assert found == set()


def test_a_chain_package_imports_only_the_ledger_core_and_the_chains_below_it() -> None:
    found = set()
    for index, chain in enumerate(CHAINS):
        allowed = (*LEDGER_CORE, "ledger", *CHAINS[: index + 1])
        for module in modules():
            if _within(module, (chain,)):
                for target in imports(module):
                    if not _within(target, allowed) and target.split(".")[0] != target:
                        found.add((module, target))
                    elif target in PACKAGES and target != "ledger":
                        found.add((module, target))  # an application's site package
    assert found == set()


def test_each_site_side_imports_only_its_own_package_the_ledger_and_lower_apps() -> None:
    found = {
        (module, target)
        for module in modules()
        if not _within(module, COMPOSITION_ROOT)
        for target in imports(module)
        if _rank(target) > _rank(module)
    }
    assert found == set()


def test_the_site_base_imports_only_the_ledger_core_of_the_ledger() -> None:
    found = {
        (module, target)
        for module in modules()
        if _within(module, ("gridplatform",)) and not _within(module, COMPOSITION_ROOT)
        for target in imports(module)
        if not _within(target, ("gridplatform", *LEDGER_CORE))
    }
    assert found == set()


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(imports(node)):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(modules()):
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other_in_a_cycle() -> None:
    assert _cycles() == []


def test_it_would_see_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cycle check can fail: a (pretend) import of the market by the meters is one."""
    real = imports.__wrapped__

    def with_cycle(name: str) -> frozenset[str]:
        found = real(name)
        if name == "meters.chain.metering":
            return found | {"market.chain.schema"}
        if name == "market.chain.schema":
            return found | {"meters.chain.metering"}
        return found

    monkeypatch.setitem(globals(), "imports", with_cycle)
    assert ["market.chain.schema", "meters.chain.metering"] in _cycles()
