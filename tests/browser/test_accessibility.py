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
from ledger.models import LedgerAccount, StateEntry
from market.models import MarketAccount
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
        "/ledger/state/",
        "/outbox/",  # the demo's mailbox, with DEBUG on (as the browser tests run)
        "/accounts/register/sent/",
        "/accounts/password/reset/sent/",
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
        "/accounts/password/done/",
        "/accounts/settings/key/",
        "/retail/",
    ],
    Role.RETAILER: ["/retail/customers/"],
    Role.STORAGE_PROVIDER: ["/flexibility/"],
    Role.GRID_OPERATOR: [
        "/console/operator/",
        "/console/households/{household}/",
        "/console/operator/flexibility/",
    ],
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
    response = page.goto(path)
    assert response is not None
    # The page itself, not a refusal: a search that finds nothing answers 404 with its message.
    assert response.status == (404 if path.startswith("/ledger/search/") else 200), path
    page.wait_for_load_state("networkidle")
    assert violations(page) == []


def _registered(name: str, email: str) -> Any:
    """A household on the ledger (its account in the site's read model), on feeder north."""
    household = UserFactory(name=name, email=email)
    address = household.identity.address
    LedgerAccount.objects.create(address=address, public_key="0" * 64, balance=5_000)
    StateEntry.objects.create(key=f"acct/{address}", value={"balance": 5_000, "nonce": 0})
    MarketAccount.objects.create(address=address, feeder="feeder-north")
    return household


def test_no_confirmation_step_has_an_accessibility_violation(new_page: NewPage) -> None:
    """The pages an act or a top-up shows before it signs: reached by a form, not a link."""
    operator = outside_event_loop(UserFactory, role=Role.GRID_OPERATOR, email="op@test.example")
    regulator = outside_event_loop(UserFactory, role=Role.REGULATOR, email="reg@test.example")
    household = outside_event_loop(_registered, "Hana Household", "h@test.example")

    page = new_page()
    page.add_init_script(path=str(AXE))
    log_in(page, email=operator.email, password=PASSWORD)
    page.goto("/console/operator/")
    page.get_by_label(f"Amount for {household.name}").fill("12.50")
    page.locator(f'tr[data-household="{household.pk}"]').get_by_role(
        "button", name="Top up"
    ).click()
    expect(page.get_by_role("button", name=re.compile(r"^Confirm"))).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert violations(page) == []

    page = new_page()
    page.add_init_script(path=str(AXE))
    log_in(page, email=regulator.email, password=PASSWORD)
    page.goto(f"/console/regulator/?account={household.identity.address}")
    form = page.get_by_role("form", name="Restrict, reinstate or reset an account")
    form.get_by_label(re.compile(r"^Restrict")).check()
    form.get_by_label("Reason").fill("Unpaid deposits")
    form.get_by_role("button", name="Continue…").click()
    expect(page.get_by_role("button", name=re.compile(r"^Confirm"))).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert violations(page) == []


def _error_page(status: int) -> str:
    """The site's error page for ``status``, as its handler renders it with DEBUG off."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404
    from django.test import RequestFactory

    from gridplatform import api

    request = RequestFactory().get("/no-such-page/")
    if status == 404:
        response = api.page_not_found(request, Http404())
    elif status == 403:
        from django.views import defaults

        response = defaults.permission_denied(request, PermissionDenied())
    else:
        response = api.server_error(request)
    assert response.status_code == status
    return response.content.decode()


@pytest.mark.parametrize("status", [403, 404, 500])
def test_no_error_page_has_an_accessibility_violation(new_page: NewPage, status: int) -> None:
    """With DEBUG on (as these tests run the site) Django answers an unknown address with its
    own debugging page, so the site's page is rendered by its handler here and served at that
    address from the live site's origin (its stylesheet and scripts load from there)."""
    body = outside_event_loop(_error_page, status)
    page = new_page()
    page.add_init_script(path=str(AXE))
    page.route(
        "**/no-such-page/",
        lambda route: route.fulfill(status=status, body=body, content_type="text/html"),
    )
    response = page.goto("/no-such-page/")
    assert response is not None
    assert response.status == status
    expect(page.get_by_role("alert")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert violations(page) == []
