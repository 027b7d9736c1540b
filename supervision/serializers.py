"""Supervision API's fields and output serializers (``supervision.api``).

Input is parsed strictly, as in the market's API (``market.serializers``): amounts are JSON
integers, times RFC 3339 with their zone. Energy in Wh, limits in W, times go out in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rest_framework import serializers

from market.serializers import carrier_field, parse_slot, utc_datetime
from supervision.chain.grid import MAX_REASON
from supervision.models import GridState, ReviewStatus

FEEDER_NAME = re.compile(r"[a-z0-9._-]{1,64}")
CONTRACT_ID = re.compile(r"[0-9]{1,16}-[0-9]{1,10}")


class ReasonField(serializers.CharField):
    """Why: 1-500 characters, not only spaces (``supervision.chain.acts``: ``reason_required``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_REASON)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("help_text", "Why: 1-500 characters, recorded with the act.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value: str = super().to_internal_value(data)
        if not value.strip():
            self.fail("blank")
        return value


def is_scope(value: object, *, whole: str) -> bool:
    """``whole`` (``market`` or ``grid``) or ``feeder:<name>`` with a well-formed name."""
    if value == whole:
        return True
    return (
        isinstance(value, str)
        and value.startswith("feeder:")
        and FEEDER_NAME.fullmatch(value[len("feeder:") :]) is not None
    )


class ScopeField(serializers.CharField):
    """``market`` (or ``grid``) or ``feeder:<name>``."""

    default_error_messages = {"invalid": "'{whole}' or 'feeder:<name>'."}

    def __init__(self, *, whole: str, **kwargs: Any) -> None:
        self.whole = whole
        kwargs.setdefault("help_text", f"`{whole}`, or `feeder:<name>` for one feeder.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not is_scope(data, whole=self.whole):
            self.fail("invalid", whole=self.whole)
        value: str = data
        return value


class FeederNameField(serializers.CharField):
    """A feeder's name: 1-64 of ``[a-z0-9._-]``."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or FEEDER_NAME.fullmatch(data) is None:
            self.fail("invalid")
        value: str = data
        return value


class ContractIdField(serializers.CharField):
    """A contract's id, ``<slot ms>-<n>``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "The contract's id, `<slot ms>-<n>`.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or CONTRACT_ID.fullmatch(data) is None:
            self.fail("invalid")
        value: str = data
        return value


class MomentField(serializers.DateTimeField):
    """An RFC 3339 time with its zone, e.g. ``2026-01-01T18:00:00Z``."""

    def to_internal_value(self, value: Any) -> datetime:
        moment = parse_slot(value)
        if moment is None:
            raise serializers.ValidationError("An RFC 3339 time with its zone.", code="invalid")
        return moment


# --- answers -------------------------------------------------------------------------------------


class ReviewContractSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionReviewContract"

    id = serializers.CharField()
    kind = serializers.CharField()
    slot = utc_datetime()
    carrier = carrier_field()
    seller = serializers.CharField()
    buyer = serializers.CharField()
    energy_wh = serializers.IntegerField(help_text="What stands now (after any curtailment).")
    price = serializers.IntegerField(help_text="Minor units per kWh.")
    vetoed = serializers.BooleanField()
    grid = serializers.DictField(allow_null=True, help_text="Set when the grid check tailored it.")
    made_at = utc_datetime()


class RuleSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionReviewRule"

    rule = serializers.ChoiceField(choices=["size", "price", "defaults", "feeder_load"])
    detail = serializers.CharField()


class ReviewItemSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionReviewItem"

    contract = ReviewContractSerializer()
    rules = RuleSerializer(many=True, help_text="The review rules it tripped.")
    status = serializers.ChoiceField(choices=ReviewStatus.choices)
    decided_by = serializers.CharField(help_text='The deciding act\'s transaction; "" if none.')
    flagged_height = serializers.IntegerField(help_text="The block that made it.")


class ActSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionAct"

    tx = serializers.CharField(help_text="The act's transaction (64 hex).")
    type = serializers.CharField(help_text="`supervision.*`, `grid.feeder.publish`, ...")
    actor = serializers.CharField(help_text="Who signed it.")
    actor_role = serializers.CharField(help_text="`regulator` or `grid_operator`.")
    reason = serializers.CharField()
    contract = serializers.CharField(help_text='The contract it acts on, or "".')
    address = serializers.CharField(help_text='The account it acts on, or "".')
    scope = serializers.CharField(help_text='`market`, `grid`, `feeder:<name>`, or "".')
    payload = serializers.DictField(help_text="The signed payload.")
    affected = serializers.ListField(
        child=serializers.CharField(), help_text="Households whose contracts or account it touched."
    )
    height = serializers.IntegerField()
    at = utc_datetime(help_text="Its block's time.")


class SuspensionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionSuspension"

    scope = serializers.CharField(help_text="`market` or `feeder:<name>`.")
    reason = serializers.CharField()
    by = serializers.CharField(help_text="The regulator's address.")
    until = utc_datetime(allow_null=True, help_text="Its end; null: until resumed.")
    tx = serializers.CharField()
    height = serializers.IntegerField()
    since = utc_datetime()


class FeederSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionFeeder"

    name = serializers.CharField()
    carrier = carrier_field(
        help_text="`electricity`: a feeder; `heat`: a heat segment (W thermal)."
    )
    export_limit_w = serializers.IntegerField()
    import_limit_w = serializers.IntegerField()
    published_height = serializers.IntegerField()
    published_at = utc_datetime()
    state = serializers.ChoiceField(choices=GridState.choices)
    state_reason = serializers.CharField()
    state_since = utc_datetime(allow_null=True)


class GridDeclarationSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionGridDeclaration"

    state = serializers.ChoiceField(choices=GridState.choices)
    reason = serializers.CharField()
    by = serializers.CharField(allow_blank=True)
    tx = serializers.CharField(allow_blank=True)
    height = serializers.IntegerField(allow_null=True)
    since = utc_datetime(allow_null=True)


class FeederStateSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionFeederState"

    feeder = serializers.CharField()
    state = serializers.ChoiceField(choices=GridState.choices)
    reason = serializers.CharField()
    since = utc_datetime(allow_null=True)


class GridStateSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionGridState"

    grid = GridDeclarationSerializer(help_text="The whole grid; `normal` with no declaration.")
    feeders = FeederStateSerializer(many=True)


class SellerShareSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionSellerShare"

    seller = serializers.CharField()
    name = serializers.CharField(help_text='The seller\'s name on the site, or "".')
    energy_wh = serializers.IntegerField()
    share_bps = serializers.IntegerField(help_text="Of the slot's volume, basis points.")


class SlotStatisticsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionSlotStatistics"

    slot = utc_datetime()
    carrier = carrier_field(help_text="Each carrier's contracts of a slot are a row of their own.")
    contracts = serializers.IntegerField()
    volume_wh = serializers.IntegerField(help_text="Wh of the row's carrier (thermal for heat).")
    median_price = serializers.IntegerField(help_text="Minor units per kWh.")
    shares = SellerShareSerializer(many=True, help_text="Largest first.")
    alert = serializers.BooleanField(help_text="A seller holds more than the share threshold.")


class FeederLoadingSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionFeederLoading"

    feeder = serializers.CharField()
    carrier = carrier_field(help_text="A heat segment's loads and capacities are Wh thermal.")
    slot = utc_datetime()
    export_wh = serializers.IntegerField()
    import_wh = serializers.IntegerField()
    export_capacity_wh = serializers.IntegerField()
    import_capacity_wh = serializers.IntegerField()
    export_pct = serializers.IntegerField(help_text="Of capacity, rounded down.")
    import_pct = serializers.IntegerField()
    alert = serializers.BooleanField(help_text="Either way at the threshold (80 %) or above.")


class AlertSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionAlert"

    kind = serializers.ChoiceField(
        choices=["suspension", "grid_state", "feeder_load", "seller_share"]
    )
    text = serializers.CharField()
    slot = utc_datetime(allow_null=True, help_text="The earliest upcoming slot it concerns.")
    feeder = serializers.CharField(help_text='The feeder concerned, or "".')
    key = serializers.CharField(
        help_text="Its subject, stable while it lasts: `suspension:<scope>`, "
        "`grid_state:<scope>`, `feeder_load:<feeder>:<export|import>`, `seller_share:<address>`."
    )
    fingerprint = serializers.CharField(
        help_text='How it stands: `"<slots>:<level>"` for the slot alerts, else its occurrence.'
    )
    slots = serializers.IntegerField(help_text="How many upcoming slots it concerns; 0: none.")
    last_slot = utc_datetime(allow_null=True, help_text="The latest of them.")
    level = serializers.IntegerField(
        help_text="The peak load or share in 10 % steps (9: 90-99 %); a declared state's: 1 "
        "high load, 2 unstable; 0 otherwise."
    )
    acknowledged = serializers.BooleanField(
        help_text="Acknowledged at the desk asked about (false: open, or re-opened)."
    )
    acknowledged_by = serializers.CharField(
        allow_null=True, help_text="Who acknowledged it (the name), or null while open."
    )
    acknowledged_at = utc_datetime(allow_null=True)


class AlertAcknowledgementSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionAlertAcknowledgement"

    key = serializers.CharField()
    desk = serializers.ChoiceField(choices=["operator", "regulator"])
    fingerprint = serializers.CharField(help_text="What the acknowledgement covers.")
    text = serializers.CharField(help_text="The alert as it was acknowledged.")
    by = serializers.CharField(help_text="Who acknowledged it (the name).")
    at = utc_datetime()


class NotificationSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionNotification"

    id = serializers.IntegerField()
    act = serializers.CharField(help_text="The act's transaction.")
    message = serializers.CharField()
    read = serializers.BooleanField()
    created_at = utc_datetime()


class PendingActSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionPendingAct"

    type = serializers.CharField(help_text="The transaction's type.")
    transaction = serializers.CharField(help_text="The transaction's id.")
