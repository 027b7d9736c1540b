"""From a meter's signed batch to a household's statement, through the site: the meter and its
readings are relayed to the ledger, the slot settles on the grid operator's timer, and the
statement (page and CSV) shows exactly worked example 2 of docs/market.md (without a network fee):
2,000 Wh contracted at 120, 1,234 Wh delivered."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger.identity import KeyPair
from ledger.models import LedgerAccount, StateEntry, SubmittedTransaction
from ledger.projection import datetime_of_ms
from market import selectors, services, statements
from market.models import SettlementLine
from market.statements import HEADER, neutralise
from meters import services as meter_services
from meters.signing import header_value
from tests.ledger.chains import OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network
from tests.market.support import batch, reading

pytestmark = pytest.mark.django_db
SLOT_MS, GATE_MS, DELAY_MS = 900_000, 300_000, 900_000
DEVICE = KeyPair(private_key=bytes(range(7, 39)))


@pytest.fixture
def site(
    settings: Any, tmp_path: Path, grid_operator: User, prosumer: User, consumer: User
) -> Site:
    """A network whose blocks are an hour old: its first slots have ended and are due."""
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1, start_ms=recent_start_ms() - 3_600_000)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    for user in (prosumer, consumer):
        address = user.identity.address
        site.register(address, user.identity.public_key, credits=100_000)
        site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="f-1")])
    return site


def keys(user: User) -> KeyPair:
    return identity_unseal(identity_=user.identity)


def test_a_meters_readings_settle_a_contract_into_both_statements(
    site: Site,
    grid_operator: User,
    prosumer: User,
    consumer: User,
    client: Client,
    django_capture_on_commit_callbacks: Any,
    tasks_inline: None,
) -> None:
    # The seller's meter, registered on the site, reaches the ledger through the relay.
    with django_capture_on_commit_callbacks(execute=True):
        meter = ada_meter(prosumer)
    assert [row.body["type"] for row in SubmittedTransaction.objects.all()] == ["meter.register"]
    commit_pending(site)
    assert StateEntry.objects.filter(key="meter/ada-pv").exists()

    # A contract for a slot that has since ended: 2,000 Wh at 120 per kWh.
    now = site.blocks[-1].timestamp_ms + 5_000
    slot = (now + GATE_MS) // SLOT_MS * SLOT_MS + SLOT_MS
    sell = site.sign(
        keys(prosumer), "market.order.place", slot=slot, side="sell", energy_wh=2_000, price=120
    )
    buy = site.sign(
        keys(consumer), "market.order.place", slot=slot, side="buy", energy_wh=2_000, price=150
    )
    assert list(site.commit([sell, buy]).results) == ["ok", "ok"]

    # The meter reports 1,234 Wh exported in the slot: stored, then relayed as signed (by the
    # task the site's worker runs, here in this process).
    body = batch(reading(slot, 1_234, duration_s=900)).encode()
    t = int(time.time())
    with django_capture_on_commit_callbacks(execute=True):
        stored = meter_services.readings_ingest(
            meter=meter, body=body, signature_header=header_value(DEVICE, body, t=t), now_s=t
        )
    assert stored.accepted == 1
    [relayed] = SubmittedTransaction.objects.all()
    assert relayed.body["type"] == "meter.readings"
    assert relayed.body["payload"]["body"] == body.decode()
    due = slot + SLOT_MS + DELAY_MS + 1
    assert list(commit_pending(site, timestamp_ms=due).results) == ["ok"]

    # The grid operator's timer settles the due slot.
    assert services.slots_due_for_settlement(now=datetime_of_ms(due)) == [datetime_of_ms(slot)]
    [settle] = services.slots_settle(operator=grid_operator, now=datetime_of_ms(due))
    assert settle.type == "market.slot.settle"
    assert services.slots_settle(operator=grid_operator, now=datetime_of_ms(due)) == []  # pending
    assert list(commit_pending(site, timestamp_ms=due + 5_000).results) == ["ok"]
    assert services.slots_due_for_settlement(now=datetime_of_ms(due)) == []

    line = SettlementLine.objects.get()
    assert (line.delivered_wh, line.paid, line.fee, line.penalty) == (1_234, 148, 0, 18)
    balances = dict(LedgerAccount.objects.values_list("address", "balance"))
    assert balances[prosumer.identity.address] == 100_000 + 148 - 18
    assert balances[consumer.identity.address] == 100_000 - 148 + 18

    [seller_line] = selectors.statement(user=prosumer)
    assert (seller_line.role, seller_line.energy_amount, seller_line.penalty, seller_line.net) == (
        "seller",
        148,
        -18,
        130,
    )
    [buyer_line] = selectors.statement(user=consumer)
    assert (buyer_line.role, buyer_line.energy_amount, buyer_line.penalty, buyer_line.net) == (
        "buyer",
        -148,
        18,
        -130,
    )

    assert statements.penalty_explained(seller_line) == (
        "Your meters measured 1.234 kWh delivered of the 2 kWh you sold: for the 0.766 kWh "
        "missing you paid the buyer €0.18 from your deposit (the contract's penalty on its "
        "value at €1.20/kWh)."
    )
    client.force_login(consumer)
    page = client.get("/market/statements/").content.decode()
    assert f'data-contract="{line.contract_id}"' in page
    assert "-€1.30" in page
    assert (
        "The seller delivered 1.234 kWh of the 2 kWh you bought: for the 0.766 kWh missing, "
        "€0.18 of its deposit came to you."
    ) in page
    response = client.get("/market/statements.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert tuple(rows[0]) == HEADER
    assert rows[1][0] == datetime_of_ms(slot).isoformat()  # ISO 8601 with its offset
    assert rows[1][0].endswith("+00:00")
    assert rows[1][3:] == [
        "buyer",
        prosumer.identity.address,
        "2000",
        "1234",
        "120",
        "-148",
        "0",
        "18",
        "-130",
        "electricity",
    ]
    client.force_login(grid_operator)
    assert client.get("/market/statements.csv").status_code == 403


def test_a_statement_never_holds_a_formula() -> None:
    for text in ('=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    for safe in ("01abc", "seller", -148, 0, 2_000):
        assert neutralise(safe) == safe


def ada_meter(prosumer: User) -> Any:
    """The prosumer's PV meter "ada-pv", registered on the site (not yet on the ledger)."""
    meter, _ = meter_services.meter_register(
        by=prosumer,
        owner=prosumer,
        meter_id="ada-pv",
        kind="pv",
        public_key=DEVICE.public_key_hex,
        feeder="f-1",
        interval_s=900,
    )
    return meter


