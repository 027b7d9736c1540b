"""Supervision's read models (``supervision.models``), projected block by block from the chain.

A ``ledger.projection.ReadModel`` named in ``settings.LEDGER_READ_MODELS`` after
``market.projection``: the market's projection has written the block's ``Contract`` rows (in
the same database transaction, from ``market.contract_made``) before this one runs, and review
items and the acts on contracts point at them.

What happened comes from the block's events (``supervision.chain.schema``, Events), never from
which keys disappeared: a settled slot's contracts and loads leave the state, a resumed
suspension or a declaration of normal leave nothing at all.

* ``grid.topology_published`` and ``grid.state_declared`` -> ``Feeder`` and
  ``GridDeclaration``; ``supervision.*_suspended`` / ``*_resumed`` -> ``Suspension``;
  ``supervision.account_restricted`` / ``_reinstated`` -> ``Restriction``;
  ``grid.feeder_assigned`` -> ``MarketAccount.feeder`` (with ``"carrier": "heat"``:
  ``.heat_segment``); a published segment of the heating network is a ``Feeder`` row with
  ``carrier`` heat. (The orders and offers a restriction
  cancelled are closed by the market's projection, from the market's own events.)
* ``supervision.contract_vetoed`` / ``_curtailed`` / ``_cleared`` -> the market's ``Contract``
  row (its ``energy_wh``, ``escrow``, ``deposit``, ``vetoed`` and ``acts``: supervision's to
  write, as the acts are supervision's) and the contract's ``ReviewItem`` (vetoed, curtailed,
  cleared).
* Every act's event -> one ``SupervisoryAct``, the audit log, naming the households it touched;
  the households touched by a veto, a curtailment, a restriction, a reinstatement or a reset of
  defaults get a ``Notification`` that says who did what and why.
* ``FeederLoad``: the live load of a slot and feeder from ``grid/load/<slot>/<feeder>`` after the
  block (a key that comes back to nothing, after a veto, removes the row); when the slot settles
  the key leaves the state and ``grid.loads_settled`` keeps the row with the slot's last load.
* A contract made in the block (``market.contract_made``) is checked against the review rules
  (``supervision.review``, thresholds from ``settings.SUPERVISION_REVIEW``, the state after the
  block); one that trips any gets a ``ReviewItem``.

A rebuild (``clear`` then every block again) gives the same rows, except that notifications are
kept (``get_or_create`` on the household and the act), so that whether one was read survives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from ledger.blocks import Block
from ledger.crypto import Transaction
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.chain import schema as market_schema
from market.chain.flexibility import FLEXIBILITY
from market.chain.options import HEAT
from market.forms import energy_text, price_text
from market.models import Contract, MarketAccount
from supervision import chain, review
from supervision.chain import schema
from supervision.chain.schema import carrier_of_feeder
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

LOAD = schema.LOAD_PREFIX
# The audit log's ``type``s (transaction types) of the acts on a contract and on an account.
CONTRACT_ACTS = (chain.VETO, chain.CURTAIL, chain.CLEAR)
ACCOUNT_ACTS = (chain.RESTRICT, chain.REINSTATE, chain.DEFAULTS_RESET)
CONTRACT_EVENTS = (schema.CONTRACT_VETOED, schema.CONTRACT_CURTAILED, schema.CONTRACT_CLEARED)
ACCOUNT_EVENTS = (schema.ACCOUNT_RESTRICTED, schema.ACCOUNT_REINSTATED, schema.DEFAULTS_RESET)
SUSPENDED = (schema.MARKET_SUSPENDED, schema.FEEDER_SUSPENDED)
RESUMED = (schema.MARKET_RESUMED, schema.FEEDER_RESUMED)
# The events that are acts of the audit log: one per successful supervisory transaction.
ACT_EVENTS = (
    schema.TOPOLOGY_PUBLISHED,
    schema.STATE_DECLARED,
    *CONTRACT_EVENTS,
    *SUSPENDED,
    *RESUMED,
    *ACCOUNT_EVENTS,
)
NOTIFIED = (
    schema.CONTRACT_VETOED,
    schema.CONTRACT_CURTAILED,
    schema.ACCOUNT_RESTRICTED,
    schema.ACCOUNT_REINSTATED,
    schema.DEFAULTS_RESET,
)
# What a contract's last act (its ``act``) makes of its review item.
REVIEW_STATUS = {"veto": "vetoed", "curtail": "curtailed", "clear": "cleared"}

DEFAULT_REVIEW = {
    "max_energy_wh": 5_000,
    "price_deviation_bps": 3_000,
    "feeder_load_bps": 8_000,
    "seller_share_bps": 5_000,
}


def review_limits() -> dict[str, int]:
    """The review thresholds: ``settings.SUPERVISION_REVIEW`` over the defaults."""
    return DEFAULT_REVIEW | getattr(settings, "SUPERVISION_REVIEW", {})


def clear() -> None:
    """Forget every row the chain gives back; notifications stay (their read flags are site
    data)."""
    for model in (
        ReviewItem,
        SupervisoryAct,
        Restriction,
        Suspension,
        FeederLoad,
        GridDeclaration,
        Feeder,
    ):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    events = block.events
    _review([e["data"] for e in events if e["type"] == market_schema.CONTRACT_MADE], block, state)
    for event in events:
        type_, data = event["type"], event["data"]
        handler = _HANDLERS.get(type_)
        if handler is not None:
            handler(data)
        if type_ in ACT_EVENTS:
            act = _act(block.transactions[event["tx"]], type_, data, state)
            if type_ in NOTIFIED:
                _notify(act, data)
    _loads(changes, [e["data"] for e in events if e["type"] == schema.LOADS_SETTLED])


# --- the current picture, as the events change it -------------------------------------------------


def _signed(value: dict[str, Any]) -> dict[str, Any]:
    """What every act's record says: why, by whom, in which transaction and block, since when."""
    return {
        "reason": value["reason"],
        "by": value["by"],
        "tx": value["tx"],
        "height": value["height"],
        "since": datetime_of_ms(value["timestamp_ms"]),
    }


