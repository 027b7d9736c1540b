"""Supervision's services: each signs the right transaction with the actor's custodial key,
rehearses it on the site's replica (a refusal comes back at once with the validators' code, and
nothing is sent) and submits it; the block then shows its effect in the read models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import ms_of_datetime
from ledger.services import TransactionRejected
from market.models import Contract
from supervision import services
from supervision.models import (
    Feeder,
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
    address,
    commit_sent,
    pending,
    shortfall,
    slot_at,
    trade,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def upcoming(site: Site, prosumer: User, consumer: User) -> Contract:
    """A contract of 1,000 Wh at 120 whose slot is still to come for the site."""
    return trade(site, prosumer, consumer, 1_000, 120, slot_at(site, 4))


@pytest.fixture
def started(site: Site, prosumer: User, consumer: User) -> Contract:
    """A contract the blocks made in time, whose slot has started by the site's clock."""
    return trade(site, prosumer, consumer, 500, 110, slot_at(site, 0))


def refused(code: str, call: Any, **kwargs: Any) -> TransactionRejected:
    with pytest.raises(TransactionRejected) as caught:
        call(**kwargs)
    assert caught.value.code == code
    assert not SubmittedTransaction.objects.exists()
    return caught.value


# --- the regulators' acts ------------------------------------------------------------------------


def test_a_veto_is_signed_by_the_regulator_and_takes_effect_in_its_block(
    site: Site, regulator: User, upcoming: Contract
) -> None:
    tx = services.contract_veto(regulator=regulator, contract_id=upcoming.id, reason="wash trade")
    assert (tx.type, tx.sender, tx.payload) == (
        "supervision.contract.veto",
        REGULATOR.address,
        {"contract": upcoming.id, "reason": "wash trade"},
    )
    assert pending() == [
        {"type": "supervision.contract.veto", "contract": upcoming.id, "reason": "wash trade"}
    ]
    assert SubmittedTransaction.objects.get().submitted_by == regulator
    assert commit_sent(site) == ["ok"]
    upcoming.refresh_from_db()
    assert (upcoming.vetoed, upcoming.escrow, upcoming.deposit) == (True, 0, 0)
    assert SupervisoryAct.objects.get(tx=tx.id).actor == REGULATOR.address


def test_a_curtailment_cuts_the_contract(site: Site, regulator: User, upcoming: Contract) -> None:
    tx = services.contract_curtail(
        regulator=regulator, contract_id=upcoming.id, energy_wh=400, reason="feeder limit"
    )
    assert pending() == [
        {
            "type": "supervision.contract.curtail",
            "contract": upcoming.id,
            "energy_wh": 400,
            "reason": "feeder limit",
        }
    ]
    assert commit_sent(site) == ["ok"]
    upcoming.refresh_from_db()
    assert upcoming.energy_wh == 400
    assert [a["tx"] for a in upcoming.acts] == [tx.id]


def test_it_refuses_a_veto_once_the_slot_has_started_and_sends_nothing(
    site: Site, regulator: User, started: Contract
) -> None:
    error = refused(
        "delivery_started",
        services.contract_veto,
        regulator=regulator,
        contract_id=started.id,
        reason="too late",
    )
    assert error.message == "That contract's slot has started: the contract stands."
    assert not Contract.objects.get(id=started.id).vetoed


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_it_refuses_an_act_without_a_reason(
    site: Site, regulator: User, upcoming: Contract, reason: str
) -> None:
    refused(
        "reason_required",
        services.contract_veto,
        regulator=regulator,
        contract_id=upcoming.id,
        reason=reason,
    )


def test_it_says_how_far_a_contract_may_be_curtailed(
    site: Site, regulator: User, upcoming: Contract
) -> None:
    error = refused(
        "not_a_curtailment",
        services.contract_curtail,
        regulator=regulator,
        contract_id=upcoming.id,
        energy_wh=1_000,
        reason="no cut",
    )
    assert (
        error.message == "Curtail to between 1 and 999 Wh (it is 1,000 Wh); to cancel it all, veto."
    )
    refused(
        "bad_energy",
        services.contract_curtail,
        regulator=regulator,
        contract_id=upcoming.id,
        energy_wh=True,
        reason="a boolean is no energy",
    )


def test_it_refuses_an_unknown_contract(site: Site, regulator: User) -> None:
    refused(
        "unknown_contract",
        services.review_clear,
        regulator=regulator,
        contract_id="1-0",
        reason="nothing there",
    )


