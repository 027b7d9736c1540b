"""The market's read models (``market.models``), projected block by block from the chain.

A ``ledger.projection.ReadModel`` (named in ``settings.LEDGER_READ_MODELS``): the ledger's
projection calls :func:`project` for every committed block it has verified and re-executed, in
height order, inside its own transaction, with the state after the block and the keys the block
changed; a rebuild calls :func:`clear` and then :func:`project` for every block again.

* Contracts are copied from ``market/contract/<id>``.
* An order's row is made from the transaction that placed it (``market.order.place``, result
  ``ok``); while ``market/order/<id>`` exists it is open, with that key's remainder and margin.
  When the key is gone (or never appeared: an order filled at once) it is closed: ``cancelled``
  if a ``market.order.cancel`` of the block named it, ``filled`` if contracts cover its
  energy, else ``expired`` (its slot was cleared, or a regulator's restriction of its owner
  cancelled it: ``supervision.projection`` then marks it cancelled). Its remainder is its
  energy less its contracts'.
* Offers likewise (``market.offer.post``, ``market/offer/<id>``, ``market.offer.withdraw``;
  ``taken`` when accepted in full).
* ``market/locked/<address>`` gives ``MarketAccount.locked`` (its ``feeder`` is supervision's
  to project).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.blocks import Block
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.state import State
from market import chain
from market.chain import schema
from market.models import (
    Contract,
    MarketAccount,
    Offer,
    Order,
    SettlementLine,
    SlotSettlement,
)

ORDER = schema.ORDER_PREFIX
OFFER = schema.OFFER_PREFIX
CONTRACT = schema.CONTRACT_PREFIX
LOCKED = schema.LOCKED_PREFIX
SETTLEMENT = schema.SETTLEMENT_PREFIX


def clear() -> None:
    for model in (SettlementLine, SlotSettlement, Contract, Order, Offer, MarketAccount):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    ok = [
        tx for tx, result in zip(block.transactions, block.results, strict=True) if result == "ok"
    ]
    _contracts(block, changes)
    _ORDERS.project(block, state, changes, ok)
    _OFFERS.project(block, state, changes, ok)
    _accounts(changes)
    _settlements(changes)


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
                vetoed=bool(value.get("vetoed")),
                acts=value.get("acts", []),
            )
        )
    fields = [f.name for f in Contract._meta.fields if f.name != "id"]
    Contract.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["id"], update_fields=fields
    )
    gone = [key[len(CONTRACT) :] for key, value in changes.items() if key.startswith(CONTRACT)]
    Contract.objects.filter(id__in=[i for i in gone if changes[CONTRACT + i] is None]).delete()


def _matched(ids: set[str], column: str) -> dict[str, int]:
    """The energy each order (or offer) traded: its contracts' energy as they were made. A
    regulator's curtailment or veto cuts a contract, not the order: on the chain the order's
    remainder does not grow back, so neither does the row's."""
    matched: dict[str, int] = {}
    rows = Contract.objects.filter(**{f"{column}__in": ids}).values_list(
        column, "energy_wh", "acts"
    )
    for order_id, energy_wh, acts in rows:
        made_for = acts[0]["energy_wh_before"] if acts else energy_wh
        matched[order_id] = matched.get(order_id, 0) + made_for
    return matched