def _feeder_assigned(data: dict[str, Any]) -> None:
    """A household's feeder, or (the event's ``carrier`` heat) its heating network's segment."""
    field = "heat_segment" if data.get("carrier") == HEAT else "feeder"
    account, _ = MarketAccount.objects.get_or_create(address=data["address"])
    setattr(account, field, data["feeder"])
    account.save(update_fields=[field])


def _topology_published(data: dict[str, Any]) -> None:
    # A new publication changes the limits; the feeder's declared state stays.
    Feeder.objects.update_or_create(
        name=data["feeder"],
        defaults={
            "carrier": carrier_of_feeder(data),
            "export_limit_w": data["export_limit_w"],
            "import_limit_w": data["import_limit_w"],
            "published_height": data["height"],
            "published_at": datetime_of_ms(data["timestamp_ms"]),
        },
    )


def _state_declared(data: dict[str, Any]) -> None:
    normal = data["state"] == "normal"
    if data["scope"] == "grid":
        if normal:
            GridDeclaration.objects.all().delete()
        else:
            GridDeclaration.objects.update_or_create(
                scope="grid", defaults={"state": data["state"], **_signed(data)}
            )
        return
    # A feeder is published before it can be declared (``unknown_feeder``).
    Feeder.objects.filter(name=data["scope"].removeprefix("feeder:")).update(
        state=data["state"],
        state_reason="" if normal else data["reason"],
        state_since=None if normal else datetime_of_ms(data["timestamp_ms"]),
    )


def _suspended(data: dict[str, Any]) -> None:
    until = datetime_of_ms(data["until"]) if data["until"] else None
    Suspension.objects.update_or_create(
        scope=data["scope"], defaults={**_signed(data), "until": until}
    )


