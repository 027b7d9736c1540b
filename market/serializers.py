"""The market API's fields and its shared output serializers (``market.api``).

Input is parsed strictly, never coerced: an amount is a JSON integer (``5``, not ``"5"``,
``5.0`` or ``true``), a slot an ISO 8601 start time with its zone. Energy in Wh, money in
integer minor units, prices in minor units per kWh; times go out in ISO 8601, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ledger.crypto import MAX_SAFE_INTEGER
from ledger.identity import IdentityError, validate_address
from market.chain.options import ELECTRICITY
from market.models import Carrier, OfferStatus, OrderStatus, RuleOrder, Side


def parse_slot(value: object) -> datetime | None:
    """An ISO 8601 date and time with its zone (``Z`` or an offset), in UTC; None if it is
    anything else. A naive time is refused: it would be read in some zone nobody chose."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None or moment.utcoffset() is None:
            return None
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+05:00 is before year 1
        return None


class WholeNumberField(serializers.IntegerField):
    """A JSON integer and nothing else: no string, no float (not even ``5.0``), no boolean.

    Its magnitude is at most 2**53 - 1, the most canonical JSON signs (error code ``unsafe``).
    """

    default_error_messages = {"unsafe": "Beyond what the ledger can sign: +-(2**53 - 1)."}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        if abs(data) > MAX_SAFE_INTEGER:
            self.fail("unsafe")
        value: int = data
        return value


