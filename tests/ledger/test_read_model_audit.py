"""The read-model audit on real projected chains: a market with contracts (one settled, one
curtailed), a resting order, an open offer, a restriction, a suspension and declarations; then
rows changed one at a time in the site's database, each named exactly by the audit, the
command, the beat task's record and the grid operator's console."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client

from gridplatform.accounts.models import User
from ledger import read_model_audit, replica, tasks
from ledger.models import (
    BlockRecord,
    LedgerAccount,
    ProjectionCursor,
    ReadModelAudit,
    StateEntry,
)
from ledger.projection import ms_of_datetime
from ledger.read_model_audit import Difference
from ledger.state import State
from market.chain import schema as market_schema
from market.models import (
    Contract,
    MarketAccount,
    Offer,
    Order,
    SettlementLine,
    SlotSettlement,
)
from supervision.models import (
    Feeder,
    FeederLoad,
    GridDeclaration,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)
from tests.ledger.chains import OPERATOR, REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import (
    address,
    commit,
    keys,
    order,
    shortfall,
    slot_at,
    supervised_site,
    trade,
)

pytestmark = pytest.mark.django_db
CONSOLE = "/console/operator/"
ALERTS = "/console/operator/alerts/"


@dataclass
class History:
    """What the chain holds, and the site's rows of it."""

    site: Site
    settled: Contract  # the outsider's shortfall to the consumer, settled
    curtailed: Contract  # the prosumer's sale to the consumer, cut by a regulator
    resting: Order  # the prosumer's open sell order
    offer: Offer  # the prosumer's open offer to anyone
    restricted: str  # the outsider's address

    @property
    def height(self) -> int:
        return self.site.blocks[-1].height


@pytest.fixture
def history(
    settings: Any,
    tmp_path: Path,
    grid_operator: User,
    regulator: User,
    prosumer: User,
    consumer: User,
    outsider: User,
) -> History:
    site = supervised_site(
        settings,
        tmp_path,
        grid_operator=grid_operator,
        regulator=regulator,
        households={prosumer: "f1", consumer: "f2", outsider: "f2"},
    )
    settled = shortfall(site, outsider, consumer)
    slot = slot_at(site, 4)
    curtailed = trade(site, prosumer, consumer, 500, 100, slot)
    placed = order(site, prosumer, "sell", 300, 150, slot)
    posted = site.sign(
        keys(prosumer), "market.offer.post", slot=slot, energy_wh=400, price=120, buyer=""
    )
    commit(site, [placed, posted])
    acts = [
        ("supervision.contract.curtail", {"contract": curtailed.id, "energy_wh": 300}),
        ("supervision.account.restrict", {"address": address(outsider)}),
        ("supervision.trading.suspend", {"scope": "feeder:f2", "until": 0}),
    ]
    commit(site, [site.sign(REGULATOR, type_, reason="why", **p) for type_, p in acts])
    commit(
        site,
        [
            site.sign(
                OPERATOR, "grid.state.declare", scope="feeder:f1", state="high_load", reason="heat"
            ),
            site.sign(OPERATOR, "grid.state.declare", scope="grid", state="unstable", reason="x"),
        ],
    )
    curtailed.refresh_from_db()
    return History(
        site=site,
        settled=settled,
        curtailed=curtailed,
        resting=Order.objects.get(id=placed.id),
        offer=Offer.objects.get(id=posted.id),
        restricted=address(outsider),
    )


def differences() -> list[Difference]:
    return read_model_audit.read_models_compare().differences


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- a clean site ---------------------------------------------------------------------------------


def test_it_finds_no_difference_between_a_clean_site_and_its_chain(history: History) -> None:
    # Every kind of row is there to compare (an audit of empty tables would prove nothing).
    assert (Order.objects.filter(status="open").count(), Order.objects.count()) == (1, 5)
    assert (Offer.objects.filter(status="open").count(), Contract.objects.count()) == (1, 2)
    assert (SlotSettlement.objects.count(), SettlementLine.objects.count()) == (1, 1)
    assert (Restriction.objects.count(), Suspension.objects.count()) == (1, 1)
    assert (Feeder.objects.count(), GridDeclaration.objects.count()) == (2, 1)
    assert FeederLoad.objects.count() == 3
    assert SupervisoryAct.objects.count() == 7
    assert LedgerAccount.objects.count() == 6
    assert StateEntry.objects.count() == len(history.site.state.to_json())
    assert MarketAccount.objects.count() == 3
    assert not ReviewItem.objects.exists()

    report = read_model_audit.read_models_compare()
    assert report.height == history.height
    assert report.differences == []


