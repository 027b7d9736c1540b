"""One error catalogue per owner (STYLE rule 20, docs/ledger.md "Error codes").

Every code the validators give has its message in its owner's catalogue (read off the source, so
that a new ``TxFailed("code")`` without a message fails here), no code is defined twice, the
validators' catalogues load nothing but the standard library, and the API, a form and a page
say one code in the catalogue's words.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from flexibility import errors as flexibility_errors
from gridplatform.accounts.models import User
from ledger import errors as ledger_errors
from ledger import services as ledger_services
from ledger.identity import KeyPair
from market import errors as market_errors
from market.chain import errors as market_chain_errors
from meters import errors as meters_errors
from meters.chain import errors as meters_chain_errors
from retail import errors as retail_errors
from supervision import errors as supervision_errors
from supervision.chain import errors as supervision_chain_errors
from supervision.forms import FeederPublishForm
from tests.meters.support import API, client_for, error_of

ROOT = Path(__file__).resolve().parents[1]

# Owners, lowest first: the code a package gives, and the catalogues it may be defined in (its
# own and the lower owners').
OWNERS: list[tuple[str, list[Path], ModuleType]] = [
    ("ledger", [ROOT / "ledger" / "application.py"], ledger_errors),
    ("meters", sorted((ROOT / "meters" / "chain").glob("*.py")), meters_chain_errors),
    ("market", sorted((ROOT / "market" / "chain").glob("*.py")), market_chain_errors),
    (
        "supervision",
        sorted((ROOT / "supervision" / "chain").glob("*.py")),
        supervision_chain_errors,
    ),
]
# Every catalogue that defines codes (each site's own, without what it composes).
CATALOGUES: dict[str, dict[str, str]] = {
    "ledger.errors": ledger_errors.MESSAGES,
    "meters.chain.errors": meters_chain_errors.MESSAGES,
    "meters.errors": meters_errors.SITE_MESSAGES,
    "market.chain.errors": market_chain_errors.MESSAGES,
    "market.errors": market_errors.SITE_MESSAGES,
    "supervision.chain.errors": supervision_chain_errors.MESSAGES,
    "supervision.errors": supervision_errors.SITE_MESSAGES,
    "flexibility.errors": flexibility_errors.SITE_MESSAGES,
    "retail.errors": retail_errors.SITE_MESSAGES,
}
CHAIN_CATALOGUES = (
    "ledger.errors",
    "meters.chain.errors",
    "market.chain.errors",
    "supervision.chain.errors",
)


def _helpers(tree: ast.AST) -> dict[str, int]:
    """Helpers such as market.chain.terms.integer_field(value, code) that raise
    ``TxFailed(<parameter>)``: their names and the index of that parameter."""
    helpers: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            names = [a.arg for a in node.args.args]
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Name)
                    and inner.func.id == "TxFailed"
                    and inner.args
                    and isinstance(inner.args[0], ast.Name)
                    and inner.args[0].id in names
                ):
                    helpers[node.name] = names.index(inner.args[0].id)
    return helpers


@functools.cache
def _all_helpers() -> dict[str, int]:
    """Every chain package's helpers: one module may call another's (``market.chain.terms``)."""
    found: dict[str, int] = {}
    for _, paths, _ in OWNERS:
        for path in paths:
            found |= _helpers(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _codes_raised(path: Path) -> set[str]:
    """The codes of ``TxFailed(...)`` in a module: literal ones, those passed to a helper that
    raises ``TxFailed(<its parameter>)``, and ``f"grid_{...}"`` (a grid state's stop)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    helpers = _all_helpers() | _helpers(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "TxFailed":
            argument = node.args[0]
        elif node.func.id in helpers and len(node.args) > helpers[node.func.id]:
            argument = node.args[helpers[node.func.id]]
        else:
            continue
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.add(argument.value)
        elif isinstance(argument, ast.JoinedStr) and ast.unparse(argument.values[0]) == "'grid_'":
            from supervision.chain.grid import GRID_STATES

            found.update(f"grid_{state}" for state in GRID_STATES if state != "normal")
        elif isinstance(argument, ast.Name) and node.func.id == "TxFailed":
            continue  # a helper's parameter: its callers' codes are counted
        else:
            raise AssertionError(f"{path}:{node.lineno}: a code this test cannot read")
    return found


def test_it_reads_the_codes_off_the_source() -> None:
    ledger = _codes_raised(ROOT / "ledger" / "application.py")
    assert {"bad_payload", "insufficient_balance", "unknown_account"} <= ledger
    market = set().union(*(_codes_raised(p) for p in OWNERS[2][1]))
    assert {"bad_slot", "bad_price", "insufficient_free_balance"} <= market  # via integer_field
    supervision = set().union(*(_codes_raised(p) for p in OWNERS[3][1]))
    assert {"grid_high_load", "grid_unstable", "bad_feeder"} <= supervision


@pytest.mark.parametrize("index", range(len(OWNERS)), ids=[owner for owner, _, _ in OWNERS])
def test_every_code_the_validators_give_has_a_message_in_its_owners_catalogue(
    index: int,
) -> None:
    owner, paths, _ = OWNERS[index]
    raised = set().union(*(_codes_raised(path) for path in paths))
    known = ledger_errors.compose(*(catalogue.MESSAGES for _, _, catalogue in OWNERS[: index + 1]))
    assert sorted(raised - set(known)) == [], f"codes of {owner} without a message"


def test_the_ledger_catalogue_has_every_admission_and_signing_code() -> None:
    assert set(ledger_errors.ADMISSION) | set(ledger_errors.SIGNING) <= set(ledger_errors.MESSAGES)
    assert list(ledger_services.ADMISSION_CODES) == list(ledger_errors.ADMISSION)


def test_a_validators_catalogue_defines_only_codes_its_package_gives() -> None:
    """A code in a chain catalogue is raised by its package (or, for the market's network
    stops, by the application that provides the market's interface): none is left over."""
    raised_anywhere = set().union(*(_codes_raised(p) for _, paths, _ in OWNERS for p in paths))
    admission = set(ledger_errors.ADMISSION) | set(ledger_errors.SIGNING)
    for name in CHAIN_CATALOGUES:
        left_over = set(CATALOGUES[name]) - raised_anywhere - admission
        assert sorted(left_over) == [], name


def test_no_code_is_defined_in_two_catalogues() -> None:
    owners: dict[str, list[str]] = {}
    for name, catalogue in CATALOGUES.items():
        for code in catalogue:
            owners.setdefault(code, []).append(name)
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}


