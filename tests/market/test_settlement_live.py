"""End to end against the real validators: a household's meter reports through the site, the
contract settles on the grid operator's timer, and balances move by exactly worked example 2 of
docs/market.md (2,000 Wh at 120 per kWh, 1,234 Wh delivered, network fee 5 per kWh, deposit and
penalty 20 %). Slots are one minute long on this network, so the test waits about two minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from gridplatform.accounts.models import User
from ledger import services as ledger_services
from ledger.identity import KeyPair
from ledger.models import LedgerAccount, StateEntry
from ledger.projection import ms_of_datetime
from market import bills, selectors
from market import services as market_services
from market.models import (
    Contract,
    GridSettlement,
    MarketAccount,
    SettlementLine,
    SlotSettlement,
    Tariff,
)
from meters import services as meter_services
from meters.signing import header_value
from tests.factories import UserFactory
from tests.ledger.chains import OPERATOR
from tests.ledger.live import LiveNetwork, running_network
from tests.ledger.site import give_issuer_key
from tests.market.support import batch, reading

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
OPTIONS = {
    "market.slot_ms": 60_000,
    "market.gate_closure_ms": 15_000,
    "market.settlement_delay_ms": 10_000,
    "market.network_fee": 5,
    "market.deposit_bps": 2_000,
    "market.penalty_bps": 2_000,
}
CREDITS = 100_000
DEVICE = KeyPair(private_key=bytes(range(40, 72)))


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, OPTIONS) as live:
        yield live


def balance(address: str) -> int:
    value: int = LedgerAccount.objects.get(address=address).balance
    return value


def test_a_meter_reports_and_a_contract_settles_by_the_worked_example(
    network: LiveNetwork, grid_operator: User
) -> None:
    give_issuer_key(grid_operator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    ben = UserFactory(name="Ben", email="ben@test.example", household_kind="consumer")
    for household in (ada, ben):
        ledger_services.household_enrol(operator=grid_operator, household=household)
    seller, buyer = ada.identity.address, ben.identity.address
    network.until(
        "both registered",
        lambda: LedgerAccount.objects.filter(address__in=[seller, buyer]).count() == 2,
    )
    for household in (ada, ben):
        market_services.feeder_assign(operator=grid_operator, household=household, feeder="f-1")
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
    meter, _ = meter_services.meter_register(
        by=ada,
        owner=ada,
        meter_id="ada-pv",
        kind="pv",
        public_key=DEVICE.public_key_hex,
        feeder="f-1",
        interval_s=60,
    )
    network.until(
        "funded, on a feeder, the meter on the ledger",
        lambda: (
            LedgerAccount.objects.filter(address__in=[seller, buyer], balance=CREDITS).count() == 2
            and MarketAccount.objects.filter(feeder="f-1").count() == 2
            and StateEntry.objects.filter(key="meter/ada-pv").exists()
        ),
    )
    operator_before = balance(OPERATOR.address)

    # A contract for the next slot: 2,000 Wh at 120 (the resting sell order's price).
    # The first slot whose gate is at least 40 s away: both orders and their blocks fit before
    # it even on a busy machine.
    margin = timezone.now() + timedelta(seconds=40)
    slot = next(s.start for s in selectors.slot_list() if s.gate_closure >= margin)
    market_services.order_place(user=ada, slot=slot, side="sell", energy_wh=2_000, price=120)
    network.until("the ask rests", lambda: selectors.book(slot=slot).asks != [])
    market_services.order_place(user=ben, slot=slot, side="buy", energy_wh=2_000, price=150)
    network.until("a contract", lambda: Contract.objects.filter(slot=slot).exists())
    contract = Contract.objects.get(slot=slot)
    assert (contract.energy_wh, contract.price, contract.escrow, contract.deposit) == (
        2_000,
        120,
        250,
        48,
    )

    # When the slot is over, the meter reports 1,234 Wh exported in it (one 60 s interval).
    slot_end = slot + timedelta(minutes=1)
    time.sleep(max(0.0, (slot_end - timezone.now()).total_seconds()) + 1)
    body = batch(reading(ms_of_datetime(slot), 1_234, duration_s=60)).encode()
    t = int(time.time())
    stored = meter_services.readings_ingest(
        meter=meter, body=body, signature_header=header_value(DEVICE, body, t=t)
    )
    assert stored.accepted == 1

    def recorded() -> bool:
        window = StateEntry.objects.filter(key="meter/window/ada-pv").first()
        return window is not None and str(ms_of_datetime(slot)) in window.value["readings"]

    network.until("the reading on the ledger", recorded)

    # The grid operator's timer settles it once the settlement delay is over.
    def settled() -> bool:
        market_services.slots_settle(operator=grid_operator, now=timezone.now())
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the slot settled", settled)
    line = SettlementLine.objects.get(contract=contract)
    assert (line.delivered_wh, line.paid, line.fee, line.penalty) == (1_234, 148, 6, 18)
    assert balance(seller) == 100_130
    assert balance(buyer) == 99_864
    assert balance(OPERATOR.address) == operator_before + 6
    assert dict(
        MarketAccount.objects.filter(address__in=[seller, buyer]).values_list("address", "locked")
    ) == {
        seller: 0,
        buyer: 0,
    }


BEN_DEVICE = KeyPair(private_key=bytes(range(41, 73)))
TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}


def test_the_residual_settles_with_the_supplier_by_the_worked_example(
    network: LiveNetwork, grid_operator: User
) -> None:
    """docs/market.md, "The grid behind the market", example 1, through the validators: Ada
    sells Ben 2,000 Wh at 20 and exports 3,000 Wh; Ben imports 4,000 Wh. Ada ends at 100,048,
    Ben at 99,878, the supplier 74 up (10 of P2P fee, 72 of retail and fee, less 8 of feed-in);
    and Ben's bill shows what he saved: 144 with the grid alone, 122 with the community."""
    give_issuer_key(grid_operator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    ben = UserFactory(name="Ben", email="ben@test.example", household_kind="consumer")
    for household in (ada, ben):
        ledger_services.household_enrol(operator=grid_operator, household=household)
    seller, buyer = ada.identity.address, ben.identity.address
    network.until(
        "both registered",
        lambda: LedgerAccount.objects.filter(address__in=[seller, buyer]).count() == 2,
    )
    meters = {}
    for household, meter_id, device in ((ada, "ada", DEVICE), (ben, "ben", BEN_DEVICE)):
        market_services.feeder_assign(operator=grid_operator, household=household, feeder="f-1")
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
        meters[meter_id], _ = meter_services.meter_register(
            by=household,
            owner=household,
            meter_id=meter_id,
            kind="bidirectional",
            public_key=device.public_key_hex,
            feeder="f-1",
            interval_s=60,
        )
    margin = timezone.now() + timedelta(seconds=40)
    slot = next(s.start for s in selectors.slot_list() if s.gate_closure >= margin)
    market_services.tariff_publish(operator=grid_operator, from_slot=slot, bands=[TARIFF])
    network.until(
        "funded, on a feeder, meters and the tariff on the ledger",
        lambda: (
            LedgerAccount.objects.filter(address__in=[seller, buyer], balance=CREDITS).count() == 2
            and MarketAccount.objects.filter(feeder="f-1").count() == 2
            and StateEntry.objects.filter(key__in=["meter/ada", "meter/ben"]).count() == 2
            and Tariff.objects.filter(from_slot=slot).exists()
        ),
    )
    supplier_before = balance(OPERATOR.address)
    market_services.order_place(user=ada, slot=slot, side="sell", energy_wh=2_000, price=20)
    network.until("the ask rests", lambda: selectors.book(slot=slot).asks != [])
    market_services.order_place(user=ben, slot=slot, side="buy", energy_wh=2_000, price=20)
    network.until("a contract", lambda: Contract.objects.filter(slot=slot).exists())

    time.sleep(max(0.0, (slot + timedelta(minutes=1) - timezone.now()).total_seconds()) + 1)
    t = int(time.time())
    for meter_id, device, export_wh, import_wh in (
        ("ada", DEVICE, 3_000, 0),
        ("ben", BEN_DEVICE, 0, 4_000),
    ):
        body = batch(
            reading(ms_of_datetime(slot), export_wh, import_wh=import_wh, duration_s=60)
        ).encode()
        stored = meter_services.readings_ingest(
            meter=meters[meter_id], body=body, signature_header=header_value(device, body, t=t)
        )
        assert stored.accepted == 1
    network.until(
        "both readings on the ledger",
        lambda: StateEntry.objects.filter(
            key=f"meter/inslot/{ms_of_datetime(slot)}", value=2
        ).exists(),
    )

    def settled() -> bool:
        market_services.slots_settle(operator=grid_operator, now=timezone.now())
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the slot settled", settled)
    lines = {row.account: row for row in GridSettlement.objects.filter(slot=slot)}
    assert (lines[seller].grid_export_wh, lines[seller].feed_in_paid) == (1_000, 8)
    assert (lines[buyer].grid_import_wh, lines[buyer].import_cost, lines[buyer].import_fee) == (
        2_000,
        60,
        12,
    )
    assert balance(seller) == 100_048
    assert balance(buyer) == 99_878
    assert balance(OPERATOR.address) == supplier_before + 74
    bill = bills.household_bill(
        user=ben, period=bills.DAY, day=slot.astimezone(UTC).date(), zone=ZoneInfo("UTC")
    )
    assert (bill.totals.cost, bill.totals.baseline, bill.totals.saving) == (122, 144, 22)
