"""Supervision's read models (``supervision.models``), projected block by block from the chain.

A ``ledger.projection.ReadModel`` named in ``settings.LEDGER_READ_MODELS`` after
``market.projection``: the market's projection has written the block's ``Contract`` rows (in
the same database transaction) before this one runs, and review items point at them.

* State keys give the current picture: ``grid/topology/<f>`` and ``grid/state/feeder/<f>`` ->
  ``Feeder``; ``grid/state/grid`` -> ``GridDeclaration``; ``grid/load/<slot>/<f>`` ->
  ``FeederLoad``; ``supervision/suspended/...`` -> ``Suspension``;
  ``supervision/restricted/<a>`` -> ``Restriction`` (a deleted key deletes the row).
* Every supervisory transaction of the block that succeeded (``supervision.*``,
  ``grid.feeder.publish``, ``grid.state.declare``) -> one ``SupervisoryAct``, the audit log,
  naming the households it touched; the households touched by a veto, a curtailment, a
  restriction, a reinstatement or a reset of defaults get a ``Notification`` that says who did
  what and why.
* A contract that appears in the block is checked against the review rules
  (``supervision.review``, thresholds from ``settings.SUPERVISION_REVIEW``); one that trips any
  gets a ``ReviewItem``, which follows the acts on the contract (vetoed, curtailed, cleared).

A rebuild (``clear`` then every block again) gives the same rows, except that notifications are
kept (``get_or_create`` on the household and the act), so that whether one was read survives.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Model

from ledger.blocks import Block
from ledger.crypto import Transaction
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.chain import schema as market_schema
from market.models import MarketAccount, Offer, OfferStatus, Order, OrderStatus
from supervision import chain, review
from supervision.chain import schema
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

TOPOLOGY = schema.TOPOLOGY_PREFIX
FEEDER = schema.FEEDER_PREFIX
FEEDER_STATE = schema.FEEDER_STATE_PREFIX
GRID_STATE = schema.GRID_STATE_KEY
LOAD = schema.LOAD_PREFIX
MARKET_SUSPENDED = schema.MARKET_SUSPENDED_KEY
FEEDER_SUSPENDED = schema.FEEDER_SUSPENDED_PREFIX
RESTRICTED = schema.RESTRICTED_PREFIX
CONTRACT = market_schema.CONTRACT_PREFIX

GRID_ACTS = (chain.FEEDER_PUBLISH, chain.STATE_DECLARE)
VETO = chain.VETO
CURTAIL = chain.CURTAIL
CLEAR = chain.CLEAR
RESTRICT = chain.RESTRICT
REINSTATE = chain.REINSTATE
DEFAULTS_RESET = chain.DEFAULTS_RESET
CONTRACT_ACTS = (VETO, CURTAIL, CLEAR)
ACCOUNT_ACTS = (RESTRICT, REINSTATE, DEFAULTS_RESET)
NOTIFIED = (VETO, CURTAIL, RESTRICT, REINSTATE, DEFAULTS_RESET)
# What a contract's last act (``"acts"`` in its state record) makes of its review item.
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
    _feeders(changes)
    _grid_declaration(changes)
    _loads(changes)
    _suspensions(changes)
    _restrictions(changes)
    _market_rows(changes)
    _new_contracts(block, state, changes)
    for tx, result in zip(block.transactions, block.results, strict=True):
        if result == "ok" and (tx.type.startswith("supervision.") or tx.type in GRID_ACTS):
            act = _act(block, state, tx)
            if tx.type in NOTIFIED:
                _notify(act, state)
    _decisions(changes)


def _changed(changes: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in changes.items() if key.startswith(prefix)}


# --- the current picture -------------------------------------------------------------------------


def _market_rows(changes: dict[str, Any]) -> None:
    """What supervision's state says of the market's read model (``market.projection`` has just
    projected the block): a household's feeder, and the orders and offers a restriction
    cancelled, which the market's projection has closed as expired."""
    for address, feeder in sorted(_changed(changes, FEEDER).items()):
        account, _ = MarketAccount.objects.get_or_create(address=address)
        account.feeder = feeder or ""
        account.save(update_fields=["feeder"])
    for value in _changed(changes, RESTRICTED).values():
        if value is None:
            continue
        Order.objects.filter(id__in=value["cancelled_orders"]).update(status=OrderStatus.CANCELLED)
        Offer.objects.filter(id__in=value["cancelled_offers"]).update(status=OfferStatus.WITHDRAWN)