def test_a_review_decision_dispatches_to_the_act(
    site: Site, regulator: User, prosumer: User, consumer: User
) -> None:
    slot = slot_at(site, 4)
    made = trade(site, prosumer, consumer, 1_400, 120, slot)  # f2 imports 1,400 of 1,500 Wh
    assert ReviewItem.objects.get().contract_id == made.id

    clear = services.review_decide(
        regulator=regulator, contract_id=made.id, decision="clear", reason="a real deal"
    )
    assert clear.type == "supervision.review.clear"
    assert commit_sent(site) == ["ok"]
    assert ReviewItem.objects.get().status == "cleared"

    cut = services.review_decide(
        regulator=regulator, contract_id=made.id, decision="curtail", reason="f2", energy_wh=700
    )
    assert (cut.type, cut.payload["energy_wh"]) == ("supervision.contract.curtail", 700)
    assert commit_sent(site) == ["ok"]
    veto = services.review_decide(
        regulator=regulator, contract_id=made.id, decision="veto", reason="on second thought"
    )
    assert veto.type == "supervision.contract.veto"
    assert commit_sent(site) == ["ok"]
    assert (ReviewItem.objects.get().status, ReviewItem.objects.get().decided_by) == (
        "vetoed",
        veto.id,
    )

    for decision, energy in (("approve", None), ("curtail", None)):
        refused(
            "bad_decision" if decision == "approve" else "bad_energy",
            services.review_decide,
            regulator=regulator,
            contract_id=made.id,
            decision=decision,
            reason="r",
            energy_wh=energy,
        )


def test_it_suspends_with_an_end_and_resumes(site: Site, regulator: User) -> None:
    until = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(hours=3)
    tx = services.trading_suspend(
        regulator=regulator, scope="feeder:f1", reason="storm", until=until
    )
    assert tx.payload == {
        "scope": "feeder:f1",
        "reason": "storm",
        "until": ms_of_datetime(until),
    }
    assert commit_sent(site) == ["ok"]
    assert Suspension.objects.get().until == until

    refused(
        "already_suspended",
        services.trading_suspend,
        regulator=regulator,
        scope="feeder:f1",
        reason="again",
    )
    services.trading_resume(regulator=regulator, scope="feeder:f1", reason="repaired")
    assert commit_sent(site) == ["ok"]
    assert not Suspension.objects.exists()
    refused(
        "not_suspended",
        services.trading_resume,
        regulator=regulator,
        scope="feeder:f1",
        reason="again",
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"scope": "feeder:f9", "reason": "r"}, "unknown_feeder"),
        ({"scope": "everything", "reason": "r"}, "bad_scope"),
        (
            {"scope": "market", "reason": "r", "until": datetime(2020, 1, 1, tzinfo=UTC)},
            "bad_until",
        ),
        ({"scope": "market", "reason": "r", "until": datetime(2099, 1, 1)}, "bad_until"),  # noqa: DTZ001
    ],
)
def test_it_refuses_a_bad_suspension(
    site: Site, regulator: User, kwargs: dict[str, Any], code: str
) -> None:
    refused(code, services.trading_suspend, regulator=regulator, **kwargs)


def test_it_restricts_and_reinstates_a_household(
    site: Site, regulator: User, outsider: User
) -> None:
    tx = services.account_restrict(regulator=regulator, address=address(outsider), reason="fraud")
    assert tx.payload == {"address": address(outsider), "reason": "fraud"}
    assert commit_sent(site) == ["ok"]
    assert Restriction.objects.get().address == address(outsider)
    refused(
        "already_restricted",
        services.account_restrict,
        regulator=regulator,
        address=address(outsider),
        reason="again",
    )
    services.account_reinstate(regulator=regulator, address=address(outsider), reason="cleared")
    assert commit_sent(site) == ["ok"]
    assert not Restriction.objects.exists()
    assert Notification.objects.filter(address=address(outsider)).count() == 2


def test_it_refuses_to_restrict_what_is_not_a_household_or_reset_no_defaults(
    site: Site, regulator: User, outsider: User
) -> None:
    refused(
        "not_household",
        services.account_restrict,
        regulator=regulator,
        address=OPERATOR.address,
        reason="the grid operator",
    )
    refused(
        "bad_address",
        services.account_restrict,
        regulator=regulator,
        address="nobody",
        reason="r",
    )
    refused(
        "no_defaults",
        services.defaults_reset,
        regulator=regulator,
        address=address(outsider),
        reason="r",
    )


def test_it_resets_a_households_defaults(
    site: Site, regulator: User, prosumer: User, consumer: User
) -> None:
    shortfall(site, prosumer, consumer)
    tx = services.defaults_reset(regulator=regulator, address=address(prosumer), reason="storm")
    assert pending() == [
        {"type": "supervision.defaults.reset", "address": address(prosumer), "reason": "storm"}
    ]
    assert commit_sent(site) == ["ok"]
    assert site.state.get(f"market/defaults/{address(prosumer)}")["unsettled"] == 0
    assert SupervisoryAct.objects.get(tx=tx.id).affected == [address(prosumer)]


