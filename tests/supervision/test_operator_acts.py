"""The grid operator's acts in the regulators' audit log: every transaction type the registry
lets the grid operator send, committed in a real certified block, appears in the log in plain
words (a meter's relayed readings excepted, by name); and the log's partial read after a cursor
(``?after=<height>``) gives only the acts of the blocks since, so that the console prepends
them instead of reading the whole log again on every act."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from gridplatform.accounts.models import User
from ledger.crypto import Transaction
from ledger.identity import KeyPair
from ledger.models import TransactionRecord
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.registry import build_registry
from market import selectors as market_selectors
from supervision.selectors import OPERATOR_RELAYS
from supervision.templatetags.supervision_format import when
from tests.flexibility.support import (
    ADA,
    ADA_METER,
    BATTERY,
    BEN,
    History,
    commit,
    network,
)
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site

pytestmark = pytest.mark.django_db
ROWS = "/console/regulator/audit/rows/"
ACT_ROW = re.compile(r'<tr data-act="([0-9a-f]{64})" data-type="([a-z.]+)">')


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    """Feeders north and south; Ada and Ben on north with credits; Ada's meter, Ben's battery;
    Ada enrolled for flexibility with a baseline (a settled slot of her readings); the operator
    holds credits for a requirement's budget."""
    site = network(settings, tmp_path)
    history = History(site)
    history.publish("north", "south")
    history.households(ADA, BEN)
    history.commit([history.sign(OPERATOR, "credit.issue", to=OPERATOR.address, amount=10_000)])
    history.meter(ADA, ADA_METER, "ada-main")
    history.meter(BEN, BATTERY, "ben-battery", kind="battery")
    history.commit([history.sign(ADA, "market.flexibility.enroll")])
    history.settle(history.first_slot(), {"ada-main": (ADA_METER, 1_000, 0)})
    return site


