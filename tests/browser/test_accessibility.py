"""Every page, as each role sees it, checked by axe-core in the browser: no violation of any
impact (axe-core 4.10.3 from npm, vendored under tests/browser/vendor/ with its licence)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import HouseholdKind, Role
from ledger.identity import KeyPair
from tests.browser.support import outside_event_loop
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory

AXE = Path(__file__).parent / "vendor" / "axe-core-4.10.3" / "axe.min.js"
NewPage = Callable[..., Page]

PAGES = {
    "anonymous": [
        "/",
        "/accounts/login/",
        "/accounts/register/",
        "/accounts/password/reset/",
        "/ledger/",
        "/ledger/validators/",
        "/ledger/search/?q=hello",
        f"/ledger/address/{KeyPair(private_key=bytes(range(32))).address}/",
    ],
    Role.HOUSEHOLD: [
        "/dashboard/",
        "/market/",
        "/market/tariffs/",
        "/market/statements/",
        "/market/bill/",
        "/meters/",
        "/supervision/",
        "/accounts/settings/",
        "/accounts/password/",
    ],
    Role.GRID_OPERATOR: ["/console/operator/", "/console/households/{household}/"],
    Role.REGULATOR: ["/console/regulator/", "/console/households/{household}/"],
}
CASES = [(str(role), path) for role, paths in PAGES.items() for path in paths]


def violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds on the page as it stands, every rule and impact (axe was added to
    the page before it loaded: the site's Content-Security-Policy refuses an injected script)."""
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ")),
        }))"""
    )
    return found


@pytest.mark.parametrize(("role", "path"), CASES)
def test_no_page_has_an_accessibility_violation(new_page: NewPage, role: str, path: str) -> None:
    page = new_page()
    page.add_init_script(path=str(AXE))
    if role != "anonymous":
        kind = HouseholdKind.PROSUMER if role == Role.HOUSEHOLD else ""
        user = outside_event_loop(
            UserFactory, role=role, household_kind=kind, email=f"{role}@test.example"
        )
        log_in(page, email=user.email, password=PASSWORD)
        expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    if "{household}" in path:
        household = outside_event_loop(UserFactory, name="Hana Household", email="h@test.example")
        path = path.format(household=household.pk)
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert violations(page) == []
