"""The market's read models (``market.models``), projected block by block from the chain.

A ``ledger.projection.ReadModel`` (named in ``settings.LEDGER_READ_MODELS``): the ledger's
projection calls :func:`project` for every committed block it has verified and re-executed, in
height order, inside its own transaction, with the state after the block and the keys the block
changed; a rebuild calls :func:`clear` and then :func:`project` for every block again.

* Contracts are copied from ``market/contract/<id>``.
* An order's row is made from the transaction that placed it (``market.order.place``, result
  ``ok``); while ``market/order/<id>`` exists it is open, with that key's remainder and margin.
  When the key is gone (or never appeared: an order filled at once) it is closed: ``cancelled``
  if a ``market.order.cancel`` of the block named it, ``filled`` if contracts cover its energy,
  else ``expired`` (its slot was cleared). Its remainder is its energy less its contracts'.
* Offers likewise (``market.offer.post``, ``market/offer/<id>``, ``market.offer.withdraw``;
  ``taken`` when accepted in full).
* ``market/locked/<address>`` and ``grid/feeder/<address>`` give ``MarketAccount``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from ledger.blocks import Block
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.models import Contract, MarketAccount, Offer, OfferStatus, Order, OrderStatus

ORDER = "market/order/"
OFFER = "market/offer/"
CONTRACT = "market/contract/"
LOCKED = "market/locked/"
FEEDER = "grid/feeder/"


def clear() -> None:
    for model in (Contract, Order, Offer, MarketAccount):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    ok = [
        tx for tx, result in zip(block.transactions, block.results, strict=True) if result == "ok"
    ]
    _contracts(block, changes)
    _orders(block, state, changes, ok)
    _offers(block, state, changes, ok)
    _accounts(changes)


def _ids(changes: dict[str, Any], prefix: str) -> set[str]:
    return {key[len(prefix) :] for key in changes if key.startswith(prefix)}


def _named(ok: list[Any], type_: str, field: str) -> set[str]:
    return {tx.payload[field] for tx in ok if tx.type == type_}


def _contracts(block: Block, changes: dict[str, Any]) -> None:
    rows = []
    for key, value in changes.items():
        if not key.startswith(CONTRACT) or value is None:
            continue
        rows.append(
            Contract(
                id=value["id"],
                kind=value["kind"],
                slot=datetime_of_ms(value["slot"]),
                index=value["index"],
                seller=value["seller"],
                buyer=value["buyer"],
                energy_wh=value["energy_wh"],
                price=value["price"],
                network_fee=value["network_fee"],
                penalty_bps=value["penalty_bps"],
                escrow=value["escrow"],
                deposit=value["deposit"],
                seller_tx=value["seller_tx"],
                buyer_tx=value["buyer_tx"],
                tx=value["tx"],
                height=value["height"],
                made_at=datetime_of_ms(value["timestamp_ms"]),
                grid=value.get("grid"),
            )
        )
    fields = [f.name for f in Contract._meta.fields if f.name != "id"]
    Contract.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["id"], update_fields=fields
    )
    gone = [key[len(CONTRACT) :] for key, value in changes.items() if key.startswith(CONTRACT)]
    Contract.objects.filter(id__in=[i for i in gone if changes[CONTRACT + i] is None]).delete()


def _matched(ids: set[str], column: str) -> dict[str, int]:
    rows = (
        Contract.objects.filter(**{f"{column}__in": ids})
        .values(column)
        .annotate(total=Sum("energy_wh"))
    )
    return {row[column]: row["total"] for row in rows}


def _orders(block: Block, state: State, changes: dict[str, Any], ok: list[Any]) -> None:
    when = datetime_of_ms(block.timestamp_ms)
    placed = {tx.id: tx for tx in ok if tx.type == "market.order.place"}
    for order_id, tx in placed.items():
        payload = tx.payload
        Order.objects.create(
            id=order_id,
            owner=tx.sender,
            slot=datetime_of_ms(payload["slot"]),
            side=payload["side"],
            price=payload["price"],
            energy_wh=payload["energy_wh"],
            remaining_wh=payload["energy_wh"],
            status=OrderStatus.OPEN,
            height=block.height,
            placed_at=when,
        )
    touched = set(placed) | _ids(changes, ORDER)
    if not touched:
        return
    cancelled = _named(ok, "market.order.cancel", "order")
    filled = _matched(touched, "seller_tx")
    for order_id, energy in _matched(touched, "buyer_tx").items():
        filled[order_id] = filled.get(order_id, 0) + energy
    for order in Order.objects.filter(id__in=touched):
        value = state.get(ORDER + order.id)
        order.remaining_wh = order.energy_wh - filled.get(order.id, 0)
        if value is not None:
            order.status, order.locked = OrderStatus.OPEN, value["locked"]
        else:
            order.locked = 0
            order.closed_height = block.height
            if order.id in cancelled:
                order.status = OrderStatus.CANCELLED
            elif order.remaining_wh == 0:
                order.status = OrderStatus.FILLED
            else:
                order.status = OrderStatus.EXPIRED
        order.save(update_fields=["remaining_wh", "locked", "status", "closed_height"])


def _offers(block: Block, state: State, changes: dict[str, Any], ok: list[Any]) -> None:
    when = datetime_of_ms(block.timestamp_ms)
    posted = {tx.id: tx for tx in ok if tx.type == "market.offer.post"}
    for offer_id, tx in posted.items():
        payload = tx.payload
        Offer.objects.create(
            id=offer_id,
            owner=tx.sender,
            buyer=payload["buyer"],
            slot=datetime_of_ms(payload["slot"]),
            price=payload["price"],
            energy_wh=payload["energy_wh"],
            remaining_wh=payload["energy_wh"],
            status=OfferStatus.OPEN,
            height=block.height,
            posted_at=when,
        )
    touched = set(posted) | _ids(changes, OFFER)
    if not touched:
        return
    withdrawn = _named(ok, "market.offer.withdraw", "offer")
    taken = _matched(touched, "seller_tx")
    for offer in Offer.objects.filter(id__in=touched):
        value = state.get(OFFER + offer.id)
        offer.remaining_wh = offer.energy_wh - taken.get(offer.id, 0)
        if value is not None:
            offer.status, offer.locked = OfferStatus.OPEN, value["locked"]
        else:
            offer.locked = 0
            offer.closed_height = block.height
            if offer.id in withdrawn:
                offer.status = OfferStatus.WITHDRAWN
            elif offer.remaining_wh == 0:
                offer.status = OfferStatus.TAKEN
            else:
                offer.status = OfferStatus.EXPIRED
        offer.save(update_fields=["remaining_wh", "locked", "status", "closed_height"])


def _accounts(changes: dict[str, Any]) -> None:
    addresses = _ids(changes, LOCKED) | _ids(changes, FEEDER)
    for address in sorted(addresses):
        account, _ = MarketAccount.objects.get_or_create(address=address)
        if LOCKED + address in changes:
            account.locked = changes[LOCKED + address] or 0
        if FEEDER + address in changes:
            account.feeder = changes[FEEDER + address] or ""
        account.save()
