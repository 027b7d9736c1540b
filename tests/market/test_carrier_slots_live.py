"""Heat's own slot length against the real validators: on a network of one-minute market slots
and two-minute heat slots, a heat order off a heat slot's start is refused ``slot_misaligned``,
a heat contract of a two-minute slot is made through the site, the heat meter reports each
minute as it ends, the site's beat settles the first minute (electricity's business: the heat
contract waits and its reading is kept) and then the heat slot with its last minute, against
both minutes' readings.

The test waits about three minutes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from gridplatform.accounts.models import User
from ledger.identity import KeyPair
from ledger.models import LedgerAccount, StateEntry
from ledger.projection import ms_of_datetime
from ledger.services import TransactionRejected
from market import selectors
from market import services as market_services
from market.models import Contract, MarketAccount, SettlementLine, SlotSettlement
from meters import services as meter_services
from meters.signing import header_value
from tests.ledger.live import LiveNetwork, running_network
from tests.market.support import batch, reading
from tests.market.test_carriers_live import CREDITS, heat_households

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
MINUTE = timedelta(minutes=1)
OPTIONS = {
    "market.slot_ms": 60_000,
    "market.gate_closure_ms": 15_000,
    "market.settlement_delay_ms": 10_000,
    "market.heat": 1,
    "market.heat.slot_ms": 120_000,
}
HEAT_DEVICE = KeyPair(private_key=bytes(range(52, 84)))


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, OPTIONS) as live:
        yield live


def test_a_two_minute_heat_slot_settles_against_both_minutes_on_the_real_network(
    network: LiveNetwork, grid_operator: User
) -> None:
    ada, ben = heat_households(network, grid_operator)
    seller, buyer = ada.identity.address, ben.identity.address
    meter, _ = meter_services.meter_register(
        by=ada,
        owner=ada,
        meter_id="ada-heat",
        kind="heat",
        public_key=HEAT_DEVICE.public_key_hex,
        feeder="loop-a",
        interval_s=60,
    )
    network.until(
        "funded, on a heat segment, the meter on the ledger",
        lambda: (
            LedgerAccount.objects.filter(address__in=[seller, buyer], balance=CREDITS).count() == 2
            and MarketAccount.objects.filter(heat_segment="loop-a").count() == 2
            and StateEntry.objects.filter(key="meter/ada-heat").exists()
        ),
    )
    margin = timezone.now() + timedelta(seconds=40)
    heat_slots = selectors.slot_list(carrier="heat")
    assert all(s.end - s.start == 2 * MINUTE for s in heat_slots)
    slot = next(s.start for s in heat_slots if s.gate_closure >= margin)

    with pytest.raises(TransactionRejected) as refused:  # the rehearsal runs the validators' code
        market_services.order_place(
            user=ada, slot=slot + MINUTE, side="sell", energy_wh=3_000, price=12, carrier="heat"
        )
    assert refused.value.code == "slot_misaligned"
    for user, side in ((ada, "sell"), (ben, "buy")):
        market_services.order_place(
            user=user, slot=slot, side=side, energy_wh=3_000, price=12, carrier="heat"
        )
    network.until("a heat contract", lambda: Contract.objects.filter(slot=slot).exists())
    contract = Contract.objects.get(slot=slot)
    assert (contract.carrier, contract.id) == ("heat", f"heat-{ms_of_datetime(slot)}-0")

    def report(start: Any, export_wh: int) -> None:
        """The heat meter reports the minute from ``start`` once it has ended."""
        time.sleep(max(0.0, (start + MINUTE - timezone.now()).total_seconds()) + 1)
        t = int(time.time())
        body = batch(reading(ms_of_datetime(start), export_wh, duration_s=60)).encode()
        stored = meter_services.readings_ingest(
            meter=meter, body=body, signature_header=header_value(HEAT_DEVICE, body, t=t)
        )
        assert stored.accepted == 1

    def beat() -> None:
        market_services.slots_clear(operator=grid_operator, now=timezone.now())
        market_services.slots_settle(operator=grid_operator, now=timezone.now())

    # The first minute: its reading arrives, and the beat settles that minute only.
    report(slot, 1_000)

    def first_minute_settled() -> bool:
        beat()
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the first minute settled", first_minute_settled)
    assert not SettlementLine.objects.exists()  # the heat slot has not ended

    # The second minute: the heat slot settles with it, against both minutes.
    report(slot + MINUTE, 1_500)

    def heat_settled() -> bool:
        beat()
        return SettlementLine.objects.filter(contract=contract).exists()

    network.until("the heat slot settled", heat_settled)
    line = SettlementLine.objects.get(contract=contract)
    assert (line.carrier, line.slot) == ("heat", slot)
    assert (line.export_wh, line.delivered_wh, line.paid) == (2_500, 2_500, 30)
    settled = SlotSettlement.objects.get(slot=slot + MINUTE)
    assert settled.carriers["heat"]["slot"] == ms_of_datetime(slot)