def _resumed(data: dict[str, Any]) -> None:
    Suspension.objects.filter(scope=data["scope"]).delete()


def _restricted(data: dict[str, Any]) -> None:
    Restriction.objects.update_or_create(
        address=data["address"],
        defaults={
            **_signed(data),
            "cancelled_orders": data["cancelled_orders"],
            "cancelled_offers": data["cancelled_offers"],
        },
    )


def _reinstated(data: dict[str, Any]) -> None:
    Restriction.objects.filter(address=data["address"]).delete()


def _contract_acted(data: dict[str, Any]) -> None:
    """The act on the contract's row (written by ``market.projection`` when it was made), and
    on its review item."""
    act = data["act"]
    made = Contract.objects.get(id=data["contract"])
    made.energy_wh = data["energy_wh"]
    made.escrow = data["escrow"]
    made.deposit = data["deposit"]
    made.vetoed = data["vetoed"]
    made.acts = [*made.acts, act]
    made.save(update_fields=["energy_wh", "escrow", "deposit", "vetoed", "acts"])
    ReviewItem.objects.filter(contract_id=data["contract"]).update(
        status=REVIEW_STATUS[act["act"]], decided_by=act["tx"]
    )


_HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    schema.FEEDER_ASSIGNED: _feeder_assigned,
    schema.TOPOLOGY_PUBLISHED: _topology_published,
    schema.STATE_DECLARED: _state_declared,
    **dict.fromkeys(SUSPENDED, _suspended),
    **dict.fromkeys(RESUMED, _resumed),
    schema.ACCOUNT_RESTRICTED: _restricted,
    schema.ACCOUNT_REINSTATED: _reinstated,
    **dict.fromkeys(CONTRACT_EVENTS, _contract_acted),
}


def _loads(changes: dict[str, Any], settled: list[dict[str, Any]]) -> None:
    """Live loads from the state after the block; a settled slot's last loads from its event."""
    kept = {
        (data["slot"], feeder): load for data in settled for feeder, load in data["loads"].items()
    }
    for key, value in changes.items():
        if not key.startswith(LOAD):
            continue
        slot_ms, feeder = key[len(LOAD) :].split("/", 1)
        row = {"feeder": feeder, "slot": datetime_of_ms(int(slot_ms))}
        value = value or kept.get((int(slot_ms), feeder))
        if value is None:  # the load came back to nothing (a veto): no key, no row
            FeederLoad.objects.filter(**row).delete()
        else:
            FeederLoad.objects.update_or_create(
                **row, defaults={"export_wh": value["export_wh"], "import_wh": value["import_wh"]}
            )


# --- review --------------------------------------------------------------------------------------


def _review(made: list[dict[str, Any]], block: Block, state: State) -> None:
    """File the contracts made in this block that trip a review rule. The rules read the state
    after the block (``supervision.review``), where the contract's record has any acts of the
    same block."""
    contracts = [state.get(market_schema.contract_key(data["id"])) or data for data in made]
    found = review.evaluate_made(contracts, state, review_limits(), recent=recent_median)
    for contract_id, rules in found.items():
        if rules:
            ReviewItem.objects.get_or_create(
                contract_id=contract_id,
                defaults={"rules": rules, "flagged_height": block.height},
            )


# The newest this many contracts of the last day are the recent market a thin slot's prices
# are held against: enough for a median, and a bounded read per slot however busy the day.
RECENT_CONTRACTS = 1_000
RECENT_WINDOW_MS = 86_400_000


def recent_median(slot: int, carrier: str) -> int | None:
    """The median price of the newest ``RECENT_CONTRACTS`` contracts of ``carrier`` in the slots
    of the day before ``slot`` (not vetoed; no flexibility contract: its price is not one of
    energy), as projected so far; None if there are none (``supervision.review.Recent``)."""
    prices = list(
        Contract.objects.filter(
            carrier=carrier,
            slot__gte=datetime_of_ms(slot - RECENT_WINDOW_MS),
            slot__lt=datetime_of_ms(slot),
            vetoed=False,
        )
        .exclude(kind=FLEXIBILITY)
        .order_by("-slot", "-index")
        .values_list("price", flat=True)[:RECENT_CONTRACTS]
    )
    return review.median(prices) if prices else None