# --- the grid operator's -------------------------------------------------------------------------


def test_the_grid_operator_publishes_a_feeder_and_declares_its_state(
    site: Site, grid_operator: User
) -> None:
    tx = services.feeder_publish(
        operator=grid_operator, feeder="f3", export_limit_w=4_000, import_limit_w=2_000
    )
    assert (tx.type, tx.sender, tx.payload) == (
        "grid.feeder.publish",
        OPERATOR.address,
        {"feeder": "f3", "export_limit_w": 4_000, "import_limit_w": 2_000},
    )
    services.grid_state_declare(
        operator=grid_operator, scope="grid", state="high_load", reason="heat wave"
    )
    assert commit_sent(site) == ["ok", "ok"]
    f3 = Feeder.objects.get(name="f3")
    assert (f3.export_limit_w, f3.import_limit_w) == (4_000, 2_000)
    assert GridDeclaration.objects.get().state == "high_load"

    refused(
        "no_change",
        services.grid_state_declare,
        operator=grid_operator,
        scope="grid",
        state="high_load",
        reason="still hot",
    )
    refused(
        "bad_state",
        services.grid_state_declare,
        operator=grid_operator,
        scope="grid",
        state="on_fire",
        reason="r",
    )
    refused(
        "bad_limit",
        services.feeder_publish,
        operator=grid_operator,
        feeder="f3",
        export_limit_w=-1,
        import_limit_w=0,
    )
    refused(
        "bad_limit",
        services.feeder_publish,
        operator=grid_operator,
        feeder="f3",
        export_limit_w="5",
        import_limit_w=0,
    )


# --- who may -------------------------------------------------------------------------------------


REGULATOR_ACTS = [
    (services.contract_veto, {"contract_id": "1-0", "reason": "r"}),
    (services.contract_curtail, {"contract_id": "1-0", "energy_wh": 1, "reason": "r"}),
    (services.review_clear, {"contract_id": "1-0", "reason": "r"}),
    (services.review_decide, {"contract_id": "1-0", "decision": "clear", "reason": "r"}),
    (services.trading_suspend, {"scope": "market", "reason": "r"}),
    (services.trading_resume, {"scope": "market", "reason": "r"}),
    (services.account_restrict, {"address": OPERATOR.address, "reason": "r"}),
    (services.account_reinstate, {"address": OPERATOR.address, "reason": "r"}),
    (services.defaults_reset, {"address": OPERATOR.address, "reason": "r"}),
]
GRID_ACTS = [
    (services.feeder_publish, {"feeder": "f1", "export_limit_w": 1, "import_limit_w": 1}),
    (services.grid_state_declare, {"scope": "grid", "state": "unstable", "reason": "r"}),
]


@pytest.mark.parametrize(("service", "kwargs"), REGULATOR_ACTS)
def test_only_a_regulator_sends_a_regulators_act(
    site: Site,
    prosumer: User,
    grid_operator: User,
    admin: User,
    service: Any,
    kwargs: dict[str, Any],
) -> None:
    for user in (prosumer, grid_operator, admin):
        with pytest.raises(PermissionDenied):
            service(regulator=user, **kwargs)
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(("service", "kwargs"), GRID_ACTS)
def test_only_the_grid_operator_sends_a_grid_act(
    site: Site, prosumer: User, regulator: User, admin: User, service: Any, kwargs: dict[str, Any]
) -> None:
    for user in (prosumer, regulator, admin):
        with pytest.raises(PermissionDenied):
            service(operator=user, **kwargs)
    assert not SubmittedTransaction.objects.exists()


# --- notifications -------------------------------------------------------------------------------


def test_a_household_marks_only_its_own_notifications_read(
    site: Site, regulator: User, prosumer: User, consumer: User, upcoming: Contract
) -> None:
    services.contract_veto(regulator=regulator, contract_id=upcoming.id, reason="wash trade")
    assert commit_sent(site) == ["ok"]
    mine = Notification.objects.get(address=address(prosumer))
    theirs = Notification.objects.get(address=address(consumer))

    assert services.notifications_mark_read(user=prosumer, ids=[mine.id, theirs.id]) == 1
    assert Notification.objects.get(pk=mine.pk).read
    assert not Notification.objects.get(pk=theirs.pk).read
    assert services.notifications_mark_read(user=prosumer) == 0  # nothing left unread
    assert services.notifications_mark_read(user=consumer) == 1
    assert Notification.objects.get(pk=theirs.pk).read
    with pytest.raises(PermissionDenied):
        services.notifications_mark_read(user=regulator)