# --- each changed row, named ----------------------------------------------------------------------


Change = Callable[[History], list[tuple[str, str, str, Any, Any]]]


def balance_raised(history: History) -> list[tuple[str, str, str, Any, Any]]:
    account = LedgerAccount.objects.get(address=history.curtailed.seller)
    chain = account.balance
    account.balance += 50_000
    account.save()
    return [("LedgerAccount", account.address, "balance", chain, chain + 50_000)]


def nonce_and_role_changed(history: History) -> list[tuple[str, str, str, Any, Any]]:
    account = LedgerAccount.objects.get(address=history.restricted)
    nonce = account.nonce
    LedgerAccount.objects.filter(pk=account.pk).update(role="regulator", nonce=nonce + 1)
    return [
        ("LedgerAccount", account.address, "role", "household", "regulator"),
        ("LedgerAccount", account.address, "nonce", nonce, nonce + 1),
    ]


def locked_lowered(history: History) -> list[tuple[str, str, str, Any, Any]]:
    seller = history.curtailed.seller
    chain = market_schema.locked(history.site.state, seller)
    assert chain > 0
    MarketAccount.objects.filter(address=seller).update(locked=0)
    return [("MarketAccount", seller, "locked", chain, 0)]


def feeder_moved(history: History) -> list[tuple[str, str, str, Any, Any]]:
    buyer = history.curtailed.buyer
    MarketAccount.objects.filter(address=buyer).update(feeder="f1")
    return [("MarketAccount", buyer, "feeder", "f2", "f1")]


def order_shown_filled(history: History) -> list[tuple[str, str, str, Any, Any]]:
    resting = history.resting
    Order.objects.filter(id=resting.id).update(status="filled", remaining_wh=0)
    return [
        ("Order", resting.id, "remaining_wh", 300, 0),
        ("Order", resting.id, "status", "open", "filled"),
    ]


def closed_order_shown_open(history: History) -> list[tuple[str, str, str, Any, Any]]:
    sold = history.curtailed.seller_tx  # filled by the trade: its key is gone
    assert Order.objects.get(id=sold).status == "filled"
    Order.objects.filter(id=sold).update(status="open")
    return [("Order", sold, "status", "closed", "open")]


def order_deleted(history: History) -> list[tuple[str, str, str, Any, Any]]:
    bought = history.curtailed.buyer_tx  # history: a contract names it
    Order.objects.filter(id=bought).delete()
    return [("Order", bought, "(row)", "present", "absent")]


def offer_remainder_changed(history: History) -> list[tuple[str, str, str, Any, Any]]:
    Offer.objects.filter(id=history.offer.id).update(remaining_wh=1, locked=1)
    locked = history.offer.locked
    return [
        ("Offer", history.offer.id, "remaining_wh", 400, 1),
        ("Offer", history.offer.id, "locked", locked, 1),
    ]


def contract_repriced(history: History) -> list[tuple[str, str, str, Any, Any]]:
    made = history.curtailed
    Contract.objects.filter(id=made.id).update(energy_wh=500, price=99)
    return [
        ("Contract", made.id, "energy_wh", 300, 500),
        ("Contract", made.id, "price", 100, 99),
    ]


def line_paid_more(history: History) -> list[tuple[str, str, str, Any, Any]]:
    line = SettlementLine.objects.get()
    SettlementLine.objects.filter(pk=line.pk).update(paid=line.paid + 1_234)
    return [("SettlementLine", history.settled.id, "paid", line.paid, line.paid + 1_234)]


def settlement_deleted(history: History) -> list[tuple[str, str, str, Any, Any]]:
    summary = SlotSettlement.objects.get()
    slot_ms = str(ms_of_datetime(summary.slot))
    SettlementLine.objects.all().delete()
    summary.delete()
    return [
        ("SlotSettlement", slot_ms, "(row)", "present", "absent"),
        ("SettlementLine", history.settled.id, "(row)", "present", "absent"),
    ]


