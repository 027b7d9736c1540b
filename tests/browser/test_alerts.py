"""The grid operator acknowledges an alert on its console, in the browser, and sees it move from
"Open" to the folded "Acknowledged" list; the regulators' console still has it open. Both
consoles, with alerts in both lists, have no accessibility violation (axe-core, as in
test_accessibility.py).

The alerts come from the read models (a suspension in force), written here as the projection
of a block would: acknowledging touches the site's own record only, so no network runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils import timezone
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from supervision.models import Suspension
from tests.browser.support import outside_event_loop
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory

NewPage = Callable[..., Page]
STORM = "Trading is suspended on the whole market: Storm damage on the line"


def _suspended() -> tuple[User, User]:
    """The grid operator, a regulator, and the market suspended (its read model)."""
    operator = UserFactory(name="Olga Operator", email="olga@test.example", role="grid_operator")
    regulator = UserFactory(name="Rita Rules", email="rita@test.example", role="regulator")
    Suspension.objects.create(
        scope="market",
        reason="Storm damage on the line",
        by="0" * 50,
        tx="ab" * 32,
        height=7,
        since=timezone.now(),
    )
    return operator, regulator


def _console(new_page: NewPage, user: User, url: str) -> Page:
    page = new_page()
    page.add_init_script(path=str(AXE))
    log_in(page, email=user.email, password=PASSWORD)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page


def test_the_operator_acknowledges_an_alert_and_sees_it_move(new_page: NewPage) -> None:
    operator, regulator = outside_event_loop(_suspended)
    page = _console(new_page, operator, "/console/operator/")
    expect(page.get_by_test_id("summary-alerts")).to_have_text("1")
    alerts = page.locator("#operator-alerts")
    open_list = alerts.get_by_test_id("alerts")
    acknowledged = alerts.get_by_test_id("acknowledged-alerts")
    alert = open_list.locator('[data-alert-key="suspension:market"]')
    expect(alert).to_contain_text(STORM)
    expect(acknowledged.locator("summary")).to_have_text("Acknowledged (0)")
    assert violations(page) == []

    alert.get_by_role("button", name="Acknowledge").click()

    expect(page.get_by_role("status").filter(has_text="Acknowledged: “")).to_contain_text(STORM)
    expect(page).to_have_url(re.compile(r"/console/operator/#grid-alerts-heading$"))
    expect(page.get_by_test_id("summary-alerts")).to_have_text("0")
    expect(open_list).to_contain_text("No open alerts.")
    expect(open_list.locator("[data-alert-key]")).to_have_count(0)
    summary = acknowledged.locator("summary")
    expect(summary).to_have_text("Acknowledged (1)")
    moved = acknowledged.locator('[data-alert-key="suspension:market"]')
    expect(moved).to_be_hidden()  # folded until opened
    summary.click()
    expect(moved).to_be_visible()
    expect(moved).to_contain_text(STORM)
    expect(moved).to_contain_text("acknowledged by Olga Operator")
    assert violations(page) == []

    # The regulators' desk has its own inbox: still open there.
    regulating = _console(new_page, regulator, "/console/regulator/")
    still = regulating.locator('#regulator-alerts [data-testid="alerts"] [data-alert-key]')
    expect(still).to_have_count(1)
    expect(still).to_contain_text(STORM)
    assert violations(regulating) == []
