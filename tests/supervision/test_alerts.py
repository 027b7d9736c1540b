"""The consoles' alert inboxes: alerts grouped per kind and subject, acknowledged per desk, and
re-opened when they get worse or come back; on real projected chains (``tests.supervision``'s
supervised network: the seller on f1, the buyer and the outsider on f2).

Acknowledging is the site's own record: no test here may find a transaction signed or sent.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from supervision import selectors, services
from supervision.errors import MESSAGES
from supervision.models import AlertAcknowledgement
from supervision.selectors import OPERATOR_DESK, REGULATOR_DESK, Alert
from tests.ledger.chains import REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import SLOT_MS, address, commit, slot_at, trade

pytestmark = pytest.mark.django_db
ACKNOWLEDGE = "/supervision/alerts/acknowledge/"


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def only(user: User, kind: str, *, now: datetime | None = None) -> Alert:
    [alert] = [a for a in selectors.alerts(user=user, now=now) if a.kind == kind]
    return alert


def keys(user: User, desk: str, *, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """The keys of ``desk``'s open alerts and of its acknowledged ones."""
    inbox = selectors.alert_inbox(user=user, desk=desk, now=now)
    return [i.alert.key for i in inbox.open], [i.alert.key for i in inbox.acknowledged]


def veto(site: Site, contract_id: str) -> None:
    commit(
        site, [site.sign(REGULATOR, "supervision.contract.veto", contract=contract_id, reason="r")]
    )


@pytest.fixture
def three_slots(site: Site, prosumer: User, consumer: User) -> list[int]:
    """The seller alone sells 1,000 Wh to the buyer in each of three slots to come: 100 % of
    each slot's volume (the threshold is 50 %); no feeder reaches 80 %."""
    slots = [slot_at(site, ahead) for ahead in (4, 5, 6)]
    for slot in slots:
        trade(site, prosumer, consumer, 1_000, 100, slot)
    return slots


# --- grouping ------------------------------------------------------------------------------------


def test_it_gives_a_seller_above_the_threshold_in_three_slots_one_alert_naming_three_slots(
    three_slots: list[int], regulator: User, prosumer: User
) -> None:
    [alert] = selectors.alerts(user=regulator)
    assert alert == Alert(
        kind="seller_share",
        key=f"seller_share:{address(prosumer)}",
        text="Ada Seller sells more than 50 % of the volume in 3 upcoming slots, at most 100 % "
        "(1,000 of 1,000 Wh)",
        slot=datetime_of_ms(three_slots[0]),
        feeder="",
        fingerprint="3:10",
        slots=3,
        last_slot=datetime_of_ms(three_slots[2]),
        level=10,
    )
    html = client_for(regulator).get("/console/regulator/alerts/").content.decode()
    assert html.count('data-alert="seller_share"') == 1
    assert "in 3 upcoming slots" in html


def test_it_gives_a_feeder_one_alert_per_direction_with_its_busiest_slot(
    site: Site, prosumer: User, consumer: User, outsider: User, grid_operator: User
) -> None:
    first, second = slot_at(site, 4), slot_at(site, 5)
    trade(site, prosumer, consumer, 1_250, 100, first)  # f2 imports 83 % of its 1,500 Wh
    busiest = trade(site, prosumer, outsider, 1_400, 100, second)  # 93 %
    alert = only(grid_operator, "feeder_load")
    assert (alert.key, alert.feeder, alert.slot, alert.last_slot, alert.fingerprint) == (
        "feeder_load:f2:import",
        "f2",
        datetime_of_ms(first),
        datetime_of_ms(second),
        "2:9",
    )
    assert alert.text == (
        "Feeder f2: import at 80 % of its capacity or more in 2 upcoming slots, at most 93 % "
        "(1,400 of 1,500 Wh)"
    )
    assert only(grid_operator, "seller_share").slots == 2
    # Down to one slot, it reads as a single slot's alert did.
    veto(site, busiest.id)
    alert = only(grid_operator, "feeder_load")
    assert (alert.slots, alert.fingerprint) == (1, "1:8")
    assert alert.text == "Feeder f2: import at 83 % of its capacity (1,250 of 1,500 Wh)"


# --- acknowledging -------------------------------------------------------------------------------


def test_acknowledging_moves_the_alert_to_the_desks_acknowledged_list_only(
    three_slots: list[int], grid_operator: User, regulator: User, prosumer: User
) -> None:
    key = f"seller_share:{address(prosumer)}"
    assert keys(grid_operator, OPERATOR_DESK) == ([key], [])
    made = services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    row = AlertAcknowledgement.objects.get()
    assert (row.pk, row.desk, row.key, row.fingerprint, row.slots, row.level, row.by) == (
        made.pk,
        "operator",
        key,
        "3:10",
        3,
        10,
        grid_operator,
    )
    assert row.last_slot == datetime_of_ms(three_slots[2])
    assert keys(grid_operator, OPERATOR_DESK) == ([], [key])
    # The regulators' desk has its own inbox.
    assert keys(regulator, REGULATOR_DESK) == ([key], [])
    assert selectors.open_alert_count(user=grid_operator, desk=OPERATOR_DESK) == 0
    assert selectors.open_alert_count(user=regulator, desk=REGULATOR_DESK) == 1
    assert not SubmittedTransaction.objects.exists()


