"""Accounts in a real browser: registration, login, the live operator console and refusals."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from gridplatform.accounts.models import HouseholdKind, Role, User
from tests.browser.support import outside_event_loop
from tests.factories import PASSWORD, UserFactory

NewPage = Callable[[], Page]
ADDRESS = re.compile(r"^01[0-9a-f]{48}$")
NEW_PASSWORD = "kestrel-over-the-harbour-42"
LIVE_UPDATE_TIMEOUT_MS = 10_000


def submit_registration(
    page: Page,
    *,
    name: str,
    email: str,
    household: str,
    password: str,
    connected_at: str = "1 Solar Street",
) -> None:
    """Fill in and send the registration form; the site answers "Check your email"."""
    page.goto("/accounts/register/")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_label(household, exact=True).check()
    page.get_by_label("Where you are connected").fill(connected_at)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password again").fill(password)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
    expect(page.get_by_test_id("registered-email")).to_have_text(email)


def newest_mail_to(page: Page, email: str) -> Locator:
    """The demo's outbox is the household's inbox: its newest message to ``email``."""
    page.get_by_role("link", name="outbox").click()
    return page.get_by_test_id("outbox-message").filter(has_text=f"To {email}").first


def register(page: Page, *, name: str, email: str, **form: str) -> None:
    """Register as a household does: the form, then the link in the email, then its button."""
    submit_registration(page, name=name, email=email, **form)
    message = newest_mail_to(page, email)
    expect(message).to_contain_text("Confirm your email address to finish registering")
    message.locator('a[href*="/accounts/register/confirm/"]').click()
    expect(page.get_by_test_id("pending-name")).to_have_text(name)
    page.get_by_role("button", name="Finish registering").click()


def log_in(page: Page, *, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def stored_address(email: str) -> str:
    return User.objects.get(email=email).identity.address


def test_it_registers_a_household_that_sees_its_address(new_page: NewPage) -> None:
    page = new_page()
    register(
        page,
        name="Amara Nwosu",
        email="amara@test.example",
        household=HouseholdKind.STORAGE.label,
        password=NEW_PASSWORD,
    )

    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Amara Nwosu")
    address = stored_address("amara@test.example")
    assert ADDRESS.match(address)
    expect(page.get_by_test_id("address")).to_have_text(address)
    assert User.objects.get(email="amara@test.example").household_kind == HouseholdKind.STORAGE

    page.get_by_role("button", name="Log out Amara Nwosu").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_test_id("address")).to_have_count(0)

    log_in(page, email="amara@test.example", password=NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_test_id("address")).to_have_text(address)


def test_it_shows_a_new_household_on_the_operator_console_live(new_page: NewPage) -> None:
    operator = outside_event_loop(
        UserFactory, role=Role.GRID_OPERATOR, name="Grid Operator", email="ops@test.example"
    )
    console = new_page()
    log_in(console, email=operator.email, password=PASSWORD)
    expect(console).to_have_url(re.compile(r"/console/operator/$"))
    rows = console.locator("#account-rows tr")
    expect(rows).to_have_count(1)
    expect(
        console.locator("section[data-live-target='#account-rows'] [data-live-status]")
    ).to_have_text(re.compile(r"^Live"))
    console.evaluate("window.__marker = 1")

    household = new_page()
    register(
        household,
        name="Tomasz Kowalczyk",
        email="tomasz@test.example",
        household=HouseholdKind.CONSUMER.label,
        password=NEW_PASSWORD,
    )
    expect(household).to_have_url(re.compile(r"/dashboard/$"))
    address = stored_address("tomasz@test.example")

    row = console.locator(f'tr[data-address="{address}"]')
    expect(row).to_contain_text("Tomasz Kowalczyk", timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(row).to_contain_text(f"{address[:10]}…")  # short, linked to the explorer's page
    expect(row.locator(f'a[href="/ledger/address/{address}/"]')).to_have_count(1)
    expect(rows).to_have_count(2)
    assert console.evaluate("window.__marker") == 1, "the console reloaded"


def test_it_refuses_the_console_to_a_household(new_page: NewPage) -> None:
    household = outside_event_loop(UserFactory, name="Hana Household", email="hana@test.example")
    page = new_page()
    log_in(page, email=household.email, password=PASSWORD)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    response = page.goto("/console/operator/")

    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("403")
    expect(page.get_by_role("alert")).to_have_text("You are not allowed to open this page.")
    expect(page.locator("#account-rows")).to_have_count(0)


def test_it_refuses_a_wrong_password(new_page: NewPage) -> None:
    household = outside_event_loop(UserFactory, name="Wes Wrong", email="wes@test.example")
    page = new_page()

    log_in(page, email=household.email, password="not-" + PASSWORD)

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct email and password.")
    expect(page.get_by_role("button", name=re.compile(r"^Log out"))).to_have_count(0)
    assert "sessionid" not in {cookie["name"] for cookie in page.context.cookies()}
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/dashboard/$"))


def test_a_new_household_sees_times_in_its_browsers_zone(new_page: Callable[..., Page]) -> None:
    page = new_page(timezone_id="Asia/Tokyo")
    register(
        page,
        name="Kenji Mori",
        email="kenji@test.example",
        household=HouseholdKind.CONSUMER.label,
        password=NEW_PASSWORD,
    )
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    assert User.objects.get(email="kenji@test.example").time_zone == "Asia/Tokyo"
    page.goto("/accounts/settings/")
    expect(page.get_by_test_id("current-zone")).to_have_text("Asia/Tokyo")


def test_registering_a_taken_email_answers_the_same_and_tells_its_owner(
    new_page: NewPage,
) -> None:
    owner = outside_event_loop(UserFactory, name="Olga Owner", email="olga@test.example")
    page = new_page()
    submit_registration(
        page,
        name="Someone Else",
        email=owner.email,
        household=HouseholdKind.CONSUMER.label,
        password=NEW_PASSWORD,
    )
    message = newest_mail_to(page, owner.email)
    expect(message).to_contain_text("You already have an account")
    expect(message.locator('a[href*="/accounts/password/reset/"]')).to_be_visible()
    expect(message.locator('a[href*="/accounts/register/confirm/"]')).to_have_count(0)
    assert outside_event_loop(User.objects.filter(email=owner.email).count) == 1