def restriction_deleted(history: History) -> list[tuple[str, str, str, Any, Any]]:
    Restriction.objects.filter(address=history.restricted).delete()
    return [("Restriction", history.restricted, "(row)", "present", "absent")]


def feeder_limit_raised(history: History) -> list[tuple[str, str, str, Any, Any]]:
    Feeder.objects.filter(name="f2").update(export_limit_w=60_000)
    return [("Feeder", "f2", "export_limit_w", 6_000, 60_000)]


def feeder_shown_normal(history: History) -> list[tuple[str, str, str, Any, Any]]:
    feeder = Feeder.objects.get(name="f1")
    since = feeder.state_since
    assert since is not None
    Feeder.objects.filter(name="f1").update(state="normal", state_reason="", state_since=None)
    return [
        ("Feeder", "f1", "state", "high_load", "normal"),
        ("Feeder", "f1", "state_reason", "heat", ""),
        ("Feeder", "f1", "state_since", since.isoformat(), None),
    ]


def load_lowered(history: History) -> list[tuple[str, str, str, Any, Any]]:
    load = FeederLoad.objects.get(feeder="f1", slot=history.curtailed.slot)
    FeederLoad.objects.filter(pk=load.pk).update(export_wh=0)
    row = f"{ms_of_datetime(load.slot)}/f1"
    return [("FeederLoad", row, "export_wh", 300, 0)]


def stray_suspension(history: History) -> list[tuple[str, str, str, Any, Any]]:
    row = Suspension.objects.get(scope="feeder:f2")
    row.pk = "market"
    row.save(force_insert=True)
    return [("Suspension", "market", "(row)", "absent", "present")]


def stray_account(history: History) -> list[tuple[str, str, str, Any, Any]]:
    stranger = "01" + "ab" * 24
    LedgerAccount.objects.create(address=stranger, public_key="cd" * 32, role="household")
    return [("LedgerAccount", stranger, "(row)", "absent", "present")]


def act_deleted(history: History) -> list[tuple[str, str, str, Any, Any]]:
    curtailment = history.curtailed.acts[-1]["tx"]
    SupervisoryAct.objects.filter(tx=curtailment).delete()
    return [("SupervisoryAct", curtailment, "(row)", "present", "absent")]


def review_left_pending(history: History) -> list[tuple[str, str, str, Any, Any]]:
    made = history.curtailed
    curtailment = made.acts[-1]["tx"]
    ReviewItem.objects.create(contract=made, rules=[], flagged_height=made.height)
    return [
        ("ReviewItem", made.id, "status", "curtailed", "pending"),
        ("ReviewItem", made.id, "decided_by", curtailment, ""),
    ]


@pytest.mark.parametrize(
    "change",
    [
        balance_raised,
        nonce_and_role_changed,
        locked_lowered,
        feeder_moved,
        order_shown_filled,
        closed_order_shown_open,
        order_deleted,
        offer_remainder_changed,
        contract_repriced,
        line_paid_more,
        settlement_deleted,
        restriction_deleted,
        feeder_limit_raised,
        feeder_shown_normal,
        load_lowered,
        stray_suspension,
        stray_account,
        act_deleted,
        review_left_pending,
    ],
)
def test_it_names_each_changed_row(history: History, change: Change) -> None:
    expected = [
        Difference(model=m, row=r, field=f, chain=c, site=s, height=history.height)
        for m, r, f, c, s in change(history)
    ]
    assert differences() == expected


# --- the state rows themselves --------------------------------------------------------------------


def test_with_the_replica_at_hand_it_names_each_changed_state_row(history: History) -> None:
    differences()  # this process keeps the replica now, as the site's worker does
    key = f"bal/{history.curtailed.seller}"
    entry = StateEntry.objects.get(key=key)
    chain = entry.value
    entry.value = chain - 1
    entry.save()
    gone = f"supervision/restricted/{history.restricted}"
    StateEntry.objects.filter(key=gone).delete()
    StateEntry.objects.create(key="bal/" + "01" + "ab" * 24, value=5)
    height = history.height
    # The read models are still compared, with the replica (it is the chain's).
    Restriction.objects.filter(address=history.restricted).update(reason="no reason")
    # The rows in key order, then the keys that have none.
    rows = [
        Difference("StateEntry", key, "value", chain, chain - 1, height),
        Difference("StateEntry", "bal/" + "01" + "ab" * 24, "(row)", "absent", "present", height),
    ]
    assert differences() == [
        *sorted(rows, key=lambda d: d.row),
        Difference("StateEntry", gone, "(row)", "present", "absent", height),
        Difference("Restriction", history.restricted, "reason", "why", "no reason", height),
    ]