class SlotField(serializers.DateTimeField):
    """A delivery slot's start: ISO 8601 with its zone, e.g. ``2026-01-01T12:15:00Z``."""

    default_error_messages = {"invalid": "An ISO 8601 time with its zone, e.g. ...T12:15:00Z."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("default_timezone", UTC)
        kwargs.setdefault(
            "help_text", "The delivery slot's start, ISO 8601 with its zone (e.g. ...T12:15:00Z)."
        )
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> datetime:
        moment = parse_slot(value)
        if moment is None:
            raise serializers.ValidationError(self.error_messages["invalid"], code="invalid")
        return moment


class AddressField(serializers.CharField):
    """An account address (50 hex with its checksum), or ``""`` where the API allows it."""

    default_error_messages = {"invalid": "Not an account address."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if data:
            try:
                validate_address(data)
            except IdentityError:
                self.fail("invalid")
        value: str = data
        return value


def carrier_field(**kwargs: Any) -> serializers.ChoiceField:
    """A carrier: ``electricity`` or ``heat`` (energy in Wh of its unit: kWh, kWh thermal)."""
    kwargs.setdefault(
        "help_text", "`electricity` (kWh) or `heat` (kWh thermal): energy and prices are of it."
    )
    return serializers.ChoiceField(choices=Carrier.choices, **kwargs)


def carrier_input(
    help_text: str = "`electricity` (the default, kWh) or `heat` (kWh thermal), where the market "
    "trades it (else `bad_carrier`). Energy and price are of this carrier.",
) -> serializers.ChoiceField:
    """An input's carrier (an order's, an offer's, a feeder's), optional: absent is electricity.
    One the market does not trade is refused with ``bad_carrier``."""
    return carrier_field(required=False, default=ELECTRICITY, help_text=help_text)


def utc_datetime(**kwargs: Any) -> serializers.DateTimeField:
    """An output time in UTC whatever the site's display zone (``...Z``)."""
    return serializers.DateTimeField(default_timezone=UTC, **kwargs)


# Not an enum in the schema: drf-spectacular would name a third one-value ``status`` enum by a
# hash (it collides with the ledger's). The pattern says the same thing.
@extend_schema_field({"type": "string", "pattern": "^pending$", "example": "pending"})
class PendingField(serializers.CharField):
    """Always ``"pending"``: sent to the validators, its block not committed yet."""


# --- answers -----------------------------------------------------------------------------------


class RuleReasonSerializer(serializers.Serializer):
    """Why a standing rule placed an order: the reading it saw, scaled to the slot."""

    class Meta:
        ref_name = "MarketRuleReason"

    rule = serializers.IntegerField(source="rule_id", help_text="The standing rule's id.")
    kind = serializers.CharField(source="rule.kind", help_text="sell_surplus or buy_up_to.")
    reading_start = utc_datetime(help_text="The start of the interval the rule saw.")
    reading_s = serializers.IntegerField(help_text="That interval's length, seconds.")
    reading_import_wh = serializers.IntegerField()
    reading_export_wh = serializers.IntegerField()
    forecast_wh = serializers.IntegerField(
        help_text="The slot's forecast surplus (sell) or need (buy): the household's average "
        "for this slot of the day over profile_days recent days or, with no history "
        "(profile_days 0), the interval's net flow times the intervals in a slot."
    )
    profile_days = serializers.IntegerField(
        help_text="Days of the household's own history the forecast averaged; 0: none."
    )
    threshold_wh = serializers.IntegerField(help_text="The rule's Wh (surplus kept / most bought).")
    price = serializers.IntegerField(help_text="The rule's price, minor units per kWh.")


class OrderSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketOrder"

    id = serializers.CharField(help_text="The transaction that placed it (64 hex).")
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    slot = utc_datetime(help_text="Start of the delivery slot.")
    carrier = carrier_field()
    side = serializers.ChoiceField(choices=Side.choices)
    price = serializers.IntegerField(help_text="Minor units per kWh.")
    energy_wh = serializers.IntegerField()
    remaining_wh = serializers.IntegerField(help_text="Not matched yet (or never, once closed).")
    filled_wh = serializers.IntegerField(help_text="Matched into contracts.")
    locked = serializers.IntegerField(help_text="Margin still locked, minor units.")
    height = serializers.IntegerField(help_text="The block that placed it.")
    placed_at = utc_datetime(help_text="That block's time.")
    closed_height = serializers.IntegerField(
        allow_null=True, help_text="The block that filled, cancelled or expired it."
    )
    made_by_rule = serializers.SerializerMethodField(
        help_text="Why a standing rule placed it; null when the household placed it itself."
    )

    @extend_schema_field(RuleReasonSerializer(allow_null=True))
    def get_made_by_rule(self, order: Any) -> dict[str, Any] | None:
        # A list passes the page's reasons in its context (one query); one order looks its up.
        reasons = self.context.get("rule_orders")
        if reasons is None:
            reasons = {
                row.order_id: row
                for row in RuleOrder.objects.filter(order_id=order.id).select_related("rule")
            }
        reason = reasons.get(order.id)
        return RuleReasonSerializer(reason).data if reason is not None else None


class PendingOrderSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketPendingOrder"

    id = serializers.CharField(help_text="The order's id: its transaction's id.")
    status = PendingField()
    slot = utc_datetime()
    side = serializers.ChoiceField(choices=Side.choices)
    carrier = carrier_field()
    energy_wh = serializers.IntegerField()
    price = serializers.IntegerField()


class OfferSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketOffer"

    id = serializers.CharField(help_text="The transaction that posted it (64 hex).")
    status = serializers.ChoiceField(choices=OfferStatus.choices)
    owner = serializers.CharField(help_text="The seller's address.")
    buyer = serializers.CharField(help_text='The one buyer it is made to; "" for anyone.')
    slot = utc_datetime()
    carrier = carrier_field()
    price = serializers.IntegerField(help_text="Minor units per kWh.")
    energy_wh = serializers.IntegerField()
    remaining_wh = serializers.IntegerField()
    locked = serializers.IntegerField(help_text="The seller's deposit still locked, minor units.")
    height = serializers.IntegerField()
    posted_at = utc_datetime()
    closed_height = serializers.IntegerField(allow_null=True)


class PendingOfferSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketPendingOffer"

    id = serializers.CharField(help_text="The offer's id: its transaction's id.")
    status = PendingField()
    slot = utc_datetime()
    carrier = carrier_field()
    energy_wh = serializers.IntegerField()
    price = serializers.IntegerField()
    buyer = serializers.CharField()


class ContractSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketContract"

    id = serializers.CharField(help_text="<slot ms>-<n>; a heat contract's heat-<slot ms>-<n>.")
    kind = serializers.ChoiceField(choices=["order", "auction", "offer"])
    side = serializers.SerializerMethodField(help_text="Your side of it: sell or buy.")
    slot = utc_datetime()
    carrier = carrier_field()
    seller = serializers.CharField()
    buyer = serializers.CharField()
    energy_wh = serializers.IntegerField()
    price = serializers.IntegerField(help_text="Minor units per kWh.")
    network_fee = serializers.IntegerField(help_text="Minor units per kWh, paid by the buyer.")
    penalty_bps = serializers.IntegerField()
    escrow = serializers.IntegerField(help_text="The buyer's money locked for it, minor units.")
    deposit = serializers.IntegerField(help_text="The seller's deposit locked for it.")
    seller_tx = serializers.CharField()
    buyer_tx = serializers.CharField()
    tx = serializers.CharField(help_text="The transaction that made the match.")
    height = serializers.IntegerField()
    made_at = utc_datetime()
    grid = serializers.DictField(
        allow_null=True, help_text="Set when the grid check tailored it: requested_wh, constraint."
    )

    def get_side(self, contract: Any) -> str:
        return "sell" if contract.seller == self.context["address"] else "buy"


class SlotSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketSlot"

    start = utc_datetime()
    end = utc_datetime()
    gate_closure = utc_datetime(help_text="Trading for the slot closes at this time.")
    best_bid = serializers.IntegerField(allow_null=True, help_text="Highest open bid, per kWh.")
    best_ask = serializers.IntegerField(allow_null=True, help_text="Lowest open ask, per kWh.")


class LevelSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketBookLevel"

    price = serializers.IntegerField(help_text="Minor units per kWh.")
    energy_wh = serializers.IntegerField(help_text="Open energy at this price.")
    orders = serializers.IntegerField(help_text="How many open orders make it up.")


class BookSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketBook"

    slot = utc_datetime()
    carrier = carrier_field(help_text="Whose book: each carrier has its own.")
    bids = LevelSerializer(many=True, help_text="Best (highest) first.")
    asks = LevelSerializer(many=True, help_text="Best (lowest) first.")