def _mirror(model: type[Model], value: dict[str, Any] | None, defaults: Any, **key: Any) -> None:
    """The row of ``model`` at ``key`` follows the state's ``value``: deleted when it is gone,
    else written with ``defaults(value)``."""
    if value is None:
        model._default_manager.filter(**key).delete()
    else:
        model._default_manager.update_or_create(**key, defaults=defaults(value))


def _feeders(changes: dict[str, Any]) -> None:
    for name, value in _changed(changes, TOPOLOGY).items():
        _mirror(
            Feeder,
            value,
            lambda value: {
                "export_limit_w": value["export_limit_w"],
                "import_limit_w": value["import_limit_w"],
                "published_height": value["height"],
                "published_at": datetime_of_ms(value["timestamp_ms"]),
            },
            name=name,
        )
    for name, value in _changed(changes, FEEDER_STATE).items():
        # A feeder is published before it can be declared (``unknown_feeder``).
        Feeder.objects.filter(name=name).update(
            state=value["state"] if value else "normal",
            state_reason=value["reason"] if value else "",
            state_since=datetime_of_ms(value["timestamp_ms"]) if value else None,
        )


def _grid_declaration(changes: dict[str, Any]) -> None:
    if GRID_STATE not in changes:
        return
    value = changes[GRID_STATE]
    if value is None:
        GridDeclaration.objects.all().delete()
        return
    GridDeclaration.objects.update_or_create(
        scope="grid", defaults={"state": value["state"], **_signed(value)}
    )


def _signed(value: dict[str, Any]) -> dict[str, Any]:
    """What every act's record in the state says: why, by whom, in which transaction and block,
    since when."""
    return {
        "reason": value["reason"],
        "by": value["by"],
        "tx": value["tx"],
        "height": value["height"],
        "since": datetime_of_ms(value["timestamp_ms"]),
    }


def _loads(changes: dict[str, Any]) -> None:
    for rest, value in _changed(changes, LOAD).items():
        slot_ms, feeder = rest.split("/", 1)
        _mirror(
            FeederLoad,
            value,
            lambda value: {"export_wh": value["export_wh"], "import_wh": value["import_wh"]},
            feeder=feeder,
            slot=datetime_of_ms(int(slot_ms)),
        )


def _suspensions(changes: dict[str, Any]) -> None:
    keyed = {f"feeder:{name}": value for name, value in _changed(changes, FEEDER_SUSPENDED).items()}
    if MARKET_SUSPENDED in changes:
        keyed["market"] = changes[MARKET_SUSPENDED]
    for scope, value in keyed.items():
        _mirror(
            Suspension,
            value,
            lambda value: {
                **_signed(value),
                "until": datetime_of_ms(value["until"]) if value["until"] else None,
            },
            scope=scope,
        )


def _restrictions(changes: dict[str, Any]) -> None:
    for address, value in _changed(changes, RESTRICTED).items():
        _mirror(
            Restriction,
            value,
            lambda value: {
                **_signed(value),
                "cancelled_orders": value["cancelled_orders"],
                "cancelled_offers": value["cancelled_offers"],
            },
            address=address,
        )


# --- review --------------------------------------------------------------------------------------


def _new_contracts(block: Block, state: State, changes: dict[str, Any]) -> None:
    """File the contracts made in this block that trip a review rule."""
    # A contract's record keeps the height of the block that made it; acts change it later.
    made = [
        value
        for value in _changed(changes, CONTRACT).values()
        if value is not None and value["height"] == block.height
    ]
    for contract_id, rules in review.evaluate_made(made, state, review_limits()).items():
        if rules:
            ReviewItem.objects.get_or_create(
                contract_id=contract_id,
                defaults={"rules": rules, "flagged_height": block.height},
            )