def test_what_did_not_reach_the_ledger_is_relayed_again(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from meters import relay
    from meters.models import ReadingBatch

    # Registered and reported while the relay could not run (its on-commit hooks never ran).
    meter = ada_meter(prosumer)
    start = (site.blocks[-1].timestamp_ms // SLOT_MS) * SLOT_MS
    body = batch(reading(start, 500, duration_s=900)).encode()
    t = int(time.time())
    meter_services.readings_ingest(
        meter=meter, body=body, signature_header=header_value(DEVICE, body, t=t), now_s=t
    )
    assert not SubmittedTransaction.objects.exists()
    ReadingBatch.objects.update(received_at=timezone.now() - timedelta(minutes=5))

    assert relay.relay_pending() == 2
    assert [r.body["type"] for r in SubmittedTransaction.objects.order_by("id")] == [
        "meter.register",
        "meter.readings",
    ]
    assert relay.relay_pending() == 0  # both pending: nothing sent twice
    assert list(commit_pending(site).results) == ["ok", "ok"]
    assert relay.relay_pending() == 0  # both on the ledger
    window = StateEntry.objects.get(key="meter/window/ada-pv").value
    assert str(start) in window["readings"]


def test_a_registration_refused_for_good_is_not_sent_again(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    from meters import relay
    from meters.models import Meter

    meter = ada_meter(prosumer)
    # The site's row names as the owner an account the ledger knows as the grid operator's
    # (a row edited by hand, say): the validators refuse that registration, every time.
    Meter.objects.filter(pk=meter.pk).update(owner=grid_operator)
    assert relay.relay_pending() == 1
    assert list(commit_pending(site).results) == ["not_household"]
    assert relay.register_refusals([Meter.objects.get(pk=meter.pk)]) == {"ada-pv": "not_household"}
    assert relay.relay_pending() == 0
    assert relay.relay_pending() == 0  # not every two minutes for ever
    # Corrected, the meter is a new registration: it is sent.
    Meter.objects.filter(pk=meter.pk).update(owner=prosumer)
    assert relay.register_refusals([Meter.objects.get(pk=meter.pk)]) == {}
    assert relay.relay_pending() == 1
    assert list(commit_pending(site).results) == ["ok"]
    assert relay.relay_pending() == 0


def test_the_meters_page_tells_the_owner_why_the_ledger_refused_a_meter(
    site: Site, prosumer: User
) -> None:
    from ledger.models import TransactionRecord
    from meters import relay

    ada_meter(prosumer)
    relay.relay_pending()
    commit_pending(site)
    client = Client()
    client.force_login(prosumer)
    assert "The ledger refused" not in client.get("/meters/").content.decode()
    # As the projection records a registration the validators refused (on a network whose
    # slot the interval does not divide, say).
    TransactionRecord.objects.filter(type="meter.register").update(result="bad_interval")
    page = client.get("/meters/").content.decode()
    assert "The ledger refused this meter's registration: The interval is one of" in page
    assert "It is not sent again unchanged" in page