# --- the audit log and notifications -------------------------------------------------------------


def act_columns(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """The ``SupervisoryAct`` columns the event of an act (``type_``, ``data``) gives: all but
    the transaction's type and payload and the actor's role (``supervision.audit`` compares
    the same)."""
    record = data["act"] if type_ in CONTRACT_EVENTS else data
    if type_ in CONTRACT_EVENTS:
        affected = [data["seller"], data["buyer"]]  # whose contract it touched
    elif type_ in ACCOUNT_EVENTS:
        affected = [data["address"]]
    else:
        affected = []
    if type_ == schema.TOPOLOGY_PUBLISHED:
        scope = f"feeder:{data['feeder']}"
    else:
        scope = data.get("scope", "")
    return {
        "actor": record["by"],
        "reason": record.get("reason", ""),
        "contract": data["contract"] if type_ in CONTRACT_EVENTS else "",
        "address": data["address"] if type_ in ACCOUNT_EVENTS else "",
        "scope": scope,
        "affected": affected,
        "height": record["height"],
        "at": datetime_of_ms(record["timestamp_ms"]),
    }


def _act(tx: Transaction, type_: str, data: dict[str, Any], state: State) -> SupervisoryAct:
    """The audit log's row of the act whose event is (``type_``, ``data``), sent as ``tx``."""
    columns = act_columns(type_, data)
    sender = state.get(f"acct/{columns['actor']}") or {}
    act: SupervisoryAct
    act, _ = SupervisoryAct.objects.update_or_create(
        tx=tx.id,
        defaults={
            "type": tx.type,
            "actor_role": sender.get("role", ""),
            "payload": tx.payload,
            **columns,
        },
    )
    return act


def _message(act: SupervisoryAct, data: dict[str, Any]) -> str:
    """What a household is told: who (a regulator), what, why, and what it means for it."""
    reason = act.reason.strip().rstrip(".")  # the sentence ends it
    if act.type in (chain.VETO, chain.CURTAIL):
        record = data["act"]
        made = Contract.objects.get(id=data["contract"])
        what = (
            f"your contract {made.id} ({energy_text(record['energy_wh_before'], made.carrier)} "
            f"at {price_text(made.price, made.carrier)} for the slot of "
            f"{made.slot:%Y-%m-%d %H:%M} UTC)"
        )
        if act.type == chain.VETO:
            return (
                f"A regulator vetoed {what}: {reason}. It will not be delivered or settled; "
                "its margins were released."
            )
        return (
            f"A regulator curtailed {what} to {energy_text(record['energy_wh'], made.carrier)}: "
            f"{reason}. The "
            "margins for the energy taken out were released."
        )
    if act.type == chain.RESTRICT:
        cancelled = len(data["cancelled_orders"]) + len(data["cancelled_offers"])
        return (
            f"A regulator restricted your account: {reason}. You may not place orders or offers "
            f"or accept offers until it is reinstated; {cancelled} open order(s) and offer(s) "
            "were cancelled and their margins released. Your contracts stand."
        )
    if act.type == chain.REINSTATE:
        return f"A regulator reinstated your account: {reason}. You may trade again."
    return (
        f"A regulator reset your account's unsettled defaults: {reason}. Your history of "
        "shortfalls stays on record."
    )


def _notify(act: SupervisoryAct, data: dict[str, Any]) -> None:
    message = _message(act, data)
    for address in act.affected:
        Notification.objects.get_or_create(
            address=address,
            act=act.tx,
            defaults={"message": message, "created_at": act.at},
        )
