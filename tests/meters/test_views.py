"""/meters/: a household lists its meters, registers one (its token shown once), rotates and
revokes tokens; errors come back as messages or next to their field, nothing changed."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from gridplatform.accounts.models import User
from ledger.identity import KeyPair
from meters.models import Meter, MeterToken
from tests.meters.support import Device, readings, register

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def form(**change: str) -> dict[str, str]:
    return {
        "meter_id": "roof-pv-1",
        "kind": "pv",
        "public_key": KeyPair.generate().public_key_hex.upper(),
        "feeder": "f1",
        "interval_s": "900",
    } | change


def token_on(page: str) -> str:
    found = re.search(r'id="new-meter-token" class="token-field" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_it_registers_a_meter_and_shows_its_token_once(prosumer: User) -> None:
    client = logged_in(prosumer)
    response = client.post(reverse("meter-register"), form())
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    token = token_on(page)
    assert 'data-copy="new-meter-token"' in page
    assert "it is shown only this once" in page
    meter = Meter.objects.get()
    assert (meter.owner, meter.registered_by, meter.kind) == (prosumer, prosumer, "pv")
    assert meter.public_key == meter.public_key.lower()
    assert MeterToken.objects.get().digest == hashlib.sha256(token.encode()).hexdigest()
    again = client.get(reverse("meters")).content.decode()
    assert token not in again
    assert f"<code>{token[:8]}…</code>" in again
    assert "roof-pv-1" in again


def test_it_lists_only_the_households_own_meters(prosumer: User, consumer: User) -> None:
    register(prosumer, "mine")
    register(consumer, "theirs")
    page = logged_in(prosumer).get(reverse("meters")).content.decode()
    assert 'data-meter="mine"' in page
    assert "theirs" not in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"meter_id": "Roof PV"}, "A meter id is 1-64 of a-z"),
        ({"public_key": "abc"}, "64 lowercase hex"),
        ({"feeder": "Feeder 1"}, "A feeder name is 1-64"),
        ({"interval_s": "600"}, "Select a valid choice"),
        ({"kind": "wind"}, "Select a valid choice"),
    ],
)
def test_it_explains_a_bad_registration_and_stores_nothing(
    prosumer: User, change: dict[str, str], message: str
) -> None:
    response = logged_in(prosumer).post(reverse("meter-register"), form(**change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="new-meter-token"' not in response.content.decode()
    assert Meter.objects.count() == 0


def test_it_refuses_a_taken_meter_id_next_to_the_field(prosumer: User, consumer: User) -> None:
    register(consumer, "roof-pv-1")
    response = logged_in(prosumer).post(reverse("meter-register"), form())
    assert response.status_code == 400
    assert 'id="id_meter_id_error"' in response.content.decode()
    assert "A meter with this id is registered already." in response.content.decode()
    assert Meter.objects.count() == 1


def test_it_rotates_a_token_and_shows_the_new_one_once(prosumer: User) -> None:
    device = register(prosumer)
    response = logged_in(prosumer).post(reverse("meter-token-rotate", args=["roof-pv-1"]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = token_on(response.content.decode())
    assert token != device.token
    assert device.send(readings(1)).status_code == 401
    assert device.send(readings(1), token=token).status_code == 202


def test_it_revokes_a_token_with_a_message(prosumer: User) -> None:
    device = register(prosumer)
    client = logged_in(prosumer)
    response = client.post(reverse("meter-token-revoke", args=["roof-pv-1"]), follow=True)
    page = response.content.decode()
    assert f"The token of meter “roof-pv-1” ({device.token[:8]}…) is revoked" in page
    assert device.send(readings(1)).status_code == 401
    response = client.post(reverse("meter-token-revoke", args=["roof-pv-1"]), follow=True)
    assert "had no active token" in response.content.decode()


def test_it_hides_another_households_meter(prosumer: User, outsider: User) -> None:
    device: Device = register(prosumer)
    client = logged_in(outsider)
    assert client.post(reverse("meter-token-rotate", args=["roof-pv-1"])).status_code == 404
    assert client.post(reverse("meter-token-revoke", args=["roof-pv-1"])).status_code == 404
    assert device.send(readings(1)).status_code == 202


def test_it_is_a_households_page(grid_operator: User, regulator: User) -> None:
    for user in (grid_operator, regulator):
        assert logged_in(user).get(reverse("meters")).status_code == 403
    response = Client().get(reverse("meters"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_requires_csrf_tokens_and_sends_a_strict_csp(prosumer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(prosumer, backend="django.contrib.auth.backends.ModelBackend")
    assert client.post(reverse("meter-register"), form()).status_code == 403
    assert Meter.objects.count() == 0
    page = client.get(reverse("meters"))
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp
    body = page.content.decode()
    assert "<script>" not in body
    assert " style=" not in body
    assert 'src="/static/js/copy.js"' in body


def test_the_form_offers_the_households_own_feeder_and_the_networks_intervals(
    prosumer: User, settings: object, tmp_path: object
) -> None:
    from market.models import MarketAccount
    from tests.ledger.chains import genesis_of

    genesis, _ = genesis_of(options=(("market.slot_ms", 300_000),))
    genesis.to_json_file(tmp_path / "genesis.json")  # type: ignore[operator]
    settings.LEDGER_DIR = tmp_path  # type: ignore[attr-defined]
    client = logged_in(prosumer)
    page = client.get(reverse("meters")).content.decode()
    assert "Not assigned yet: the grid operator assigns your feeder" in page
    assert '<option value="900"' not in page
    assert '<option value="300"' in page
    assert "divide this network's 5-minute delivery slot" in page
    # A 900 s meter posted anyway: refused next to its field, nothing registered.
    refused = client.post(reverse("meter-register"), form(interval_s="900"))
    assert refused.status_code == 400
    assert not Meter.objects.exists()

    MarketAccount.objects.create(address=prosumer.identity.address, feeder="feeder-north")
    page = client.get(reverse("meters")).content.decode()
    assert 'value="feeder-north"' in page
    assert "Your connection's feeder, as the grid operator assigned it." in page
    # Whatever the browser sends for the disabled field, the meter is on the household's feeder.
    client.post(reverse("meter-register"), form(interval_s="300", feeder="elsewhere"))
    assert Meter.objects.get().feeder == "feeder-north"
