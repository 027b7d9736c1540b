"""The market's read models (``market.models``), projected block by block from the chain.

A ``ledger.projection.ReadModel`` (named in ``settings.LEDGER_READ_MODELS``): the ledger's
projection calls :func:`project` for every committed block it has verified and re-executed, in
height order, inside its own transaction, with the block (its transactions, results and
events), the state after it and the keys it changed; a rebuild calls :func:`clear` and then
:func:`project` for every block again, so the rows are a function of the chain.

History comes from the block's events (``market.chain.schema``, Events), never from the state,
which forgets a slot's contracts when it settles:

* ``market.order_placed`` / ``market.offer_posted`` open a row; ``market.contract_made`` makes a
  contract row and takes its energy off the remainders of the order or offer on each side;
  ``market.order_closed`` / ``market.offer_closed`` close the row with the status the chain
  gave (filled, cancelled, expired; taken, withdrawn, expired).
* Each order, offer, contract and settlement line has its event's ``carrier``
  (``market.chain.schema.carrier_of``: none is electricity); a slot's summary keeps
  electricity's totals in its columns and another carrier's (the event's ``"heat": {...}``) in
  ``SlotSettlement.carriers``, never added together.
* ``market.contract_settled`` gives a settlement line, ``market.slot_settled`` the slot's
  summary, ``market.residual_settled`` a household's line with the supplier of last resort
  (``GridSettlement``), ``market.arrears_paid`` a top-up's payment of arrears.
* What is live stays live: the margin an open order or offer still locks and
  ``MarketAccount.locked`` and ``.arrears`` come from the state after the block
  (``market/order/<id>``, ``market/offer/<id>``, ``market/locked/<address>``,
  ``market/arrears/<address>``).

A regulator's acts on contracts (veto, curtailment) are supervision's events, and
``supervision.projection`` writes them on the contract rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import F

from ledger.blocks import Block
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.chain import schema, tariff
from market.chain.options import ELECTRICITY, UNITS
from market.models import (
    ArrearsPayment,
    Contract,
    GridSettlement,
    MarketAccount,
    Offer,
    Order,
    SettlementLine,
    SlotSettlement,
    Tariff,
)

ORDER = schema.ORDER_PREFIX
OFFER = schema.OFFER_PREFIX
LOCKED = schema.LOCKED_PREFIX
ARREARS = schema.arrears_key("")

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
# A household's line with the supplier, as ``market.residual_settled`` has it.
RESIDUAL_FIELDS = (
    "account",
    "import_wh",
    "export_wh",
    "p2p_in_wh",
    "p2p_out_wh",
    "grid_import_wh",
    "grid_export_wh",
    "retail",
    "feed_in",
    "network_fee",
    "import_cost",
    "import_fee",
    "feed_in_paid",
    "arrears_paid",
    "arrears_added",
    "arrears",
)
CONTRACT_FIELDS = (
    "kind",
    "index",
    "seller",
    "buyer",
    "energy_wh",
    "price",
    "network_fee",
    "penalty_bps",
    "escrow",
    "deposit",
    "seller_tx",
    "buyer_tx",
    "tx",
    "height",
)


def clear() -> None:
    for model in (
        SettlementLine,
        SlotSettlement,
        GridSettlement,
        ArrearsPayment,
        Contract,
        Order,
        Offer,
        MarketAccount,
        Tariff,
    ):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    when = datetime_of_ms(block.timestamp_ms)
    for event in block.events:
        handler = _HANDLERS.get(event["type"])
        if handler is not None:
            handler(event["data"], block.height, when)
    _margins(Order, ORDER, state, changes)
    _margins(Offer, OFFER, state, changes)
    _accounts(changes)


def _opener(model: Any, extra: str, placed: str) -> Callable[[dict[str, Any], int, datetime], None]:
    """An order's or offer's row, open, from its event (``extra``: an order's side, an offer's
    buyer; ``placed``: the field of the time it was placed)."""

    def opened(data: dict[str, Any], height: int, when: datetime) -> None:
        model.objects.create(
            id=data["id"],
            owner=data["owner"],
            slot=datetime_of_ms(data["slot"]),
            price=data["price"],
            energy_wh=data["energy_wh"],
            remaining_wh=data["energy_wh"],
            carrier=schema.carrier_of(data),
            status="open",
            height=height,
            **{extra: data[extra], placed: when},
        )

    return opened


def _closer(model: Any) -> Callable[[dict[str, Any], int, datetime], None]:
    def closed(data: dict[str, Any], height: int, when: datetime) -> None:
        model.objects.filter(id=data["id"]).update(
            status=data["status"],
            remaining_wh=data["remaining_wh"],
            locked=0,
            closed_height=height,
        )

    return closed


def _contract_made(data: dict[str, Any], height: int, when: datetime) -> None:
    Contract.objects.create(
        id=data["id"],
        slot=datetime_of_ms(data["slot"]),
        carrier=schema.carrier_of(data),
        made_at=datetime_of_ms(data["timestamp_ms"]),
        grid=data.get("grid"),
        vetoed=False,
        acts=[],
        **{name: data[name] for name in CONTRACT_FIELDS},
    )
    # The orders (or the offer) it was made from: an offer's acceptance is no row of its own.
    for row_id in (data["seller_tx"], data["buyer_tx"]):
        for model in (Order, Offer):
            model.objects.filter(id=row_id).update(
                remaining_wh=F("remaining_wh") - data["energy_wh"]
            )


def _contract_settled(data: dict[str, Any], height: int, when: datetime) -> None:
    SettlementLine.objects.create(
        contract_id=data["contract"],
        slot=datetime_of_ms(data["slot"]),
        carrier=schema.carrier_of(data),
        **{name: data[name] for name in SETTLEMENT_LINE_FIELDS},
        height=height,
        settled_at=when,
    )


def _slot_settled(data: dict[str, Any], height: int, when: datetime) -> None:
    SlotSettlement.objects.create(
        slot=datetime_of_ms(data["slot"]),
        contracts=data["contracts"],
        energy_wh=data["energy_wh"],
        delivered_wh=data["delivered_wh"],
        paid=data["paid"],
        fees=data["fees"],
        penalties=data["penalties"],
        shortfalls=data["shortfalls"],
        residual=data["residual"],
        carriers=other_carriers(data),
        tx=data["tx"],
        height=data["height"],
        settled_at=datetime_of_ms(data["timestamp_ms"]),
    )


def other_carriers(settled: dict[str, Any]) -> dict[str, Any]:
    """The totals of each carrier but electricity in a ``market.slot_settled`` event (the event
    has them under the carrier's name, only when its contracts settled)."""
    return {c: settled[c] for c in UNITS if c != ELECTRICITY and c in settled}


def _residual_settled(data: dict[str, Any], height: int, when: datetime) -> None:
    GridSettlement.objects.create(
        slot=datetime_of_ms(data["slot"]),
        carrier=schema.carrier_of(data),
        **{name: data[name] for name in RESIDUAL_FIELDS},
        height=height,
        settled_at=when,
    )


def _arrears_paid(data: dict[str, Any], height: int, when: datetime) -> None:
    ArrearsPayment.objects.create(
        account=data["account"],
        paid=data["paid"],
        arrears=data["arrears"],
        tx=data["tx"],
        height=height,
        paid_at=when,
    )


def _tariff_published(data: dict[str, Any], height: int, when: datetime) -> None:
    # A tariff for a slot that had one of its carrier replaces it, as on the ledger.
    Tariff.objects.update_or_create(
        carrier=schema.carrier_of(data),
        from_slot=datetime_of_ms(data["from_slot"]),
        defaults={"bands": data["bands"], "tx": data["tx"], "height": height, "published_at": when},
    )


_HANDLERS: dict[str, Callable[[dict[str, Any], int, datetime], None]] = {
    schema.ORDER_PLACED: _opener(Order, "side", "placed_at"),
    schema.ORDER_CLOSED: _closer(Order),
    schema.OFFER_POSTED: _opener(Offer, "buyer", "posted_at"),
    schema.OFFER_CLOSED: _closer(Offer),
    schema.CONTRACT_MADE: _contract_made,
    schema.CONTRACT_SETTLED: _contract_settled,
    schema.SLOT_SETTLED: _slot_settled,
    schema.RESIDUAL_SETTLED: _residual_settled,
    schema.ARREARS_PAID: _arrears_paid,
    tariff.TARIFF_PUBLISHED: _tariff_published,
}


def _ids(changes: dict[str, Any], prefix: str) -> set[str]:
    return {key[len(prefix) :] for key in changes if key.startswith(prefix)}


def _margins(model: Any, prefix: str, state: State, changes: dict[str, Any]) -> None:
    """The margin each open order (or offer) the block changed still locks."""
    for row_id in sorted(_ids(changes, prefix)):
        value = state.get(prefix + row_id)
        if value is not None:
            model.objects.filter(id=row_id).update(locked=value["locked"])


def _accounts(changes: dict[str, Any]) -> None:
    for prefix, field in ((LOCKED, "locked"), (ARREARS, "arrears")):
        for address in sorted(_ids(changes, prefix)):
            account, _ = MarketAccount.objects.get_or_create(address=address)
            setattr(account, field, changes[prefix + address] or 0)
            account.save()
