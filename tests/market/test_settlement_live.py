"""End to end against the real validators: a household's meter reports through the site, the
contract settles on the grid operator's timer, and balances move by exactly worked example 2 of
docs/market.md (2,000 Wh at 120 per kWh, 1,234 Wh delivered, network fee 5 per kWh, deposit and
penalty 20 %). Slots are one minute long on this network, so the test waits about two minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from gridplatform.accounts.models import User
from ledger import services as ledger_services
from ledger.identity import KeyPair
from ledger.models import LedgerAccount, StateEntry
from ledger.projection import ms_of_datetime
from market import selectors
from market import services as market_services
from market.models import Contract, MarketAccount, SettlementLine, SlotSettlement
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