@pytest.mark.parametrize("change", ["value", "delete"])
def test_without_the_replica_it_names_state_rows_that_do_not_give_the_certified_root(
    history: History, change: str
) -> None:
    replica.forget()  # a process that starts now: the command
    key = f"bal/{history.curtailed.seller}"
    if change == "value":
        StateEntry.objects.filter(key=key).update(value=1)
    else:
        StateEntry.objects.filter(key=key).delete()
    rows = State(dict(StateEntry.objects.values_list("key", "value"))).root()
    certified = BlockRecord.objects.get(height=history.height).state_root
    assert rows != certified
    # Nothing else can be compared with rows that are not the chain's.
    LedgerAccount.objects.filter(address=history.restricted).update(balance=1)
    assert differences() == [
        Difference("StateEntry", "(all)", "state_root", certified, rows, history.height)
    ]


# --- the command ----------------------------------------------------------------------------------


def test_the_command_prints_each_difference_and_exits_non_zero(history: History) -> None:
    [(_, address_, _, chain, site)] = balance_raised(history)
    restriction_deleted(history)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("audit_read_models", stdout=out)
    assert exit_.value.code == 1
    height = history.height
    assert out.getvalue().splitlines() == [
        f"LedgerAccount {address_} balance: chain {chain}, site {site}, at height {height}",
        f"Restriction {history.restricted} (row): chain present, site absent, at height {height}",
        f"2 difference(s) between the read models and the chain at height {height}",
    ]


def test_the_command_gives_json(history: History) -> None:
    [(_, address_, _, chain, site)] = balance_raised(history)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("audit_read_models", "--json", stdout=out)
    assert exit_.value.code == 1
    assert json.loads(out.getvalue()) == {
        "height": history.height,
        "count": 1,
        "differences": [
            {
                "model": "LedgerAccount",
                "row": address_,
                "field": "balance",
                "chain": chain,
                "site": site,
                "height": history.height,
            }
        ],
    }


def test_the_command_exits_zero_when_the_read_models_agree(history: History) -> None:
    out = io.StringIO()
    call_command("audit_read_models", stdout=out)
    assert out.getvalue() == f"the read models agree with the chain at height {history.height}\n"
    out = io.StringIO()
    call_command("audit_read_models", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"height": history.height, "count": 0, "differences": []}


def test_the_command_says_when_nothing_is_projected_yet() -> None:
    assert not ProjectionCursor.objects.exists()
    out = io.StringIO()
    call_command("audit_read_models", stdout=out)
    assert out.getvalue() == "No block is projected yet: nothing to audit.\n"


# --- the beat task --------------------------------------------------------------------------------


def test_it_is_scheduled_every_few_minutes() -> None:
    assert django_settings.LEDGER_AUDIT_EVERY_S == 300
    assert django_settings.CELERY_BEAT_SCHEDULE["ledger-read-models-audit"] == {
        "task": "ledger.read_models_audit",
        "schedule": timedelta(seconds=300),
        "options": {"expires": 300},
    }


