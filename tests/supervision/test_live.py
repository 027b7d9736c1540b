"""Supervision against the real network: four validator processes and the site's worker.

The grid operator publishes a tight feeder, a match across it is tailored to its headroom, the
regulator vetoes the contract (its margins come back and it never settles), suspends a feeder
(orders on it are refused with the reason), and every act beyond a supervisor's powers is
refused by the validators themselves and changes no state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger import services as ledger_services
from ledger.crypto import Transaction, sign_transaction
from ledger.models import LedgerAccount, StateEntry, TransactionRecord
from ledger.projection import ms_of_datetime
from market import selectors
from market import services as market_services
from market.models import Contract, MarketAccount, SettlementLine, SlotSettlement
from tests.factories import UserFactory
from tests.ledger.chains import CHAIN, OPERATOR, REGULATOR
from tests.ledger.live import LiveNetwork, running_network
from tests.ledger.site import give_issuer_key, give_regulator_key

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
OPTIONS = {  # short slots, so that the vetoed contract's slot settles within the test
    "market.slot_ms": 30_000,
    "market.gate_closure_ms": 10_000,
    "market.settlement_delay_ms": 5_000,
    "market.network_fee": 5,
    "market.deposit_bps": 2_000,
}
CREDITS = 100_000
TIGHT_W = 120_000  # 120 kW for a 30-second slot: 1,000 Wh each way


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, OPTIONS) as live:
        yield live


def act(user: User, type_: str, *, rehearse: bool = True, **payload: Any) -> Transaction:
    """A supervisory act through the site: signed with the user's key, rehearsed (unless told
    not to), submitted."""
    return ledger_services.transaction_sign_and_submit(
        user=user, type=type_, payload=payload, rehearse=rehearse
    )


def committed(tx: Transaction) -> str | None:
    result: str | None = (
        TransactionRecord.objects.filter(tx_id=tx.id).values_list("result", flat=True).first()
    )
    return result


def locked(address: str) -> int:
    value = MarketAccount.objects.filter(address=address).values_list("locked", flat=True).first()
    return int(value or 0)


def snapshot() -> dict[str, Any]:
    return dict(StateEntry.objects.values_list("key", "value"))


def test_supervision_is_enforced_by_the_validators(
    network: LiveNetwork, grid_operator: User, regulator: User
) -> None:
    give_issuer_key(grid_operator)
    give_regulator_key(regulator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    ben = UserFactory(name="Ben", email="ben@test.example", household_kind="consumer")
    for household in (ada, ben):
        ledger_services.household_enrol(operator=grid_operator, household=household)
    seller, buyer = ada.identity.address, ben.identity.address
    network.until(
        "both registered",
        lambda: LedgerAccount.objects.filter(address__in=[seller, buyer]).count() == 2,
    )
    # The grid operator publishes a tight feeder for Ada's street and a roomy one for Ben's.
    act(
        grid_operator,
        "grid.feeder.publish",
        feeder="tight",
        export_limit_w=TIGHT_W,
        import_limit_w=TIGHT_W,
    )
    act(
        grid_operator,
        "grid.feeder.publish",
        feeder="roomy",
        export_limit_w=10**6,
        import_limit_w=10**6,
    )
    for household, feeder in ((ada, "tight"), (ben, "roomy")):
        market_services.feeder_assign(operator=grid_operator, household=household, feeder=feeder)
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
    network.until(
        "funded, on their feeders",
        lambda: (
            LedgerAccount.objects.filter(address__in=[seller, buyer], balance=CREDITS).count() == 2
            and MarketAccount.objects.filter(address__in=[seller, buyer]).exclude(feeder="").count()
            == 2
        ),
    )

    # 1. A match across the tight feeder is tailored to its headroom: 1,000 of 1,500 Wh.
    margin = timezone.now() + timedelta(seconds=30)  # both orders commit before the gate
    slot = next(s.start for s in selectors.slot_list() if s.gate_closure >= margin)
    market_services.order_place(user=ada, slot=slot, side="sell", energy_wh=1_500, price=100)
    network.until("the ask rests", lambda: selectors.book(slot=slot).asks != [])
    market_services.order_place(user=ben, slot=slot, side="buy", energy_wh=1_500, price=120)
    network.until("a contract", lambda: Contract.objects.filter(slot=slot).exists())
    contract = Contract.objects.get(slot=slot)
    assert contract.energy_wh == 1_000
    assert contract.grid == {"requested_wh": 1_500, "constraint": "export:tight", "cut_wh": 500}
    # Margins now: the contract's escrow (1,000 Wh x 105) and deposit (20 % of 1,000 Wh x 100),
    # and the resting remainders' (Ben's bid of 500 Wh at 120 + 5, Ada's ask of 500 Wh).
    assert (locked(buyer), locked(seller)) == (105 + 62, 20 + 10)

    # 2. The regulator vetoes it before its slot starts: its margins come back.
    veto = act(regulator, "supervision.contract.veto", contract=contract.id, reason="wash trade")
    network.until("the veto", lambda: Contract.objects.get(id=contract.id).vetoed)
    assert (locked(buyer), locked(seller)) == (62, 10)
    assert Contract.objects.get(id=contract.id).acts[0]["reason"] == "wash trade"
    assert committed(veto) == "ok"

    # 3. Forbidden acts, sent straight to the validators (the site would refuse them first).
    # Each carries the regulator's (or operator's) next nonce; the validators refuse them at
    # admission, so the next real act commits with that very nonce, and no state changed.
    before = snapshot()
    regulator_nonce = before[f"acct/{REGULATOR.address}"]["nonce"]
    operator_nonce = before[f"acct/{OPERATOR.address}"]["nonce"]
    forbidden = [
        (REGULATOR, "credit.issue", {"to": buyer, "amount": 1}),
        (REGULATOR, "credit.transfer", {"to": buyer, "amount": 1}),
        (REGULATOR, "credit.redeem", {"amount": 1}),
        (OPERATOR, "credit.transfer", {"to": buyer, "amount": 1}),
        (OPERATOR, "supervision.contract.veto", {"contract": contract.id, "reason": "r"}),
        (
            REGULATOR,
            "grid.feeder.publish",
            {"feeder": "tight", "export_limit_w": 1, "import_limit_w": 1},
        ),
        (REGULATOR, "ledger.block.remove", {"height": 1}),
        (REGULATOR, "meter.reading.amend", {"meter": "m", "export_wh": 0}),
        (REGULATOR, "market.contract.amend", {"contract": contract.id, "energy_wh": 1}),
        (REGULATOR, "market.settlement.revert", {"slot": ms_of_datetime(slot)}),
    ]
    signed = [
        sign_transaction(
            keypair=who,
            chain=CHAIN,
            type=type_,
            nonce=regulator_nonce if who is REGULATOR else operator_nonce,
            payload=payload,
        )
        for who, type_, payload in forbidden
    ]
    ledger_services.transactions_submit(transactions=signed, validators=range(4))
    marker = act(
        regulator, "supervision.review.clear", rehearse=False, contract=contract.id, reason="x"
    )
    assert marker.nonce == regulator_nonce
    network.until("the regulator's next act", lambda: committed(marker) is not None)
    assert committed(marker) == "contract_vetoed"  # executed: the nonce was still free
    assert not TransactionRecord.objects.filter(tx_id__in=[t.id for t in signed]).exists()
    after = snapshot()
    assert after.pop(f"acct/{REGULATOR.address}")["nonce"] == regulator_nonce + 1
    before.pop(f"acct/{REGULATOR.address}")
    assert after == before

    # Refused in a block: an act without a reason spends its nonce and changes nothing else.
    before = snapshot()
    blank = sign_transaction(
        keypair=REGULATOR,
        chain=CHAIN,
        type="supervision.trading.suspend",
        nonce=regulator_nonce + 1,
        payload={"scope": "market", "reason": " ", "until": 0},
    )
    ledger_services.transactions_submit(transactions=[blank], validators=range(4))
    network.until("the blank act", lambda: committed(blank) is not None)
    assert committed(blank) == "reason_required"
    after = snapshot()
    assert after.pop(f"acct/{REGULATOR.address}")["nonce"] == regulator_nonce + 2
    before.pop(f"acct/{REGULATOR.address}")
    assert after == before

    # 4. A suspended feeder refuses orders, with the suspension's reason.
    act(
        regulator,
        "supervision.trading.suspend",
        scope="feeder:roomy",
        reason="storm damage on the roomy feeder",
        until=0,
    )
    network.until(
        "the suspension",
        lambda: StateEntry.objects.filter(key="supervision/suspended/feeder/roomy").exists(),
    )
    later = next(s.start for s in selectors.slot_list() if s.start > slot)
    with pytest.raises(ledger_services.TransactionRejected) as refused:
        market_services.order_place(user=ben, slot=later, side="buy", energy_wh=100, price=120)
    assert refused.value.code == "feeder_suspended"
    assert "storm damage on the roomy feeder" in refused.value.message
    # ... by the validators too, not only by the site: sent straight to them, it fails.
    direct = sign_transaction(
        keypair=identity_unseal(identity_=ben.identity),
        chain=CHAIN,
        type="market.order.place",
        nonce=StateEntry.objects.get(key=f"acct/{buyer}").value["nonce"],
        payload={"slot": ms_of_datetime(later), "side": "buy", "energy_wh": 100, "price": 120},
    )
    ledger_services.transactions_submit(transactions=[direct], validators=range(4))
    network.until("the direct order", lambda: committed(direct) is not None)
    assert committed(direct) == "feeder_suspended"

    # 5. The vetoed contract never settles: when its slot settles, it has no line and no money
    # moved (the remainders expired at gate closure and released their margins).
    def settled() -> bool:
        now = timezone.now()
        market_services.slots_clear(operator=grid_operator, now=now)
        market_services.slots_settle(operator=grid_operator, now=now)
        return SlotSettlement.objects.filter(slot=slot).exists()

    time.sleep(max(0.0, (slot - timezone.now()).total_seconds()))
    network.until("the slot settled", settled, seconds=150)
    assert SlotSettlement.objects.get(slot=slot).contracts == 0
    assert not SettlementLine.objects.filter(contract_id=contract.id).exists()
    balances = dict(
        LedgerAccount.objects.filter(address__in=[seller, buyer]).values_list("address", "balance")
    )
    assert balances == {seller: CREDITS, buyer: CREDITS}
    network.until("margins released", lambda: locked(buyer) == locked(seller) == 0)
