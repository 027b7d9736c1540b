"""The read models of energy sellers (``retail.models``), projected block by block.

A ``ledger.projection.ReadModel`` named in ``settings.LEDGER_READ_MODELS`` after
``market.projection``, which has written the block's ``Order`` rows before this one runs:

* ``market.grant_given`` -> the ``Grant`` of (household, retailer, carrier), new or with its new
  limits (and no longer revoked);
* ``market.grant_revoked`` -> that row, revoked;
* ``market.order_placed`` with ``placed_by`` -> a ``RetailOrder`` beside the market's order row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledger.blocks import Block
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.chain import retail, schema
from retail.models import Grant, RetailOrder

LIMITS = ("max_energy_wh", "max_price", "min_price")


def clear() -> None:
    for model in (RetailOrder, Grant):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    when = datetime_of_ms(block.timestamp_ms)
    for event in block.events:
        handler = _HANDLERS.get(event["type"])
        if handler is not None:
            handler(event["data"], block.height, when)


def _given(data: dict[str, Any], height: int, when: datetime) -> None:
    Grant.objects.update_or_create(
        household=data["household"],
        retailer=data["retailer"],
        carrier=data["carrier"],
        defaults={
            **{name: data[name] for name in LIMITS},
            "height": height,
            "granted_at": when,
            "revoked_height": None,
            "revoked_at": None,
        },
    )


def _revoked(data: dict[str, Any], height: int, when: datetime) -> None:
    Grant.objects.filter(
        household=data["household"], retailer=data["retailer"], carrier=data["carrier"]
    ).update(revoked_height=height, revoked_at=when)


def _order_placed(data: dict[str, Any], height: int, when: datetime) -> None:
    if "placed_by" in data:
        RetailOrder.objects.create(
            order_id=data["id"],
            placed_by=data["placed_by"],
            household=data["owner"],
            carrier=schema.carrier_of(data),
        )


_HANDLERS: dict[str, Callable[[dict[str, Any], int, datetime], None]] = {
    retail.GRANT_GIVEN: _given,
    retail.GRANT_REVOKED: _revoked,
    schema.ORDER_PLACED: _order_placed,
}
