"""Supervision's read models, projected from real certified blocks (topology, tailored contracts,
vetoes, curtailments, reviews, suspensions, restrictions, declarations), and rebuilt from the
chain to exactly the same rows, notifications and their read flags included."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from gridplatform.accounts.models import User
from ledger.projection import datetime_of_ms, ms_of_datetime
from market.chain.schema import contract_key
from market.models import Contract, Order
from supervision.chain.schema import LOAD_PREFIX
from supervision.models import (
    Feeder,
    FeederLoad,
    GridDeclaration,
    Notification,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)
from tests.ledger.chains import OPERATOR, REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import (
    SLOT_MS,
    address,
    commit,
    dump,
    order,
    shortfall,
    slot_at,
    trade,
)

pytestmark = pytest.mark.django_db


def act(site: Site, type_: str, **payload: Any) -> Any:
    """A regulator's act, committed; its transaction."""
    tx = site.sign(REGULATOR, type_, **payload)
    commit(site, [tx])
    return tx


def when(slot: int) -> str:
    return f"{datetime_of_ms(slot):%Y-%m-%d %H:%M} UTC"


def test_it_projects_the_topology_the_load_and_a_contract_the_grid_tailored(
    site: Site, prosumer: User, consumer: User
) -> None:
    feeders = {f.name: (f.export_limit_w, f.import_limit_w, f.state) for f in Feeder.objects.all()}
    assert feeders == {"f1": (8_000, 8_000, "normal"), "f2": (6_000, 6_000, "normal")}
    published = SupervisoryAct.objects.filter(type="grid.feeder.publish").order_by("scope")
    assert [(a.scope, a.actor, a.actor_role, a.affected) for a in published] == [
        ("feeder:f1", OPERATOR.address, "grid_operator", []),
        ("feeder:f2", OPERATOR.address, "grid_operator", []),
    ]

    # f2 imports at most 1,500 Wh in a 15-minute slot: the bid of 2,000 is cut to that.
    slot = slot_at(site, 4)
    made = trade(site, prosumer, consumer, 2_000, 100, slot)
    assert made.energy_wh == 1_500
    assert made.grid == {"requested_wh": 2_000, "constraint": "import:f2", "cut_wh": 500}
    loads = {(row.feeder, row.export_wh, row.import_wh) for row in FeederLoad.objects.all()}
    assert loads == {("f1", 1_500, 0), ("f2", 0, 1_500)}
    assert set(FeederLoad.objects.values_list("slot", flat=True)) == {datetime_of_ms(slot)}

    # f2 is full: the contract goes to review.
    item = ReviewItem.objects.get()
    assert (item.contract_id, item.status, item.flagged_height) == (made.id, "pending", made.height)
    assert item.rules == [
        {
            "rule": "feeder_load",
            "detail": "feeder f2's import is at 100 % of its capacity (1,500 of 1,500 Wh)",
        }
    ]


def test_a_veto_releases_the_load_decides_the_review_and_tells_both_parties(
    site: Site, prosumer: User, consumer: User
) -> None:
    slot = slot_at(site, 4)
    made = trade(site, prosumer, consumer, 2_000, 100, slot)
    veto = act(site, "supervision.contract.veto", contract=made.id, reason="wash trade.")

    made.refresh_from_db()
    assert made.vetoed
    assert [a["act"] for a in made.acts] == ["veto"]
    assert not FeederLoad.objects.exists()  # the slot's load is back to nothing
    item = ReviewItem.objects.get()
    assert (item.status, item.decided_by) == ("vetoed", veto.id)

    logged = SupervisoryAct.objects.get(tx=veto.id)
    assert (logged.type, logged.actor, logged.actor_role) == (
        "supervision.contract.veto",
        REGULATOR.address,
        "regulator",
    )
    assert (logged.reason, logged.contract, logged.address, logged.scope) == (
        "wash trade.",
        made.id,
        "",
        "",
    )
    assert logged.affected == [address(prosumer), address(consumer)]
    assert logged.payload == {"contract": made.id, "reason": "wash trade."}
    assert logged.height == site.blocks[-1].height
    assert logged.at == datetime_of_ms(site.blocks[-1].timestamp_ms)

    message = (
        f"A regulator vetoed your contract {made.id} (1.5 kWh at €1.00/kWh for the slot of "
        f"{when(slot)}): wash trade. It will not be delivered or settled; its margins were "
        "released."
    )
    notified = Notification.objects.order_by("address")
    assert sorted((n.address, n.act, n.message, n.read) for n in notified) == sorted(
        [
            (address(prosumer), veto.id, message, False),
            (address(consumer), veto.id, message, False),
        ]
    )
    assert {n.created_at for n in notified} == {logged.at}


