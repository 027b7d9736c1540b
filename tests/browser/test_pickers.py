"""The regulator's pickers at a scale where the page cannot list every account: the page lists
the first ones by name, and as the regulator types, static/js/picker.js asks the site for those
that match and fills the picker with them."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from gridplatform.accounts.models import Role, User
from supervision.selectors import PICKS_SHOWN
from tests.browser.support import outside_event_loop
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory

NewPage = Callable[..., Page]


def _community() -> tuple[User, list[User]]:
    """A regulator, and more households than the page lists."""
    regulator = UserFactory(email="rita@test.example", role=Role.REGULATOR)
    return regulator, [UserFactory(name=f"Household {n:03d}") for n in range(PICKS_SHOWN + 10)]


def test_the_account_picker_finds_a_household_past_the_first_ones_as_the_regulator_types(
    new_page: NewPage,
) -> None:
    regulator, households = outside_event_loop(_community)
    wanted = households[-1]

    page = new_page()
    log_in(page, email=regulator.email, password=PASSWORD)
    page.goto("/console/regulator/")
    picker = page.locator("datalist#account-picker option")
    expect(picker).to_have_count(PICKS_SHOWN)
    # Past the first ones by name: not on the page as it loads.
    assert page.locator(f'#account-picker option[value="{wanted.identity.address}"]').count() == 0

    form = page.get_by_role("form", name="Restrict, reinstate or reset an account")
    form.get_by_label("Account address").press_sequentially(wanted.name.lower())
    expect(page.locator("datalist#account-picker")).to_have_attribute(
        "data-picker-for", wanted.name.lower()
    )
    expect(picker).to_have_count(1)
    expect(picker).to_have_attribute("value", wanted.identity.address)
    expect(picker).to_have_text(wanted.name)