def watcher(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(response: Any) -> list[tuple[str, str]]:
    """(transaction, type) of each row of an audit-log partial, top first."""
    return ACT_ROW.findall(response.content.decode())


def words(response: Any) -> str:
    markup = response.content.decode()
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def open_slot() -> int:
    return ms_of_datetime(market_selectors.slot_list()[2].start)


def _sign(site: Site, type_: str, **payload: Any) -> Transaction:
    return site.sign(OPERATOR, type_, **payload)


def _tariff(site: Site) -> Transaction:
    bands = [
        {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 5},
        {"from_minute": 420, "retail": 35, "feed_in": 9, "network_fee": 6},
    ]
    return _sign(site, "market.tariff.publish", from_slot=open_slot(), bands=bands)


def _requirement(site: Site) -> Transaction:
    return _sign(
        site,
        "market.requirement.post",
        slot=open_slot(),
        feeder="north",
        direction="import",
        energy_wh=2_000,
        price=50,
    )


def _accept(site: Site) -> Transaction:
    """A requirement of the operator's, committed; Ada answers it (committed); the operator
    accepts 1 kWh of her answer."""
    requirement = _requirement(site)
    commit(site, [requirement])
    answer = site.sign(ADA, "market.requirement.answer", requirement=requirement.id, **_ANSWER)
    commit(site, [answer])
    return _sign(site, "market.requirement.accept", answer=answer.id, energy_wh=1_000)


_ANSWER = {"energy_wh": 1_500, "price": 40}


def _committed(type_: str) -> list[Any]:
    return list(TransactionRecord.objects.filter(type=type_).order_by("block_id", "position"))


# How to commit one of each type the grid operator may send, on the fixture's network: a new
# type the registry gives the grid operator fails the test below until it has an example here
# and a row in the audit log (or is named in supervision.selectors.OPERATOR_RELAYS).
EXAMPLES: dict[str, Callable[[Site], Transaction]] = {
    "account.register": lambda site: _sign(
        site,
        "account.register",
        address=_NEWCOMER.address,
        public_key=_NEWCOMER.public_key_hex,
        role="household",
    ),
    "credit.issue": lambda site: _sign(site, "credit.issue", to=BEN.address, amount=2_500),
    "grid.feeder.assign": lambda site: _sign(
        site, "grid.feeder.assign", address=BEN.address, feeder="south"
    ),
    "grid.feeder.publish": lambda site: _sign(
        site, "grid.feeder.publish", feeder="west", export_limit_w=60_000, import_limit_w=40_000
    ),
    "grid.state.declare": lambda site: _sign(
        site, "grid.state.declare", scope="feeder:south", state="high_load", reason="a hot day"
    ),
    "meter.register": lambda site: _sign(
        site,
        "meter.register",
        meter="ben-main",
        owner=BEN.address,
        kind="bidirectional",
        public_key=_BEN_DEVICE.public_key_hex,
        feeder="north",
        interval_s=300,
    ),
    "market.tariff.publish": _tariff,
    "market.requirement.post": _requirement,
    "market.requirement.accept": _accept,
    "market.storage.register": lambda site: _sign(
        site,
        "market.storage.register",
        address=BEN.address,
        meter="ben-battery",
        capacity_wh=10_000,
        soc_wh=4_500,
    ),
}


def _key(n: int) -> KeyPair:
    return KeyPair(private_key=bytes(range(n, n + 32)))


_NEWCOMER, _BEN_DEVICE = _key(190), _key(191)


def operator_types() -> set[str]:
    """The types the registry gives the grid operator's role by name (types open to every role,
    ``*``: key rotation, clearing and settling a slot, are anyone's housekeeping)."""
    registry = build_registry(django_settings.LEDGER_APPLICATIONS)
    return {name for name, kind in registry.types.items() if "grid_operator" in kind.senders}


def test_every_type_the_grid_operator_sends_is_in_the_audit_log_once_committed(
    site: Site, regulator: User
) -> None:
    sent = operator_types() - set(OPERATOR_RELAYS)
    assert sent == set(EXAMPLES), "each operator type needs an example and an audit-log row"
    committed = {}
    for type_ in sorted(sent):
        tx = EXAMPLES[type_](site)
        commit(site, [tx])
        committed[tx.id] = type_
    shown = dict(rows(watcher(regulator).get(ROWS)))
    assert {tx: shown.get(tx) for tx in committed} == committed
    # The relayed readings committed in the fixture's history are not in it.
    relayed = {record.tx_id for record in _committed("meter.readings")}
    assert relayed
    assert not relayed & set(shown)


def test_the_operators_new_acts_read_in_plain_words(site: Site, regulator: User) -> None:
    slot = open_slot()
    for type_ in (
        "market.tariff.publish",
        "market.requirement.accept",  # posts its requirement first
        "market.storage.register",
        "meter.register",
    ):
        commit(site, [EXAMPLES[type_](site)])
    response = watcher(regulator).get(ROWS)
    assert [type_ for _, type_ in rows(response)[:5]] == [
        "meter.register",
        "market.storage.register",
        "market.requirement.accept",
        "market.requirement.post",
        "market.tariff.publish",
    ]
    text = words(response)
    start = when(datetime_of_ms(slot))
    assert (
        f"Published the electricity tariff in force from {start}: from 00:00 UTC, retail "
        "€0.30/kWh, feed-in €0.08/kWh, network fee €0.05/kWh; from 07:00 UTC, retail €0.35/kWh, "
        "feed-in €0.09/kWh, network fee €0.06/kWh"
    ) in text
    assert (
        "Asked for flexibility: import on feeder north reduced by up to 2 kWh in the slot of "
        f"{start}, paying up to €0.50/kWh"
    ) in text
    assert (
        f"Accepted 1 kWh of household {ADA.address}'s answer at €0.40/kWh: a flexibility contract"
    ) in text
    assert (
        f"Registered the store of household {BEN.address} (meter ben-battery): 10 kWh capacity, "
        "4.5 kWh charged"
    ) in text
    assert f"Registered meter ben-main (bidirectional) of household {BEN.address} on north" in text
    assert "<td>Grid operator</td>" in response.content.decode()


def test_the_log_after_a_cursor_holds_only_the_acts_committed_since(
    site: Site, regulator: User
) -> None:
    client = watcher(regulator)
    whole = client.get(ROWS)
    through = int(whole["X-Audit-Through"])
    assert through == site.blocks[-1].height
    assert len(rows(whole)) > 2

    nothing = client.get(ROWS, {"after": through})
    assert nothing.status_code == 200
    assert nothing.content.decode().strip() == ""  # no "No act yet." row to prepend
    assert nothing["X-Audit-Through"] == str(through)

    assign = EXAMPLES["grid.feeder.assign"](site)
    commit(site, [assign, EXAMPLES["credit.issue"](site)])
    declared = EXAMPLES["grid.state.declare"](site)
    commit(site, [declared])
    since = client.get(ROWS, {"after": through})
    assert [type_ for _, type_ in rows(since)] == [
        "grid.state.declare",
        "credit.issue",
        "grid.feeder.assign",
    ]
    assert since["X-Audit-Through"] == str(site.blocks[-1].height)
    assert f"Topped up household {BEN.address} with €25.00" in words(since)
    # From the newer cursor: only the declaration's block.
    last = client.get(ROWS, {"after": site.blocks[-2].height})
    assert [tx for tx, _ in rows(last)] == [declared.id]
    # The whole log has them on top, in the same order.
    assert rows(client.get(ROWS))[:3] == rows(since)


@pytest.mark.parametrize("after", ["", "x", "1.5", "--1", "1" * 30, "١٢"])
def test_a_cursor_that_is_not_a_height_is_refused_in_words(
    site: Site, regulator: User, after: str
) -> None:
    response = watcher(regulator).get(ROWS, {"after": after})
    assert response.status_code == 400
    assert response.content.decode() == "after must be a block height (a whole number)."


def test_only_those_who_watch_the_market_from_the_regulator_console_read_it(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    assert watcher(prosumer).get(ROWS, {"after": 0}).status_code == 403
    assert watcher(grid_operator).get(ROWS).status_code == 403
    assert watcher(grid_operator).post(ROWS).status_code in (403, 405)