def test_a_review_item_follows_a_clearing_and_then_a_curtailment(
    site: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    slot = slot_at(site, 5)
    first = trade(site, prosumer, consumer, 500, 120, slot)
    far = trade(site, prosumer, outsider, 200, 300, slot)  # median 210: 42 % away
    assert not ReviewItem.objects.filter(contract=first).exists()
    item = ReviewItem.objects.get(contract=far)
    assert item.rules == [
        {
            "rule": "price",
            "detail": "300/kWh is 42 % away from the slot's median 210/kWh (more than 30 %)",
        }
    ]

    clear = act(site, "supervision.review.clear", contract=far.id, reason="a real local deal")
    item.refresh_from_db()
    assert (item.status, item.decided_by) == ("cleared", clear.id)
    assert not Notification.objects.exists()  # a clearing changes nothing for the parties

    cut = act(
        site, "supervision.contract.curtail", contract=far.id, energy_wh=150, reason="too big"
    )
    item.refresh_from_db()
    assert (item.status, item.decided_by) == ("curtailed", cut.id)
    far.refresh_from_db()
    assert (far.energy_wh, far.vetoed) == (150, False)
    loads = {(r.feeder, r.export_wh, r.import_wh) for r in FeederLoad.objects.all()}
    assert loads == {("f1", 650, 0), ("f2", 0, 650)}
    assert set(Notification.objects.values_list("address", "message")) == {
        (
            who,
            f"A regulator curtailed your contract {far.id} (0.2 kWh at €3.00/kWh for the slot of "
            f"{when(slot)}) to 0.15 kWh: too big. The margins for the energy taken out were "
            "released.",
        )
        for who in (address(prosumer), address(outsider))
    }
    assert SupervisoryAct.objects.get(tx=cut.id).affected == [
        address(prosumer),
        address(outsider),
    ]


def test_it_projects_suspensions_restrictions_and_declarations(site: Site, outsider: User) -> None:
    until = slot_at(site, 8)
    act(site, "supervision.trading.suspend", scope="feeder:f1", reason="storm", until=until)
    act(site, "supervision.trading.suspend", scope="market", reason="audit", until=0)
    suspended = {s.scope: (s.reason, s.until, s.by) for s in Suspension.objects.all()}
    assert suspended == {
        "feeder:f1": ("storm", datetime_of_ms(until), REGULATOR.address),
        "market": ("audit", None, REGULATOR.address),
    }
    act(site, "supervision.trading.resume", scope="market", reason="audit done")
    assert list(Suspension.objects.values_list("scope", flat=True)) == ["feeder:f1"]
    assert list(SupervisoryAct.objects.order_by("height").values_list("type", "scope"))[-3:] == [
        ("supervision.trading.suspend", "feeder:f1"),
        ("supervision.trading.suspend", "market"),
        ("supervision.trading.resume", "market"),
    ]
    assert not Notification.objects.exists()

    # A restriction cancels the household's open orders and tells it why.
    resting = order(site, outsider, "buy", 500, 90, slot_at(site, 4))
    commit(site, [resting])
    restrict = act(
        site, "supervision.account.restrict", address=address(outsider), reason="meter tampering"
    )
    restriction = Restriction.objects.get()
    assert (restriction.address, restriction.reason, restriction.tx) == (
        address(outsider),
        "meter tampering",
        restrict.id,
    )
    assert restriction.cancelled_orders == [resting.id]
    cancelled = Order.objects.get(id=resting.id)
    assert (cancelled.status, cancelled.locked) == ("cancelled", 0)
    assert Notification.objects.get(act=restrict.id).message == (
        "A regulator restricted your account: meter tampering. You may not place orders or "
        "offers or accept offers until it is reinstated; 1 open order(s) and offer(s) were "
        "cancelled and their margins released. Your contracts stand."
    )
    reinstate = act(
        site, "supervision.account.reinstate", address=address(outsider), reason="meter fixed"
    )
    assert not Restriction.objects.exists()
    assert Notification.objects.get(act=reinstate.id).message == (
        "A regulator reinstated your account: meter fixed. You may trade again."
    )
    assert SupervisoryAct.objects.get(tx=reinstate.id).affected == [address(outsider)]

    # The grid operator's declarations.
    declare = site.sign(
        OPERATOR, "grid.state.declare", scope="feeder:f2", state="high_load", reason="heat"
    )
    grid = site.sign(OPERATOR, "grid.state.declare", scope="grid", state="unstable", reason="fault")
    block = commit(site, [declare, grid])
    f2 = Feeder.objects.get(name="f2")
    assert (f2.state, f2.state_reason, f2.state_since) == (
        "high_load",
        "heat",
        datetime_of_ms(block.timestamp_ms),
    )
    declared = GridDeclaration.objects.get()
    assert (declared.state, declared.reason, declared.by, declared.tx) == (
        "unstable",
        "fault",
        OPERATOR.address,
        grid.id,
    )
    normal = [
        site.sign(OPERATOR, "grid.state.declare", scope=s, state="normal", reason="over")
        for s in ("feeder:f2", "grid")
    ]
    commit(site, normal)
    assert not GridDeclaration.objects.exists()
    f2.refresh_from_db()
    assert (f2.state, f2.state_reason, f2.state_since) == ("normal", "", None)
    assert SupervisoryAct.objects.filter(type="grid.state.declare").count() == 4


def test_a_reset_of_defaults_tells_the_household(
    site: Site, prosumer: User, consumer: User
) -> None:
    shortfall(site, prosumer, consumer)
    reset = act(site, "supervision.defaults.reset", address=address(prosumer), reason="storm")
    logged = SupervisoryAct.objects.get(tx=reset.id)
    assert (logged.address, logged.affected) == (address(prosumer), [address(prosumer)])
    [notified] = Notification.objects.all()
    assert (notified.address, notified.act, notified.message) == (
        address(prosumer),
        reset.id,
        "A regulator reset your account's unsettled defaults: storm. Your history of shortfalls "
        "stays on record.",
    )


def test_it_reviews_a_contract_of_a_household_that_fell_short_lately(
    site: Site, prosumer: User, consumer: User
) -> None:
    short = shortfall(site, prosumer, consumer)
    act(site, "supervision.defaults.reset", address=address(prosumer), reason="storm")
    made = trade(site, prosumer, consumer, 100, 100, slot_at(site, 4))  # may trade again
    [item] = ReviewItem.objects.all()
    assert item.contract_id == made.id
    assert item.rules == [
        {
            "rule": "defaults",
            "detail": f"the seller fell short in the slot of {when(ms_of_datetime(short.slot))}",
        }
    ]


def test_a_refused_act_is_not_in_the_audit_log(site: Site) -> None:
    tx = site.sign(REGULATOR, "supervision.trading.resume", scope="market", reason="nothing")
    assert list(site.commit([tx]).results) == ["not_suspended"]
    assert not SupervisoryAct.objects.filter(tx=tx.id).exists()


def test_a_rebuild_gives_the_same_rows_and_keeps_the_notifications_read_flags(
    site: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    slot = slot_at(site, 4)
    vetoed = trade(site, prosumer, consumer, 2_000, 100, slot)
    kept = trade(site, prosumer, outsider, 1_300, 100, slot_at(site, 5))  # f2 at 86 %
    act(site, "supervision.contract.veto", contract=vetoed.id, reason="wash trade")
    act(site, "supervision.contract.curtail", contract=kept.id, energy_wh=600, reason="f2")
    act(site, "supervision.trading.suspend", scope="feeder:f2", reason="storm", until=0)
    act(site, "supervision.account.restrict", address=address(outsider), reason="tampering")
    commit(
        site,
        [site.sign(OPERATOR, "grid.state.declare", scope="grid", state="high_load", reason="hot")],
    )
    read = Notification.objects.filter(address=address(consumer)).get()
    read.read = True
    read.save()
    live = dump()
    assert {name: len(rows) for name, rows in live.items()} == {
        "Feeder": 2,
        "FeederLoad": 2,  # the curtailed contract's slot
        "GridDeclaration": 1,
        "Suspension": 1,
        "Restriction": 1,
        "SupervisoryAct": 7,  # 2 feeders published, veto, curtailment, suspension, ...
        "ReviewItem": 2,
        "Notification": 5,  # veto: 2, curtailment: 2, restriction: 1
        "Contract": 2,
    }

    # The site's rows lost or damaged: the chain brings them back; notifications stay.
    site.write_store()
    SupervisoryAct.objects.all().delete()
    Feeder.objects.update(export_limit_w=1)
    Suspension.objects.create(
        scope="market", reason="x", by="x", tx="x", height=1, since=read.created_at
    )
    out = io.StringIO()
    call_command("rebuild_read_models", node=0, stdout=out)
    assert f"blocks 0..{site.blocks[-1].height}" in out.getvalue()
    assert dump() == live
    assert Notification.objects.get(pk=read.pk).read
    assert Contract.objects.get(id=vetoed.id).vetoed


# --- history that left the state ------------------------------------------------------------------


def test_a_settled_slot_keeps_its_acts_and_loads_on_the_site(
    site: Site, prosumer: User, consumer: User
) -> None:
    slot = slot_at(site)
    vetoed = trade(site, prosumer, consumer, 500, 100, slot)
    kept = trade(site, prosumer, consumer, 300, 100, slot)
    veto = act(site, "supervision.contract.veto", contract=vetoed.id, reason="wash trade")
    cut = act(site, "supervision.contract.curtail", contract=kept.id, energy_wh=200, reason="f2")
    due = slot + 2 * SLOT_MS + 1  # the slot, then the settlement delay
    commit(site, [site.sign(OPERATOR, "market.slot.settle", slot=slot)], timestamp_ms=due)

    # The chain forgot the slot's contracts and loads; the blocks' events keep what happened.
    state = site.state
    assert state.get(contract_key(vetoed.id)) is None
    assert state.get(contract_key(kept.id)) is None
    assert list(state.keys(f"{LOAD_PREFIX}{slot}/")) == []
    vetoed.refresh_from_db()
    assert (vetoed.vetoed, vetoed.energy_wh, vetoed.escrow, vetoed.deposit) == (True, 500, 0, 0)
    assert [(a["act"], a["tx"]) for a in vetoed.acts] == [("veto", veto.id)]
    kept.refresh_from_db()
    assert (kept.vetoed, kept.energy_wh) == (False, 200)
    assert [(a["act"], a["tx"], a["energy_wh_before"]) for a in kept.acts] == [
        ("curtail", cut.id, 300)
    ]
    loads = {
        (row.feeder, row.export_wh, row.import_wh)
        for row in FeederLoad.objects.filter(slot=datetime_of_ms(slot))
    }
    assert loads == {("f1", 200, 0), ("f2", 0, 200)}  # the slot's last load
    assert set(SupervisoryAct.objects.values_list("tx", flat=True)) >= {veto.id, cut.id}

    live = dump()
    site.write_store()
    call_command("rebuild_read_models", node=0, stdout=io.StringIO())
    assert dump() == live


def test_acts_that_leave_no_record_in_the_state_are_logged_from_their_events(
    site: Site, outsider: User
) -> None:
    suspend = act(site, "supervision.trading.suspend", scope="market", reason="audit", until=0)
    resume = act(site, "supervision.trading.resume", scope="market", reason="audit done")
    restrict = act(site, "supervision.account.restrict", address=address(outsider), reason="x")
    reinstate = act(site, "supervision.account.reinstate", address=address(outsider), reason="y")
    assert not Suspension.objects.exists()
    assert not Restriction.objects.exists()
    logged = {row.tx: (row.type, row.scope, row.address) for row in SupervisoryAct.objects.all()}
    assert logged[suspend.id] == ("supervision.trading.suspend", "market", "")
    assert logged[resume.id] == ("supervision.trading.resume", "market", "")
    assert logged[restrict.id] == ("supervision.account.restrict", "", address(outsider))
    assert logged[reinstate.id] == ("supervision.account.reinstate", "", address(outsider))


def test_a_thin_slot_with_no_tariff_is_held_against_the_last_days_contracts(
    site: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    """No tariff in force: a contract alone in its slot is held against the median price of the
    contracts of the day's slots before it, as the site projected them."""
    earlier = slot_at(site, 3)
    for price in (100, 110, 90):
        trade(site, prosumer, consumer, 100, price, earlier)
    vetoed = trade(site, prosumer, outsider, 100, 5_000, earlier)
    act(site, "supervision.contract.veto", contract=vetoed.id, reason="a typo")  # not counted
    alone = trade(site, prosumer, consumer, 100, 300, slot_at(site, 5))
    near = trade(site, prosumer, outsider, 100, 120, slot_at(site, 6))  # 20 % from 100
    assert ReviewItem.objects.get(contract=alone).rules == [
        {
            "rule": "price",
            "detail": "300/kWh is 200 % away from the median of the last day's contracts "
            "100/kWh (more than 30 %)",
        }
    ]
    assert not ReviewItem.objects.filter(contract=near).exists()
    # The earlier slot's own contracts had no day before them: held against their slot only.
    flagged = ReviewItem.objects.filter(contract__slot=datetime_of_ms(earlier))
    assert [item.contract_id for item in flagged] == [vetoed.id]
