"""Heat beside electricity against the real validators, in one slot: a heat contract is made
through the site, an electricity bid in the same slot never matches the heat ask, the meters
report through the site, and the slot settles by docs/market.md's "Heat: a worked example"
(Ada sells Ben 3,000 Wh thermal at 12 and her heat meter shows 2,500 Wh fed in; her electricity
meter's 2,700 Wh never count for heat). The grid operator publishes heat's tariff through the
site for that slot, so the heat Ben's meter drew beyond the contract (3,200 - 2,500 Wh) is bought
from the supplier of last resort at heat's band, as docs/market.md's "Heat with the supplier"
says.

Slots are one minute long on this network, so the test waits about two minutes."""

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
from market.models import (
    Contract,
    GridSettlement,
    MarketAccount,
    Order,
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
    "market.heat": 1,
    "market.heat.network_fee": 3,
    "market.heat.deposit_bps": 5_000,
    "market.heat.penalty_bps": 5_000,
}
CREDITS = 100_000
HEAT_DEVICE = KeyPair(private_key=bytes(range(50, 82)))
PV_DEVICE = KeyPair(private_key=bytes(range(51, 83)))
BEN_HEAT_DEVICE = KeyPair(private_key=bytes(range(52, 84)))
HEAT_BAND = {"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, OPTIONS) as live:
        yield live


def balance(address: str) -> int:
    value: int = LedgerAccount.objects.get(address=address).balance
    return value


def heat_households(
    network: LiveNetwork, grid_operator: User, *, feeder: str | None = None
) -> tuple[User, User]:
    """Ada and Ben (a consumer) enrolled through the site's services, on the heat segment
    loop-a (and on the electricity ``feeder``, if one), funded with ``CREDITS``."""
    give_issuer_key(grid_operator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    ben = UserFactory(name="Ben", email="ben@test.example", household_kind="consumer")
    for household in (ada, ben):
        ledger_services.household_enrol(operator=grid_operator, household=household)
    addresses = [ada.identity.address, ben.identity.address]
    network.until(
        "both registered",
        lambda: LedgerAccount.objects.filter(address__in=addresses).count() == 2,
    )
    for household in (ada, ben):
        if feeder is not None:
            market_services.feeder_assign(
                operator=grid_operator, household=household, feeder=feeder
            )
        market_services.feeder_assign(
            operator=grid_operator, household=household, feeder="loop-a", carrier="heat"
        )
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
    return ada, ben


def test_a_heat_trade_settles_by_its_worked_example_on_the_real_network(
    network: LiveNetwork, grid_operator: User
) -> None:
    ada, ben = heat_households(network, grid_operator, feeder="f-1")
    seller, buyer = ada.identity.address, ben.identity.address
    meters = {}
    for owner, meter_id, kind, device, feeder in (
        (ada, "ada-heat", "heat", HEAT_DEVICE, "loop-a"),
        (ada, "ada-pv", "pv", PV_DEVICE, "f-1"),
        (ben, "ben-heat", "heat", BEN_HEAT_DEVICE, "loop-a"),
    ):
        meters[meter_id], _ = meter_services.meter_register(
            by=owner,
            owner=owner,
            meter_id=meter_id,
            kind=kind,
            public_key=device.public_key_hex,
            feeder=feeder,
            interval_s=60,
        )
    network.until(
        "funded, on a feeder and a heat segment, meters on the ledger",
        lambda: (
            LedgerAccount.objects.filter(address__in=[seller, buyer], balance=CREDITS).count() == 2
            and MarketAccount.objects.filter(feeder="f-1", heat_segment="loop-a").count() == 2
            and StateEntry.objects.filter(
                key__in=["meter/ada-heat", "meter/ada-pv", "meter/ben-heat"]
            ).count()
            == 3
        ),
    )
    operator_before = balance(OPERATOR.address)
    margin = timezone.now() + timedelta(seconds=40)
    slot = next(s.start for s in selectors.slot_list() if s.gate_closure >= margin)
    # Heat's tariff from that slot on, published on the site's service like electricity's.
    market_services.tariff_publish(
        operator=grid_operator, from_slot=slot, bands=[HEAT_BAND], carrier="heat"
    )
    network.until("heat's tariff", lambda: Tariff.objects.filter(carrier="heat").exists())
    assert not Tariff.objects.filter(carrier="electricity").exists()

    # Ada's heat ask rests; Ben's electricity bid at a higher price rests beside it, unmatched.
    market_services.order_place(
        user=ada, slot=slot, side="sell", energy_wh=3_000, price=12, carrier="heat"
    )
    market_services.order_place(user=ben, slot=slot, side="buy", energy_wh=3_000, price=40)
    network.until("both rest", lambda: Order.objects.filter(slot=slot).count() == 2)
    assert not Contract.objects.filter(slot=slot).exists()
    market_services.order_place(
        user=ben, slot=slot, side="buy", energy_wh=3_000, price=14, carrier="heat"
    )
    network.until("a heat contract", lambda: Contract.objects.filter(slot=slot).exists())
    contract = Contract.objects.get(slot=slot)
    assert (contract.carrier, contract.id) == ("heat", f"heat-{ms_of_datetime(slot)}-0")
    assert (contract.energy_wh, contract.price, contract.escrow, contract.deposit) == (
        3_000,
        12,
        45,
        18,
    )

    # When the slot is over, the meters report it: Ada's 2,500 Wh of heat fed in and 2,700 Wh of
    # electricity, Ben's 3,200 Wh of heat drawn.
    slot_end = slot + timedelta(minutes=1)
    time.sleep(max(0.0, (slot_end - timezone.now()).total_seconds()) + 1)
    t = int(time.time())
    for meter_id, device, export_wh, import_wh in (
        ("ada-heat", HEAT_DEVICE, 2_500, 0),
        ("ada-pv", PV_DEVICE, 2_700, 0),
        ("ben-heat", BEN_HEAT_DEVICE, 0, 3_200),
    ):
        flows = reading(ms_of_datetime(slot), export_wh, import_wh=import_wh, duration_s=60)
        body = batch(flows).encode()
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

    def settled() -> bool:
        # Ben's electricity bid still rests: the slot is cleared (it expires), then settled.
        market_services.slots_clear(operator=grid_operator, now=timezone.now())
        market_services.slots_settle(operator=grid_operator, now=timezone.now())
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the slot settled", settled)
    line = SettlementLine.objects.get(contract=contract)
    assert line.carrier == "heat"
    assert (line.delivered_wh, line.paid, line.fee, line.penalty) == (2_500, 30, 7, 3)
    # Heat's residual, at heat's band: Ben bought the 700 Wh thermal his contract did not bring
    # (value(700, 10) = 7, fee value(700, 2) = 1); Ada's heat all went to her contract.
    lines = {row.account: row for row in GridSettlement.objects.filter(slot=slot)}
    assert {row.carrier for row in lines.values()} == {"heat"}
    assert set(lines) == {seller, buyer}  # electricity has no tariff: no electricity line
    bens = lines[buyer]
    assert (bens.import_wh, bens.p2p_in_wh, bens.grid_import_wh) == (3_200, 2_500, 700)
    assert (bens.retail, bens.import_cost, bens.import_fee, bens.arrears) == (10, 7, 1, 0)
    adas = lines[seller]
    assert (adas.export_wh, adas.p2p_out_wh, adas.grid_export_wh, adas.feed_in_paid) == (
        2_500,
        2_500,
        0,
        0,
    )
    settled_slot = SlotSettlement.objects.get(slot=slot)
    assert settled_slot.residual is None
    assert settled_slot.carriers["heat"]["residual"]["import_cost"] == 7
    assert balance(seller) == CREDITS + 30 - 3
    assert balance(buyer) == CREDITS - 30 - 7 + 3 - 7 - 1
    assert balance(OPERATOR.address) == operator_before + 7 + 7 + 1
    assert dict(
        MarketAccount.objects.filter(address__in=[seller, buyer]).values_list("address", "locked")
    ) == {seller: 0, buyer: 0}
