"""The flexibility API's output serializers (``flexibility.api``): the read models as JSON.

Energy in Wh of the carrier's unit, money in integer minor units, prices in minor units per
kWh; times in ISO 8601, UTC.
"""

from __future__ import annotations

from rest_framework import serializers

from market.serializers import utc_datetime


class RequirementSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityRequirement"

    id = serializers.CharField(help_text="The posting transaction's id.")
    owner = serializers.CharField(help_text="The grid operator's address.")
    slot = utc_datetime(help_text="The delivery slot's start.")
    carrier = serializers.CharField(help_text="electricity or heat.")
    feeder = serializers.CharField(help_text="The feeder (or heat segment) it is for.")
    direction = serializers.CharField(help_text="The metered flow to reduce: import or export.")
    energy_wh = serializers.IntegerField(help_text="The most reduction it asks for.")
    price = serializers.IntegerField(help_text="The most it pays, minor units per kWh.")
    remaining_wh = serializers.IntegerField(help_text="Not yet accepted.")
    locked = serializers.IntegerField(help_text="The budget its remainder still locks.")
    status = serializers.CharField(help_text="open, filled or expired.")
    height = serializers.IntegerField(help_text="The block that posted it.")


class AnswerSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityAnswer"

    id = serializers.CharField(help_text="The answering transaction's id.")
    requirement = serializers.CharField(source="requirement_id")
    owner = serializers.CharField(help_text="The household's address.")
    slot = utc_datetime()
    carrier = serializers.CharField()
    energy_wh = serializers.IntegerField(help_text="The reduction it offers.")
    price = serializers.IntegerField(help_text="Its price, minor units per kWh.")
    remaining_wh = serializers.IntegerField(help_text="Not yet accepted.")
    locked = serializers.IntegerField(help_text="The deposit its remainder still locks.")
    baseline_wh = serializers.IntegerField(
        allow_null=True, help_text="The household's baseline for the flow when it answered."
    )
    status = serializers.CharField(help_text="open, taken or expired.")
    height = serializers.IntegerField()


class FlexibilityContractSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityContract"

    id = serializers.CharField(source="contract_id", help_text="The contract's id.")
    slot = utc_datetime(source="contract.slot")
    carrier = serializers.CharField()
    seller = serializers.CharField(source="contract.seller", help_text="The household.")
    buyer = serializers.CharField(source="contract.buyer", help_text="The grid operator.")
    requirement = serializers.CharField()
    answer = serializers.CharField()
    direction = serializers.CharField()
    feeder = serializers.CharField()
    energy_wh = serializers.IntegerField(source="contract.energy_wh")
    price = serializers.IntegerField(source="contract.price")
    baseline_wh = serializers.IntegerField(help_text="What the reduction is measured against.")
    vetoed = serializers.BooleanField(source="contract.vetoed")
    tx = serializers.CharField(source="contract.tx", help_text="The accepting transaction.")
    settled = serializers.BooleanField(help_text="Whether its slot has settled.")
    measured_wh = serializers.IntegerField(
        allow_null=True, help_text="The household's metered flow in the slot."
    )
    delivered_wh = serializers.IntegerField(allow_null=True)
    paid = serializers.IntegerField(allow_null=True, help_text="To the household.")
    penalty = serializers.IntegerField(allow_null=True, help_text="To the grid operator.")


class StoreSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityStore"

    address = serializers.CharField(help_text="The household's address.")
    carrier = serializers.CharField()
    meter = serializers.CharField(help_text="Its battery or thermal_storage meter.")
    capacity_wh = serializers.IntegerField()
    soc_wh = serializers.IntegerField(help_text="The state of charge as of soc_slot.")
    soc_slot = utc_datetime(allow_null=True, help_text="null: as registered.")
    sell_wh = serializers.IntegerField(help_text="Committed to sell in unsettled slots.")
    buy_wh = serializers.IntegerField(help_text="Committed to buy in unsettled slots.")
    can_sell_wh = serializers.IntegerField(help_text="What a new sell order may still be.")
    can_buy_wh = serializers.IntegerField(help_text="What a new buy order may still be.")


class EnrolmentSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityEnrolment"

    carrier = serializers.CharField()
    height = serializers.IntegerField(help_text="The block that enrolled you.")
    enrolled_at = utc_datetime()


class BaselineSerializer(serializers.Serializer):
    class Meta:
        ref_name = "FlexibilityBaseline"

    slot = utc_datetime(source="start")
    carrier = serializers.CharField()
    import_wh = serializers.IntegerField(allow_null=True, help_text="null: no baseline yet.")
    export_wh = serializers.IntegerField(allow_null=True)