def test_an_alert_that_gets_worse_reopens_and_one_that_shrinks_stays_acknowledged(
    site: Site,
    three_slots: list[int],
    grid_operator: User,
    prosumer: User,
    consumer: User,
) -> None:
    key = f"seller_share:{address(prosumer)}"
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    # A fourth slot: worse, a new fingerprint, open again.
    fourth = trade(site, prosumer, consumer, 1_000, 100, slot_at(site, 7))
    assert only(grid_operator, "seller_share").fingerprint == "4:10"
    assert keys(grid_operator, OPERATOR_DESK) == ([key], [])
    # Acknowledged again, then smaller (one slot vetoed): still acknowledged.
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    veto(site, fourth.id)
    assert only(grid_operator, "seller_share").fingerprint == "3:10"
    assert keys(grid_operator, OPERATOR_DESK) == ([], [key])
    assert AlertAcknowledgement.objects.count() == 2  # append-only: both are kept


def test_a_higher_peak_reopens_an_alert(
    site: Site, prosumer: User, consumer: User, outsider: User, grid_operator: User
) -> None:
    slot = slot_at(site, 4)
    trade(site, prosumer, consumer, 300, 100, slot)
    trade(site, outsider, consumer, 200, 100, slot)  # the seller: 60 % of the slot
    key = f"seller_share:{address(prosumer)}"
    assert only(grid_operator, "seller_share").fingerprint == "1:6"
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    trade(site, prosumer, consumer, 700, 100, slot)  # now 1,000 of 1,200 Wh: 83 %
    alert = only(grid_operator, "seller_share")
    assert (alert.slots, alert.fingerprint) == (1, "1:8")
    # Open again, beside the feeder f2 now imports 80 % of its capacity.
    assert keys(grid_operator, OPERATOR_DESK) == (["feeder_load:f2:import", key], [])


def test_an_alert_reopens_once_every_slot_acknowledged_has_ended(
    site: Site, prosumer: User, consumer: User, grid_operator: User
) -> None:
    early, later, last = slot_at(site, 4), slot_at(site, 5), slot_at(site, 8)
    trade(site, prosumer, consumer, 1_000, 100, early)
    trade(site, prosumer, consumer, 1_000, 100, later)
    key = f"seller_share:{address(prosumer)}"
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    trade(site, prosumer, consumer, 1_000, 100, last)
    assert keys(grid_operator, OPERATOR_DESK) == ([key], [])  # three slots: worse
    # Once the earliest slot has ended it is in two slots again, one of them acknowledged.
    after_early = datetime_of_ms(early + SLOT_MS + 1)
    assert only(grid_operator, "seller_share", now=after_early).slots == 2
    assert keys(grid_operator, OPERATOR_DESK, now=after_early) == ([], [key])
    # Every slot acknowledged has ended; the seller still dominates a slot nobody saw: news
    # (as is an alert that cleared and came back later).
    after_later = datetime_of_ms(later + SLOT_MS + 1)
    assert only(grid_operator, "seller_share", now=after_later).slots == 1
    assert keys(grid_operator, OPERATOR_DESK, now=after_later) == ([key], [])


def test_a_suspension_resumed_and_imposed_again_is_a_new_alert(
    site: Site, grid_operator: User
) -> None:
    suspend = {"scope": "market", "reason": "audit", "until": 0}
    commit(site, [site.sign(REGULATOR, "supervision.trading.suspend", **suspend)])
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key="suspension:market")
    assert keys(grid_operator, OPERATOR_DESK) == ([], ["suspension:market"])
    resume = {"scope": "market", "reason": "done"}
    commit(site, [site.sign(REGULATOR, "supervision.trading.resume", **resume)])
    assert keys(grid_operator, OPERATOR_DESK) == ([], [])
    commit(site, [site.sign(REGULATOR, "supervision.trading.suspend", **suspend)])
    assert keys(grid_operator, OPERATOR_DESK) == (["suspension:market"], [])


# --- refusals ------------------------------------------------------------------------------------


def test_it_refuses_an_unknown_key_a_changed_alert_and_a_second_acknowledgement(
    three_slots: list[int], grid_operator: User, prosumer: User
) -> None:
    key = f"seller_share:{address(prosumer)}"
    cases = [
        ({"key": "seller_share:nobody"}, "unknown_alert", 404),
        ({"key": key, "fingerprint": "2:10"}, "alert_changed", 400),
    ]
    for kwargs, code, status in cases:
        with pytest.raises(services.DomainError) as refused:
            services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, **kwargs)
        assert (refused.value.code, refused.value.status_code) == (code, status)
    assert not AlertAcknowledgement.objects.exists()
    services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key, fingerprint="3:10")
    with pytest.raises(services.AlertRefused) as again:
        services.alert_acknowledge(user=grid_operator, desk=OPERATOR_DESK, key=key)
    assert again.value.code == "alert_acknowledged"
    assert AlertAcknowledgement.objects.count() == 1


