"""End to end against the real validators, in one slot: households' meters report through the
site, the slot settles on the grid operator's timer, and balances move by exactly

* worked example 2 of docs/market.md, "Settlement" (Ada sells Ben 2,000 Wh at 120 per kWh and
  delivers 1,234 Wh; network fee 5 per kWh, deposit and penalty 20 %): Ada's export all went to
  Ben and Ben has no meter, so nothing of theirs settles with the supplier; and
* worked example 1 of "The grid behind the market" (Cat sells Dan 2,000 Wh at 20 and exports
  3,000 Wh; Dan imports 4,000 Wh), with the supplier's tariff in force: retail 30, feed-in 8,
  network fee 6; and Dan's bill shows what he saved.

Slots are one minute long on this network, so the test waits about two minutes."""

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


BEN_DEVICE = KeyPair(private_key=bytes(range(41, 73)))  # Dan's meter, in fact: Ben has none
CAT_DEVICE = KeyPair(private_key=bytes(range(42, 74)))
TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}


def test_a_slot_settles_its_contracts_and_the_residual_by_the_worked_examples(
    network: LiveNetwork, grid_operator: User
) -> None:
    give_issuer_key(grid_operator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    ben = UserFactory(name="Ben", email="ben@test.example", household_kind="consumer")
    cat = UserFactory(name="Cat", email="cat@test.example")
    dan = UserFactory(name="Dan", email="dan@test.example", household_kind="consumer")
    households = (ada, ben, cat, dan)
    for household in households:
        ledger_services.household_enrol(operator=grid_operator, household=household)
    addresses = [household.identity.address for household in households]
    seller, buyer, cat_address, dan_address = addresses
    network.until(
        "all registered",
        lambda: LedgerAccount.objects.filter(address__in=addresses).count() == 4,
    )
    meters = {}
    for household in households:
        market_services.feeder_assign(operator=grid_operator, household=household, feeder="f-1")
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
    for household, meter_id, kind, device in (
        (ada, "ada-pv", "pv", DEVICE),
        (cat, "cat", "bidirectional", CAT_DEVICE),
        (dan, "dan", "bidirectional", BEN_DEVICE),
    ):
        meters[meter_id], _ = meter_services.meter_register(
            by=household,
            owner=household,
            meter_id=meter_id,
            kind=kind,
            public_key=device.public_key_hex,
            feeder="f-1",
            interval_s=60,
        )
    # The first slot whose gate is at least 40 s away: the orders and their blocks fit before
    # it even on a busy machine. The supplier's tariff is in force from it.
    margin = timezone.now() + timedelta(seconds=40)
    slot = next(s.start for s in selectors.slot_list() if s.gate_closure >= margin)
    market_services.tariff_publish(operator=grid_operator, from_slot=slot, bands=[TARIFF])
    meter_keys = ["meter/ada-pv", "meter/cat", "meter/dan"]
    network.until(
        "funded, on a feeder, meters and the tariff on the ledger",
        lambda: (
            LedgerAccount.objects.filter(address__in=addresses, balance=CREDITS).count() == 4
            and MarketAccount.objects.filter(feeder="f-1").count() == 4
            and StateEntry.objects.filter(key__in=meter_keys).count() == 3
            and Tariff.objects.filter(from_slot=slot).exists()
        ),
    )
    operator_before = balance(OPERATOR.address)

    # Two contracts for the slot, each at the resting sell order's price.
    for made, (sold_by, bought_by, price, bid) in enumerate(
        ((ada, ben, 120, 150), (cat, dan, 20, 20))
    ):
        market_services.order_place(
            user=sold_by, slot=slot, side="sell", energy_wh=2_000, price=price
        )
        network.until("the ask rests", lambda: selectors.book(slot=slot).asks != [])
        market_services.order_place(
            user=bought_by, slot=slot, side="buy", energy_wh=2_000, price=bid
        )
        network.until(
            "a contract", lambda n=made + 1: Contract.objects.filter(slot=slot).count() == n
        )
    contract = Contract.objects.get(slot=slot, seller=seller)
    assert (contract.energy_wh, contract.price, contract.escrow, contract.deposit) == (
        2_000,
        120,
        250,
        48,
    )

    # When the slot is over, the meters report it (one 60 s interval each): Ada 1,234 Wh out,
    # Cat 3,000 Wh out, Dan 4,000 Wh in.
    slot_end = slot + timedelta(minutes=1)
    time.sleep(max(0.0, (slot_end - timezone.now()).total_seconds()) + 1)
    t = int(time.time())
    for meter_id, device, export_wh, import_wh in (
        ("ada-pv", DEVICE, 1_234, 0),
        ("cat", CAT_DEVICE, 3_000, 0),
        ("dan", BEN_DEVICE, 0, 4_000),
    ):
        body = batch(
            reading(ms_of_datetime(slot), export_wh, import_wh=import_wh, duration_s=60)
        ).encode()
        stored = meter_services.readings_ingest(
            meter=meters[meter_id], body=body, signature_header=header_value(device, body, t=t)
        )
        assert stored.accepted == 1
    network.until(
        "the readings on the ledger",
        lambda: StateEntry.objects.filter(
            key=f"meter/inslot/{ms_of_datetime(slot)}", value=3
        ).exists(),
    )

    # The grid operator's timer settles it once the settlement delay is over.
    def settled() -> bool:
        market_services.slots_settle(operator=grid_operator, now=timezone.now())
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the slot settled", settled)
    line = SettlementLine.objects.get(contract=contract)
    assert (line.delivered_wh, line.paid, line.fee, line.penalty) == (1_234, 148, 6, 18)
    assert balance(seller) == 100_130
    assert balance(buyer) == 99_864
    # Ada's export all went to Ben: nothing to sell the supplier; Ben has no meter.
    lines = {row.account: row for row in GridSettlement.objects.filter(slot=slot)}
    assert set(lines) == {seller, cat_address, dan_address}
    assert (lines[seller].grid_export_wh, lines[seller].grid_import_wh) == (0, 0)
    # Example 1 of "The grid behind the market".
    assert (lines[cat_address].grid_export_wh, lines[cat_address].feed_in_paid) == (1_000, 8)
    dan_line = lines[dan_address]
    assert (dan_line.grid_import_wh, dan_line.import_cost, dan_line.import_fee) == (2_000, 60, 12)
    assert balance(cat_address) == 100_048
    assert balance(dan_address) == 99_878
    # The supplier: the P2P fees (6 + 10), then 72 from Dan, less 8 of feed-in to Cat.
    assert balance(OPERATOR.address) == operator_before + 6 + 10 + 72 - 8
    assert dict(
        MarketAccount.objects.filter(address__in=addresses).values_list("address", "locked")
    ) == dict.fromkeys(addresses, 0)
    bill = bills.household_bill(
        user=dan, period=bills.DAY, day=slot.astimezone(UTC).date(), zone=ZoneInfo("UTC")
    )
    assert (bill.totals.cost, bill.totals.baseline, bill.totals.saving) == (122, 144, 22)