@dataclass(frozen=True)
class _Kind:
    """Orders and offers follow one life: opened by a transaction, open while their state key
    exists, then closed (by their owner, filled in full by contracts, or expired). Statuses
    are the values of ``market.models.OrderStatus`` / ``OfferStatus``."""

    model: Any
    prefix: str
    open_type: str
    close_type: str
    close_field: str
    closed: str  # the status when the owner closed it
    filled: str  # the status when contracts took all of it
    new: Any  # (tx, payload) -> the fields of a new row

    def project(self, block: Block, state: State, changes: dict[str, Any], ok: list[Any]) -> None:
        when = datetime_of_ms(block.timestamp_ms)
        opened = {tx.id: tx for tx in ok if tx.type == self.open_type}
        for row_id, tx in opened.items():
            payload = tx.payload
            self.model.objects.create(
                id=row_id,
                owner=tx.sender,
                slot=datetime_of_ms(payload["slot"]),
                price=payload["price"],
                energy_wh=payload["energy_wh"],
                remaining_wh=payload["energy_wh"],
                status="open",
                height=block.height,
                **self.new(payload, when),
            )
        touched = set(opened) | _ids(changes, self.prefix)
        if not touched:
            return
        closed = _named(ok, self.close_type, self.close_field)
        matched = _matched(touched, "seller_tx")
        for row_id, energy in _matched(touched, "buyer_tx").items():
            matched[row_id] = matched.get(row_id, 0) + energy
        for row in self.model.objects.filter(id__in=touched):
            value = state.get(self.prefix + row.id)
            row.remaining_wh = row.energy_wh - matched.get(row.id, 0)
            if value is not None:
                row.status, row.locked = "open", value["locked"]
            else:
                row.locked = 0
                row.closed_height = block.height
                if row.id in closed:
                    row.status = self.closed
                elif row.remaining_wh == 0:
                    row.status = self.filled
                else:
                    row.status = "expired"
            row.save(update_fields=["remaining_wh", "locked", "status", "closed_height"])


_ORDERS = _Kind(
    model=Order,
    prefix=ORDER,
    open_type=chain.ORDER_PLACE,
    close_type=chain.ORDER_CANCEL,
    close_field="order",
    closed="cancelled",
    filled="filled",
    new=lambda payload, when: {"side": payload["side"], "placed_at": when},
)
_OFFERS = _Kind(
    model=Offer,
    prefix=OFFER,
    open_type=chain.OFFER_POST,
    close_type=chain.OFFER_WITHDRAW,
    close_field="offer",
    closed="withdrawn",
    filled="taken",
    new=lambda payload, when: {"buyer": payload["buyer"], "posted_at": when},
)


def _accounts(changes: dict[str, Any]) -> None:
    for address in sorted(_ids(changes, LOCKED)):
        account, _ = MarketAccount.objects.get_or_create(address=address)
        account.locked = changes[LOCKED + address] or 0
        account.save()


# A settlement line's fields, as the chain's per-contract result has them (``market.audit``
# compares the same ones).
SETTLEMENT_LINE_FIELDS = (
    "seller",
    "buyer",
    "energy_wh",
    "export_wh",
    "delivered_wh",
    "paid",
    "fee",
    "penalty",
    "escrow_released",
    "deposit_released",
)


def _settlements(changes: dict[str, Any]) -> None:
    """A settled slot's summary and one line per contract. A slot settles once, in one block:
    its lines carry the summary's block and time."""
    ours = {k: v for k, v in changes.items() if k.startswith(SETTLEMENT) and v is not None}
    summaries = {v["slot"]: v for v in ours.values() if "contract" not in v}
    for summary in summaries.values():
        SlotSettlement.objects.update_or_create(
            slot=datetime_of_ms(summary["slot"]),
            defaults={
                "contracts": summary["contracts"],
                "energy_wh": summary["energy_wh"],
                "delivered_wh": summary["delivered_wh"],
                "paid": summary["paid"],
                "fees": summary["fees"],
                "penalties": summary["penalties"],
                "shortfalls": summary["shortfalls"],
                "tx": summary["tx"],
                "height": summary["height"],
                "settled_at": datetime_of_ms(summary["timestamp_ms"]),
            },
        )
    for value in ours.values():
        if "contract" not in value:
            continue
        contract = Contract.objects.get(id=value["contract"])
        summary = summaries[ms_of_datetime(contract.slot)]
        SettlementLine.objects.update_or_create(
            contract=contract,
            defaults={
                "slot": contract.slot,
                **{name: value[name] for name in SETTLEMENT_LINE_FIELDS},
                "height": summary["height"],
                "settled_at": datetime_of_ms(summary["timestamp_ms"]),
            },
        )