def test_every_message_is_a_sentence() -> None:
    for name, catalogue in CATALOGUES.items():
        for code, message in catalogue.items():
            assert message[:1].isupper() or message.startswith("ids "), (name, code)
            assert message.endswith("."), (name, code)


def test_the_composed_lookups_hold_every_lower_catalogue() -> None:
    assert set(meters_errors.MESSAGES) == (
        set(ledger_errors.MESSAGES)
        | set(meters_chain_errors.MESSAGES)
        | set(meters_errors.SITE_MESSAGES)
    )
    assert set(market_errors.MESSAGES) == (
        set(meters_errors.MESSAGES)
        | set(market_chain_errors.MESSAGES)
        | set(market_errors.SITE_MESSAGES)
    )
    assert set(supervision_errors.MESSAGES) == (
        set(market_errors.MESSAGES)
        | set(supervision_chain_errors.MESSAGES)
        | set(supervision_errors.SITE_MESSAGES)
    )
    for site in (flexibility_errors, retail_errors):
        assert set(site.MESSAGES) == set(market_errors.MESSAGES) | set(site.SITE_MESSAGES)
    # One code, one message, whoever looks it up.
    for code, message in meters_chain_errors.MESSAGES.items():
        assert supervision_errors.MESSAGES[code] is message


def test_compose_refuses_a_code_defined_twice() -> None:
    with pytest.raises(ValueError, match="bad_feeder"):
        ledger_errors.compose({"bad_feeder": "A."}, {"bad_feeder": "A."})


