"""The read models of requirements and stores, projected from real certified blocks (the network
and actors of conftest.py): every event of ``market.chain.flexibility`` and
``market.chain.storage`` lands in its row, what is live (budgets, deposits, a store's
commitments) follows the state, and a rebuild from a validator's store gives exactly the same
rows."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from flexibility.models import (
    Answer,
    Enrolment,
    FlexibilityContract,
    Requirement,
    Store,
    StoreCharge,
)
from ledger.projection import datetime_of_ms
from market.chain.pricing import seller_deposit, value
from market.models import Contract
from tests.flexibility.support import (
    ADA,
    ADA_METER,
    BATTERY,
    BEN,
    BEN_METER,
    SLOT_MS,
    History,
    commit,
    now_ms,
)
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site

pytestmark = pytest.mark.django_db
GATE_MS = 300_000


def open_slot() -> int:
    """A slot open for a while yet at the site's clock."""
    return (now_ms() + GATE_MS) // SLOT_MS * SLOT_MS + 2 * SLOT_MS


def post(site: Site, slot: int, energy_wh: int) -> Any:
    """The operator's requirement: reduce import on north by ``energy_wh`` at up to 50."""
    return site.sign(
        OPERATOR,
        "market.requirement.post",
        slot=slot,
        feeder="north",
        direction="import",
        energy_wh=energy_wh,
        price=50,
    )


def dump() -> dict[str, list[dict[str, Any]]]:
    """Every row of the flexibility read models, less the numbers the database gives rows."""

    def fields(row: Any) -> dict[str, Any]:
        numbered = row._meta.pk.get_internal_type() in ("AutoField", "BigAutoField")
        return {k: v for k, v in model_to_dict(row).items() if not (numbered and k == "id")}

    models = (Enrolment, Requirement, Answer, FlexibilityContract, Store, StoreCharge)
    return {
        model.__name__: [fields(row) for row in model.objects.order_by(*model._meta.ordering)]
        for model in models
    }


def test_it_projects_a_requirement_from_its_post_to_its_settlement_and_rebuilds_it(
    site: Site,
) -> None:
    (enrolment,) = Enrolment.objects.all()
    assert (enrolment.address, enrolment.carrier) == (ADA.address, "electricity")

    slot = open_slot()
    requirement_tx = post(site, slot, 2_000)
    posted = commit(site, [requirement_tx])
    requirement = Requirement.objects.get()
    assert model_to_dict(requirement) == {
        "id": requirement_tx.id,
        "owner": OPERATOR.address,
        "slot": datetime_of_ms(slot),
        "carrier": "electricity",
        "feeder": "north",
        "direction": "import",
        "energy_wh": 2_000,
        "price": 50,
        "remaining_wh": 2_000,
        "locked": value(2_000, 50),  # the budget
        "status": "open",
        "height": posted.height,
        "posted_at": datetime_of_ms(posted.timestamp_ms),
        "closed_height": None,
    }

    answer = site.sign(
        ADA, "market.requirement.answer", requirement=requirement_tx.id, energy_wh=1_500, price=40
    )
    answered = commit(site, [answer])
    row = Answer.objects.get()
    assert (row.id, row.requirement_id, row.owner, row.height) == (
        answer.id,
        requirement_tx.id,
        ADA.address,
        answered.height,
    )
    assert (row.energy_wh, row.price, row.remaining_wh, row.status) == (1_500, 40, 1_500, "open")
    assert row.baseline_wh == 3_000  # her latest settled slot: 3 readings of 1,000 Wh
    assert row.locked == seller_deposit(1_500, 40, 2_000)

    accepted = commit(
        site, [site.sign(OPERATOR, "market.requirement.accept", answer=answer.id, energy_wh=1_000)]
    )
    contract = Contract.objects.get()
    assert (contract.id, contract.kind, contract.seller, contract.buyer) == (
        f"{slot}-0",
        "flexibility",
        ADA.address,
        OPERATOR.address,
    )
    assert (contract.energy_wh, contract.price, contract.height) == (1_000, 40, accepted.height)
    made = FlexibilityContract.objects.get()
    assert model_to_dict(made) == {
        "contract": contract.id,
        "requirement": requirement_tx.id,
        "answer": answer.id,
        "carrier": "electricity",
        "direction": "import",
        "feeder": "north",
        "baseline_wh": 3_000,
        "measured_wh": None,
        "delivered_wh": None,
        "paid": None,
        "penalty": None,
        "settled_height": None,
        "settled_at": None,
    }
    requirement.refresh_from_db()
    row.refresh_from_db()
    # What is left still locks its share: the budget of 1,000 Wh, the deposit of 500 Wh.
    assert (requirement.remaining_wh, requirement.locked, requirement.status) == (1_000, 50, "open")
    assert (row.remaining_wh, row.locked, row.status) == (
        500,
        seller_deposit(500, 40, 2_000),
        "open",
    )

    # The end of trading: what is left of both expires.
    cleared = commit(
        site,
        [site.sign(OPERATOR, "market.slot.clear", slot=slot)],
        at=slot - GATE_MS + 1_000,
    )
    requirement.refresh_from_db()
    row.refresh_from_db()
    assert (requirement.status, requirement.remaining_wh, requirement.locked) == (
        "expired",
        1_000,
        0,
    )
    assert (row.status, row.remaining_wh, row.locked) == ("expired", 500, 0)
    assert requirement.closed_height == row.closed_height == cleared.height

    # Ada's meter imports 2,400 Wh in the slot: a reduction of 600 Wh against 3,000, 400 Wh
    # short of the 1,000 accepted: paid value(600, 40), penalty 20 % of value(400, 40) = 3.2.
    settled = History(site).settle(slot, {"ada-main": (ADA_METER, 800, 0)})
    (result,) = [e["data"] for e in settled.events if e["type"] == "market.contract_settled"]
    made.refresh_from_db()
    assert (made.measured_wh, made.delivered_wh) == (2_400, 600)
    assert (made.paid, made.penalty) == (result["paid"], result["penalty"]) == (24, 3)
    assert made.settled_height == settled.height
    assert made.settled

    # `manage.py rebuild_read_models` from a validator's store gives exactly the same rows.
    live = dump()
    site.write_store()
    Answer.objects.update(baseline_wh=None)
    FlexibilityContract.objects.update(measured_wh=0)
    Enrolment.objects.all().delete()
    call_command("rebuild_read_models", node=0, stdout=io.StringIO())
    assert dump() == live


