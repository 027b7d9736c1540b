"""Supervision's read-model audit (``supervision.audit``) where history has left the state: the
acts and loads of a settled slot, and the acts that never left a record, compared with the
blocks' events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gridplatform.accounts.models import User
from ledger.projection import datetime_of_ms
from market.chain.schema import contract_key
from market.models import Contract
from supervision import audit
from supervision.models import FeederLoad, ReviewItem, SupervisoryAct
from tests.ledger.chains import OPERATOR, REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import SLOT_MS, address, commit, slot_at, trade

pytestmark = pytest.mark.django_db


@dataclass
class Settled:
    """A slot with a vetoed and a curtailed contract, settled; acts that left no record."""

    site: Site
    slot: int
    vetoed: Contract
    curtailed: Contract
    resumed: str  # the resumption's transaction

    def differences(self) -> list[tuple[str, str, str]]:
        found = audit.audit(height=self.site.blocks[-1].height, state=self.site.state)
        return [(d.model, d.row, d.field) for d in found]


@pytest.fixture
def settled(site: Site, prosumer: User, consumer: User, outsider: User) -> Settled:
    slot = slot_at(site)
    vetoed = trade(site, prosumer, consumer, 500, 100, slot)
    curtailed = trade(site, prosumer, consumer, 300, 100, slot)
    why = {"reason": "why"}
    commit(
        site,
        [
            site.sign(REGULATOR, "supervision.contract.veto", contract=vetoed.id, **why),
            site.sign(
                REGULATOR,
                "supervision.contract.curtail",
                contract=curtailed.id,
                energy_wh=200,
                **why,
            ),
            site.sign(REGULATOR, "supervision.trading.suspend", scope="market", until=0, **why),
        ],
    )
    outsider_address = address(outsider)
    resume = site.sign(REGULATOR, "supervision.trading.resume", scope="market", **why)
    commit(
        site,
        [
            resume,
            site.sign(REGULATOR, "supervision.account.restrict", address=outsider_address, **why),
            site.sign(REGULATOR, "supervision.account.reinstate", address=outsider_address, **why),
            site.sign(OPERATOR, "grid.state.declare", scope="feeder:f1", state="high_load", **why),
            site.sign(OPERATOR, "grid.state.declare", scope="feeder:f1", state="normal", **why),
        ],
    )
    due = slot + 2 * SLOT_MS + 1  # the slot, then the settlement delay
    commit(site, [site.sign(OPERATOR, "market.slot.settle", slot=slot)], timestamp_ms=due)
    assert site.state.get(contract_key(vetoed.id)) is None  # history now
    vetoed.refresh_from_db()
    curtailed.refresh_from_db()
    return Settled(site, slot, vetoed, curtailed, resume.id)


def test_it_finds_no_difference_in_a_settled_slots_history(settled: Settled) -> None:
    assert FeederLoad.objects.filter(slot=datetime_of_ms(settled.slot)).count() == 2
    assert SupervisoryAct.objects.count() == 2 + 8  # the feeders' publications, then the acts
    assert settled.differences() == []


def _load(settled: Settled) -> FeederLoad:
    return FeederLoad.objects.get(feeder="f1", slot=datetime_of_ms(settled.slot))


def load_changed(settled: Settled) -> list[tuple[str, str, str]]:
    FeederLoad.objects.filter(pk=_load(settled).pk).update(export_wh=0)
    return [("FeederLoad", f"{settled.slot}/f1", "export_wh")]


def load_lost(settled: Settled) -> list[tuple[str, str, str]]:
    _load(settled).delete()
    return [("FeederLoad", f"{settled.slot}/f1", "(row)")]


def resumption_lost(settled: Settled) -> list[tuple[str, str, str]]:
    SupervisoryAct.objects.filter(tx=settled.resumed).delete()
    return [("SupervisoryAct", settled.resumed, "(row)")]


def act_made_up(settled: Settled) -> list[tuple[str, str, str]]:
    made_up = SupervisoryAct.objects.get(tx=settled.resumed)
    made_up.tx = "f" * 64
    made_up.save()
    return [("SupervisoryAct", "f" * 64, "(row)")]


def act_reworded(settled: Settled) -> list[tuple[str, str, str]]:
    SupervisoryAct.objects.filter(tx=settled.resumed).update(reason="because")
    return [("SupervisoryAct", settled.resumed, "reason")]


def veto_undone(settled: Settled) -> list[tuple[str, str, str]]:
    Contract.objects.filter(id=settled.vetoed.id).update(vetoed=False, escrow=5)
    return [("Contract", settled.vetoed.id, "escrow"), ("Contract", settled.vetoed.id, "vetoed")]


def curtailment_forgotten(settled: Settled) -> list[tuple[str, str, str]]:
    Contract.objects.filter(id=settled.curtailed.id).update(energy_wh=300, acts=[])
    row = settled.curtailed.id
    return [("Contract", row, "energy_wh"), ("Contract", row, "acts")]


def review_undecided(settled: Settled) -> list[tuple[str, str, str]]:
    ReviewItem.objects.create(contract=settled.curtailed, rules=[], flagged_height=1)
    row = settled.curtailed.id
    return [("ReviewItem", row, "status"), ("ReviewItem", row, "decided_by")]


Change = Callable[[Settled], list[tuple[str, str, str]]]


@pytest.mark.parametrize(
    "change",
    [
        load_changed,
        load_lost,
        resumption_lost,
        act_made_up,
        act_reworded,
        veto_undone,
        curtailment_forgotten,
        review_undecided,
    ],
)
def test_it_names_each_changed_row_of_history(settled: Settled, change: Change) -> None:
    expected = change(settled)
    assert sorted(settled.differences()) == sorted(expected)


def test_a_review_item_of_a_settled_contract_follows_its_last_act(settled: Settled) -> None:
    ReviewItem.objects.create(
        contract=settled.vetoed,
        rules=[],
        flagged_height=1,
        status="vetoed",
        decided_by=settled.vetoed.acts[-1]["tx"],
    )
    assert settled.differences() == []