def _decisions(changes: dict[str, Any]) -> None:
    """A review item follows the last act on its contract."""
    for contract_id, value in _changed(changes, CONTRACT).items():
        acts = value.get("acts") if value else None
        if not acts:
            continue
        last = acts[-1]
        ReviewItem.objects.filter(contract_id=contract_id).update(
            status=REVIEW_STATUS[last["act"]], decided_by=last["tx"]
        )


# --- the audit log and notifications -------------------------------------------------------------


def _affected(state: State, tx: Transaction) -> list[str]:
    """The households whose contracts or account the act touched."""
    payload = tx.payload
    if tx.type in CONTRACT_ACTS:
        made = state.get(CONTRACT + payload["contract"])
        return [made["seller"], made["buyer"]] if made else []
    if tx.type in ACCOUNT_ACTS:
        return [payload["address"]]
    return []


def _scope(tx: Transaction) -> str:
    if tx.type == "grid.feeder.publish":
        return f"feeder:{tx.payload['feeder']}"
    scope = tx.payload.get("scope", "")
    return scope if isinstance(scope, str) else ""


def _act(block: Block, state: State, tx: Transaction) -> SupervisoryAct:
    payload = tx.payload
    sender = state.get(f"acct/{tx.sender}") or {}
    act: SupervisoryAct
    act, _ = SupervisoryAct.objects.update_or_create(
        tx=tx.id,
        defaults={
            "type": tx.type,
            "actor": tx.sender,
            "actor_role": sender.get("role", ""),
            "reason": payload.get("reason", ""),
            "contract": payload.get("contract", "") if tx.type in CONTRACT_ACTS else "",
            "address": payload.get("address", "") if tx.type in ACCOUNT_ACTS else "",
            "scope": _scope(tx),
            "payload": payload,
            "affected": _affected(state, tx),
            "height": block.height,
            "at": datetime_of_ms(block.timestamp_ms),
        },
    )
    return act


def _when(slot_ms: int) -> str:
    return f"{datetime_of_ms(slot_ms):%Y-%m-%d %H:%M} UTC"


def _contract_words(made: dict[str, Any], energy_wh: int) -> str:
    return (
        f"your contract {made['id']} ({energy_wh:,} Wh at {made['price']}/kWh for the slot of "
        f"{_when(made['slot'])})"
    )


def _message(act: SupervisoryAct, state: State) -> str:
    """What a household is told: who (a regulator), what, why, and what it means for it."""
    reason = act.reason.strip().rstrip(".")  # the sentence ends it
    if act.type in (VETO, CURTAIL):
        made = state.get(CONTRACT + act.contract)
        record = next(a for a in made["acts"] if a["tx"] == act.tx)
        what = _contract_words(made, record["energy_wh_before"])
        if act.type == VETO:
            return (
                f"A regulator vetoed {what}: {reason}. It will not be delivered or settled; "
                "its margins were released."
            )
        return (
            f"A regulator curtailed {what} to {record['energy_wh']:,} Wh: {reason}. The margins "
            "for the energy taken out were released."
        )
    if act.type == RESTRICT:
        restricted = state.get(RESTRICTED + act.address) or {}
        cancelled = len(restricted.get("cancelled_orders", [])) + len(
            restricted.get("cancelled_offers", [])
        )
        return (
            f"A regulator restricted your account: {reason}. You may not place orders or offers "
            f"or accept offers until it is reinstated; {cancelled} open order(s) and offer(s) "
            "were cancelled and their margins released. Your contracts stand."
        )
    if act.type == REINSTATE:
        return f"A regulator reinstated your account: {reason}. You may trade again."
    return (
        f"A regulator reset your account's unsettled defaults: {reason}. Your history of "
        "shortfalls stays on record."
    )


def _notify(act: SupervisoryAct, state: State) -> None:
    message = _message(act, state)
    for address in act.affected:
        Notification.objects.get_or_create(
            address=address,
            act=act.tx,
            defaults={"message": message, "created_at": act.at},
        )