def test_a_requirement_accepted_in_full_closes_filled_and_its_other_answers_expire(
    site: Site,
) -> None:
    history = History(site)
    history.commit([history.sign(BEN, "market.flexibility.enroll")])
    history.settle(history.first_slot(), {"ben-main": (BEN_METER, 500, 0)})
    requirement_tx = post(site, open_slot(), 1_000)
    commit(site, [requirement_tx])
    ada = site.sign(
        ADA, "market.requirement.answer", requirement=requirement_tx.id, energy_wh=1_000, price=45
    )
    ben = site.sign(
        BEN, "market.requirement.answer", requirement=requirement_tx.id, energy_wh=800, price=30
    )
    commit(site, [ada, ben])
    assert Answer.objects.get(id=ben.id).baseline_wh == 1_500
    commit(site, [site.sign(OPERATOR, "market.requirement.accept", answer=ada.id, energy_wh=1_000)])
    assert Requirement.objects.values_list("status", "remaining_wh", "locked").get() == (
        "filled",
        0,
        0,
    )
    statuses = dict(Answer.objects.values_list("id", "status"))
    assert statuses == {ada.id: "taken", ben.id: "expired"}


def test_it_projects_a_store_its_commitments_and_its_charge(site: Site) -> None:
    registered = commit(
        site,
        [
            site.sign(
                OPERATOR,
                "market.storage.register",
                address=BEN.address,
                meter="ben-battery",
                capacity_wh=10_000,
                soc_wh=4_000,
            )
        ],
    )
    store = Store.objects.get()
    assert (store.address, store.carrier, store.meter) == (
        BEN.address,
        "electricity",
        "ben-battery",
    )
    assert (store.capacity_wh, store.soc_wh, store.soc_slot) == (10_000, 4_000, None)
    assert (store.sell_wh, store.buy_wh, store.registered_height) == (0, 0, registered.height)

    # A sell order commits the charge (no event: from the state after the block).
    slot = open_slot()
    sell = site.sign(BEN, "market.order.place", slot=slot, side="sell", energy_wh=3_000, price=20)
    commit(site, [sell])
    store.refresh_from_db()
    assert (store.sell_wh, store.can_sell_wh, store.can_buy_wh) == (3_000, 1_000, 6_000)
    commit(site, [site.sign(BEN, "market.order.cancel", order=sell.id)])
    store.refresh_from_db()
    assert store.sell_wh == 0

    # A settled slot moves the charge by the store's meter: 3 x 200 Wh out.
    settled = History(site).settle(slot, {"ben-battery": (BATTERY, 0, 200)})
    store.refresh_from_db()
    assert (store.soc_wh, store.soc_slot) == (3_400, datetime_of_ms(slot))
    (charge,) = StoreCharge.objects.all()
    assert (charge.address, charge.slot, charge.soc_wh) == (BEN.address, store.soc_slot, 3_400)
    assert (charge.import_wh, charge.export_wh, charge.height) == (0, 600, settled.height)