def test_only_those_at_a_desk_acknowledge_for_it(
    three_slots: list[int],
    prosumer: User,
    grid_operator: User,
    regulator: User,
    admin: User,
) -> None:
    key = f"seller_share:{address(prosumer)}"
    for user, desk in (
        (prosumer, OPERATOR_DESK),
        (prosumer, REGULATOR_DESK),
        (grid_operator, REGULATOR_DESK),
        (regulator, OPERATOR_DESK),
        (grid_operator, "nowhere"),
    ):
        with pytest.raises(PermissionDenied):
            services.alert_acknowledge(user=user, desk=desk, key=key)
    with pytest.raises(PermissionDenied):
        selectors.alert_inbox(user=prosumer, desk=OPERATOR_DESK)
    assert not AlertAcknowledgement.objects.exists()
    # An administrator works at both desks.
    for desk in (OPERATOR_DESK, REGULATOR_DESK):
        services.alert_acknowledge(user=admin, desk=desk, key=key)
    assert sorted(AlertAcknowledgement.objects.values_list("desk", flat=True)) == [
        "operator",
        "regulator",
    ]


# --- the consoles --------------------------------------------------------------------------------


def _open_and_acknowledged(html: str) -> tuple[str, str]:
    """The console's open list and its acknowledged one."""
    open_list, _, acknowledged = html.partition('data-testid="acknowledged-alerts"')
    return open_list, acknowledged


def test_the_operator_acknowledges_an_alert_on_the_console_and_it_moves(
    three_slots: list[int], grid_operator: User, regulator: User, prosumer: User
) -> None:
    client = client_for(grid_operator)
    key = f"seller_share:{address(prosumer)}"
    html = client.get("/console/operator/").content.decode()
    assert re.search(r'<dd data-testid="summary-alerts">1</dd>', html)
    open_list, acknowledged = _open_and_acknowledged(html)
    assert f'data-alert-key="{key}"' in open_list
    assert f'<input type="hidden" name="key" value="{key}">' in open_list
    assert '<input type="hidden" name="fingerprint" value="3:10">' in open_list
    assert "<summary>Acknowledged (0)</summary>" in acknowledged

    data = {"desk": "operator", "key": key, "fingerprint": "3:10"}
    response = client.post(ACKNOWLEDGE, data, follow=True)
    assert response.redirect_chain == [("/console/operator/#grid-alerts-heading", 302)]
    html = response.content.decode()
    assert "Acknowledged: “Ada Seller sells more than 50 % of the volume" in html
    assert re.search(r'<dd data-testid="summary-alerts">0</dd>', html)
    open_list, acknowledged = _open_and_acknowledged(html)
    assert f'data-alert-key="{key}"' not in open_list
    assert "No open alerts." in open_list
    assert "<summary>Acknowledged (1)</summary>" in acknowledged
    assert f'data-alert-key="{key}"' in acknowledged
    assert "acknowledged by Grid Operator" in acknowledged
    # The regulators still see it open.
    html = client_for(regulator).get("/console/regulator/alerts/").content.decode()
    assert f'data-alert-key="{key}"' in _open_and_acknowledged(html)[0]
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"desk": "operator", "key": "seller_share:nobody"}, MESSAGES["unknown_alert"]),
        ({"desk": "operator", "key": ""}, MESSAGES["unknown_alert"]),
        ({"desk": "elsewhere", "key": "x"}, MESSAGES["bad_desk"]),
        ({"desk": "operator", "key": "{key}", "fingerprint": "1:5"}, MESSAGES["alert_changed"]),
    ],
)
def test_bad_input_gives_a_message_on_the_console_and_changes_nothing(
    three_slots: list[int], grid_operator: User, prosumer: User, data: dict[str, str], message: str
) -> None:
    data = {**data, "key": data["key"].replace("{key}", f"seller_share:{address(prosumer)}")}
    response = client_for(grid_operator).post(ACKNOWLEDGE, data, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0][0].startswith("/console/operator/")
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert not AlertAcknowledgement.objects.exists()


def test_a_household_cannot_acknowledge_and_only_a_post_acknowledges(
    three_slots: list[int], prosumer: User, grid_operator: User
) -> None:
    data = {"desk": "operator", "key": f"seller_share:{address(prosumer)}"}
    assert client_for(prosumer).post(ACKNOWLEDGE, data).status_code == 403
    anonymous = client_for(None).post(ACKNOWLEDGE, data)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/?next=")
    assert (
        client_for(grid_operator).post(ACKNOWLEDGE, data | {"desk": "regulator"}).status_code == 403
    )
    assert client_for(grid_operator).get(ACKNOWLEDGE, data).status_code == 405
    assert not AlertAcknowledgement.objects.exists()