def test_a_site_catalogue_redefining_a_lower_code_fails_at_import() -> None:
    code = (
        "import meters.chain.errors as lower\n"
        "lower.MESSAGES['not_on_ledger'] = 'Defined below the market too.'\n"
        "import market.errors\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0
    assert "ValueError: error codes defined in two catalogues: not_on_ledger" in run.stderr


def test_the_ledgers_execution_messages_compose_the_configured_applications(
    settings: Any,
) -> None:
    every = ledger_services.execution_messages()
    for name in CHAIN_CATALOGUES:
        assert set(CATALOGUES[name]) <= set(every), name
    settings.LEDGER_APPLICATIONS = ["meters.chain"]
    only_meters = ledger_services.execution_messages()
    assert set(only_meters) == set(ledger_errors.MESSAGES) | set(meters_chain_errors.MESSAGES)
    rejected = ledger_services.TransactionRejected("bad_feeder")
    assert (rejected.code, rejected.message) == ("bad_feeder", every["bad_feeder"])


@pytest.mark.parametrize("name", CHAIN_CATALOGUES)
def test_a_validators_catalogue_loads_no_framework(name: str) -> None:
    code = (
        f"import sys, {name}\n"
        "print([m for m in sys.modules if m.startswith(('django', 'celery', 'rest_framework'))])"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("name", CHAIN_CATALOGUES)
def test_a_validators_catalogue_imports_only_the_standard_library(name: str) -> None:
    tree = ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_numbers_in_the_meters_words_are_the_rules() -> None:
    from meters import readings
    from meters.chain import metering
    from meters.models import INTERVALS, MeterKind
    from meters.services import MAX_METERS_PER_OWNER
    from supervision.chain.grid import GRID_STATES, MAX_REASON

    words = meters_chain_errors.MESSAGES
    assert words["bad_kind"] == f"The kind is one of {', '.join(MeterKind.values)}."
    assert tuple(MeterKind.values) == metering.KINDS
    assert (
        words["bad_interval"] == f"The interval is one of {', '.join(map(str, INTERVALS))} seconds."
    )
    assert MAX_METERS_PER_OWNER == metering.MAX_METERS_PER_OWNER
    assert f"at most {metering.MAX_METERS_PER_OWNER} meters" in words["too_many_meters"]
    assert f"at most {metering.MAX_READINGS:,} readings" in words["too_many_readings"]
    assert f"at most {metering.MAX_BODY_BYTES:,} bytes" in words["bad_body"]
    assert metering.MAX_BODY_BYTES == readings.MAX_BODY_BYTES
    assert ", ".join(metering.QUALITIES[:-1]) in words["bad_quality"]
    assert f"1 to {MAX_REASON} characters" in supervision_chain_errors.MESSAGES["reason_required"]
    assert all(state in supervision_chain_errors.MESSAGES["bad_state"] for state in GRID_STATES)


# --- one code, in the catalogue's words, in the API, a form and a page ---------------------------


def test_the_api_a_form_and_a_page_say_bad_feeder_in_the_catalogues_words(
    prosumer: User,
) -> None:
    message = meters_chain_errors.MESSAGES["bad_feeder"]
    # The meters' API (the site's check, before anything is stored).
    body = {
        "meter_id": "roof-pv-1",
        "kind": "pv",
        "public_key": KeyPair.generate().public_key_hex,
        "feeder": "Feeder 1",
    }
    response = client_for(prosumer).post(f"{API}/meters", body, content_type="application/json")
    assert error_of(response) == (400, "bad_feeder")
    assert response.json()["message"] == meters_errors.MESSAGES["bad_feeder"] == message
    # The grid operator's form to publish a feeder.
    form = FeederPublishForm(data={"feeder": ".f1", "export_limit_kw": "1", "import_limit_kw": "1"})
    assert not form.is_valid()
    assert form.errors["feeder"] == [supervision_errors.MESSAGES["bad_feeder"]] == [message]
    # The household's meters page, next to the field.
    client = Client()
    client.force_login(prosumer, backend="django.contrib.auth.backends.ModelBackend")
    page = client.post(
        reverse("meter-register"),
        {key: str(value) for key, value in body.items()} | {"interval_s": "900"},
    )
    assert page.status_code == 400
    assert f'id="id_feeder_error">Error: {escape(message)}' in page.content.decode()
