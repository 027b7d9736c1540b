"""The Meters page in a real browser: a household registers a meter, copies its token (shown
once), and the meter sends readings with it; all under the site's strict CSP."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from ledger.identity import KeyPair
from meters.models import Meter
from tests.browser.support import outside_event_loop
from tests.factories import PASSWORD, UserFactory
from tests.meters.support import Device, readings

NewPage = Callable[[], Page]


def test_it_registers_a_meter_and_copies_its_token(new_page: NewPage) -> None:
    household = outside_event_loop(UserFactory, name="Ines Prosumer", email="ines@test.example")
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto("/accounts/login/")
    page.get_by_label("Email address").fill("ines@test.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Meters").click()
    expect(page).to_have_url(re.compile(r"/meters/$"))

    key = KeyPair.generate()
    page.get_by_label("Meter id").fill("roof-pv-1")
    page.get_by_label("Kind").select_option("pv")
    page.get_by_label("Device public key").fill(key.public_key_hex)
    page.get_by_label("Feeder").fill("f1")
    page.get_by_role("button", name="Register the meter").click()

    field = page.get_by_label("Token", exact=True)
    token = field.input_value()
    assert len(token) >= 43
    page.get_by_role("button", name="Copy the token").click()
    expect(page.locator("[data-copy-status]")).to_have_text("Copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == token

    page.goto("/meters/")  # the token is shown once: the page again does not have it
    expect(page.get_by_label("Token", exact=True)).to_have_count(0)
    expect(page.locator('tr[data-meter="roof-pv-1"]')).to_contain_text(f"{token[:8]}…")

    meter = Meter.objects.get()
    assert meter.owner == household
    device = Device(meter=meter, key=key, token=token)
    assert device.send(readings(2)).status_code == 202
    assert problems == []  # no CSP violation, no script error, no failed request