def test_the_beat_task_records_each_run_and_logs_differences_at_error(
    history: History, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ledger.read_model_audit"):
        tasks.read_models_audit.apply()
    clean = ReadModelAudit.objects.get()
    assert (clean.height, clean.difference_count, clean.differences) == (history.height, 0, [])
    assert [r for r in caplog.records if r.name == "ledger.read_model_audit"] == []

    [(_, address_, _, chain, site)] = balance_raised(history)
    with caplog.at_level(logging.INFO, logger="ledger.read_model_audit"):
        tasks.read_models_audit.apply()
    assert ReadModelAudit.objects.count() == 2  # append-only: the clean run stays
    latest = ReadModelAudit.objects.first()
    assert latest is not None
    assert latest.pk != clean.pk
    found = {
        "model": "LedgerAccount",
        "row": address_,
        "field": "balance",
        "chain": chain,
        "site": site,
        "height": history.height,
    }
    assert (latest.height, latest.difference_count, latest.differences) == (
        history.height,
        1,
        [found],
    )
    [record] = [r for r in caplog.records if r.name == "ledger.read_model_audit"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"read-model audit at height {history.height}: 1 difference(s) between the read models "
        f"and the chain:\nLedgerAccount {address_} balance: chain {chain}, site {site}, at "
        f"height {history.height}"
    )


def test_the_beat_task_records_nothing_before_the_first_block() -> None:
    tasks.read_models_audit.apply()
    assert not ReadModelAudit.objects.exists()


# --- the grid operator's console ------------------------------------------------------------------


def test_the_operator_console_shows_the_latest_audits_differences(
    history: History, grid_operator: User
) -> None:
    client = client_for(grid_operator)
    read_model_audit.read_models_audit()  # clean
    assert 'data-alert="read_models"' not in client.get(CONSOLE).content.decode()

    [(_, address_, _, chain, site)] = balance_raised(history)
    read_model_audit.read_models_audit()
    for page in (client.get(CONSOLE), client.get(ALERTS)):
        assert page.status_code == 200
        html = page.content.decode()
        assert (
            f"the site's read models differ from the chain: 1 difference at height {history.height}"
        ) in html
        assert (
            f'<tr data-difference="LedgerAccount {address_} balance">\n'
            f"          <td>LedgerAccount</td>\n"
            f"          <td><code>{address_}</code></td>\n"
            f"          <td>balance</td>\n"
            f"          <td><code>{chain}</code></td>\n"
            f"          <td><code>{site}</code></td>\n"
            f'          <td class="num">{history.height}</td>\n'
        ) in html
        assert 'data-testid="more-differences"' not in html
        assert "No alerts." not in html  # the grid's alerts are there too
    assert 'hx-get="/console/operator/alerts/"' in client.get(CONSOLE).content.decode()

    # Rebuilt or mended: the next run is clean and the alert goes.
    LedgerAccount.objects.filter(address=address_).update(balance=chain)
    read_model_audit.read_models_audit()
    assert 'data-alert="read_models"' not in client.get(ALERTS).content.decode()


def test_the_console_lists_the_first_twenty_and_counts_the_rest(
    history: History, grid_operator: User
) -> None:
    for account in LedgerAccount.objects.all():
        account.balance += 1
        account.save()
    Restriction.objects.all().delete()
    Suspension.objects.all().delete()
    Feeder.objects.update(export_limit_w=1, import_limit_w=1)
    FeederLoad.objects.update(export_wh=7, import_wh=7)
    Order.objects.update(owner="x")
    recorded = read_model_audit.read_models_audit()
    # Each account's balance (6), each order's owner (the open one and the 2 the unsettled
    # contract names: the settled contract left the state with its slot, and its settlement
    # events do not name orders), both limits of both feeders, both loads of the 3 feeder-slot
    # rows, the suspension, the restriction.
    assert recorded is not None
    assert recorded.difference_count == 6 + 3 + 4 + 6 + 1 + 1
    html = client_for(grid_operator).get(ALERTS).content.decode()
    assert html.count("<tr data-difference=") == 20
    assert "What differs (the first 20)" in html
    assert (
        '<p data-testid="more-differences">And 1 more: <code>manage.py audit_read_models</code> '
        "lists them all.</p>"
    ) in html


def test_only_the_grid_operator_and_admins_see_the_audit(
    history: History, prosumer: User, regulator: User, grid_operator: User
) -> None:
    balance_raised(history)
    read_model_audit.read_models_audit()
    for user in (prosumer, regulator):
        with pytest.raises(PermissionDenied):
            read_model_audit.audit_alert(user=user)
    assert client_for(regulator).get(ALERTS).status_code == 403
    alert = read_model_audit.audit_alert(user=grid_operator)
    assert alert is not None
    assert (alert.audit.difference_count, alert.more, len(alert.shown)) == (1, 0, 1)
    assert 'data-alert="read_models"' not in (
        client_for(regulator).get("/console/regulator/alerts/").content.decode()
    )
