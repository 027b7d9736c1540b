"""The REST API of energy sellers, under /api/v1/retail/: thin views, one method per operation.

Only households use it: a household grants, changes and revokes its retailers; a retailer (a
household some household granted) lists its customers and places and cancels orders for them.
Writes validate the body strictly (a bad field is a 400 with its code; nothing is signed), then
call one ``retail.services`` action, which signs with the caller's custodial key, rehearses and
submits: ``202`` with the transaction's type and id. Reads go through ``retail.selectors``,
scoped by who asks. Every error is ``{"code", "message", "detail"?}``; the codes are listed per
endpoint in the schema and in docs/retail.md.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gridplatform import api
from gridplatform.accounts.models import Role, User
from gridplatform.api import UNAUTHENTICATED, codes_text, error_response
from gridplatform.errors import Forbidden, NotFoundError
from ledger.services import TransactionRejected
from market.chain.options import ELECTRICITY
from market.models import Carrier, Side
from market.serializers import AddressField, SlotField, WholeNumberField, utc_datetime
from retail import selectors, services
from retail.errors import MESSAGES

TAG = "retail"
TX_ID = re.compile(r"[0-9a-f]{64}")
CARRIERS = Carrier.choices  # the market's: one carrier enum in the API schema

FIELD_CODES = {
    "retailer": "bad_address",
    "household": "bad_address",
    "carrier": "bad_carrier",
    "max_energy_wh": "bad_grant_limit",
    "max_price": "bad_grant_limit",
    "min_price": "bad_grant_limit",
    "slot": "bad_slot",
    "side": "bad_side",
    "energy_wh": "bad_energy",
    "price": "bad_price",
}
OUT_OF_BOUNDS = {"energy_wh": "energy_out_of_bounds", "price": "price_out_of_bounds"}


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    return api.validated(
        serializer_class,
        data,
        messages=MESSAGES,
        field_codes=FIELD_CODES,
        out_of_bounds=OUT_OF_BOUNDS,
    )


def _household(user: User, role: object = Role.HOUSEHOLD) -> None:
    if user.role != role:
        raise Forbidden(MESSAGES["forbidden"])


class GrantSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RetailGrant"

    household = serializers.CharField(help_text="The household's address.")
    retailer = serializers.CharField(help_text="The retailer's address.")
    carrier = serializers.CharField()
    max_energy_wh = serializers.IntegerField(help_text="The most energy in one order, Wh.")
    max_price = serializers.IntegerField(help_text="The highest buy price, minor units per kWh.")
    min_price = serializers.IntegerField(help_text="The lowest sell price, minor units per kWh.")
    active = serializers.BooleanField(help_text="false: revoked.")
    height = serializers.IntegerField(help_text="The block that gave or last changed it.")
    revoked_height = serializers.IntegerField(allow_null=True)


class PlacedOrderSerializer(serializers.Serializer):
    class Meta:
        ref_name = "RetailOrder"

    id = serializers.CharField(source="order_id", help_text="The order's id.")
    household = serializers.CharField(help_text="Whose order it is.")
    placed_by = serializers.CharField(help_text="The retailer that placed it.")
    carrier = serializers.CharField()
    slot = utc_datetime(source="order.slot")
    side = serializers.CharField(source="order.side")
    price = serializers.IntegerField(source="order.price")
    energy_wh = serializers.IntegerField(source="order.energy_wh")
    remaining_wh = serializers.IntegerField(source="order.remaining_wh")
    status = serializers.CharField(source="order.status")


# --- the schema's words --------------------------------------------------------------------------


def _codes(*codes: str) -> str:
    return codes_text(MESSAGES, *codes)


def _write(operation_id: str, summary: str, request: Any, refusals: str, **extra: Any) -> Any:
    return api.signed_write_schema(
        tag=TAG,
        operation_id=operation_id,
        summary=summary,
        request=request,
        refusals=refusals,
        forbidden="only households do this.",
        **extra,
    )


# --- grants --------------------------------------------------------------------------------------


class GrantListApi(ListAPIView):
    """GET: the grants you gave. POST: grant (or change) a retailer."""

    serializer_class = GrantSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RetailGranting"

        retailer = serializers.CharField(
            max_length=254, help_text="The retailer's address, or the email of its account here."
        )
        max_energy_wh = WholeNumberField(help_text="The most energy in one order, Wh (>= 1).")
        max_price = WholeNumberField(help_text="The highest buy price, minor units per kWh.")
        min_price = WholeNumberField(help_text="The lowest sell price, minor units per kWh.")
        carrier = serializers.ChoiceField(choices=CARRIERS, default=ELECTRICITY)

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.grant_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="retail_grant_list",
        summary="The grants you gave to retailers, active ones first",
        responses={200: GrantSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @_write(
        "retail_grant",
        "Grant (or change) a retailer's right to trade for you in a carrier",
        InputSerializer,
        _codes("malformed", "bad_address", "bad_grant_limit", "bad_carrier", "unknown_retailer")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes("unknown_account", "own_grant"),
    )
    def post(self, request: Request) -> Response:
        _household(request.user)
        data = validated(self.InputSerializer, request.data)
        return api.sent(services.grant_give(user=request.user, **data))


class GrantDetailApi(APIView):
    @_write(
        "retail_grant_revoke",
        "Revoke your grant to a retailer in a carrier",
        None,
        _codes("unknown_grant"),
        parameters=[
            OpenApiParameter("carrier", str, OpenApiParameter.PATH, description="The carrier."),
            OpenApiParameter(
                "retailer", str, OpenApiParameter.PATH, description="The retailer's address."
            ),
        ],
        responses={404: error_response("`unknown_grant`: you have no active grant so.")},
    )
    def delete(self, request: Request, carrier: str, retailer: str) -> Response:
        _household(request.user)
        active = selectors.grant_list(user=request.user).filter(revoked_height__isnull=True)
        if not active.filter(retailer=retailer, carrier=carrier).exists():
            raise NotFoundError(MESSAGES["unknown_grant"], code="unknown_grant")
        return api.sent(
            services.grant_revoke(user=request.user, retailer=retailer, carrier=carrier)
        )


class CustomerListApi(ListAPIView):
    serializer_class = GrantSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.customer_list(user=self.request.user).order_by("household", "carrier")

    @extend_schema(
        tags=[TAG],
        operation_id="retail_customer_list",
        summary="Your customers: the active grants households gave you, with their limits",
        responses={200: GrantSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


# --- orders for customers ------------------------------------------------------------------------


class OrderListApi(ListAPIView):
    """GET: the orders you placed for customers. POST: place one."""

    serializer_class = PlacedOrderSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RetailOrderPlacement"

        household = AddressField(help_text="The customer's address.")
        slot = SlotField()
        side = serializers.ChoiceField(choices=Side.choices)
        energy_wh = WholeNumberField(help_text="Energy in Wh.")
        price = WholeNumberField(help_text="Limit price, minor units per kWh.")
        carrier = serializers.ChoiceField(choices=CARRIERS, default=ELECTRICITY)

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.placed_orders(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="retail_order_list",
        summary="The orders you placed for your customers, newest first",
        responses={200: PlacedOrderSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @_write(
        "retail_order_place",
        "Place a limit order for a customer (it is the customer's order)",
        InputSerializer,
        _codes(
            "malformed",
            "bad_address",
            "bad_slot",
            "bad_side",
            "bad_energy",
            "bad_price",
            "bad_carrier",
            "not_a_customer",
        )
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(
            "slot_misaligned",
            "slot_past",
            "slot_closed",
            "beyond_horizon",
            "energy_out_of_bounds",
            "energy_not_in_steps",
            "price_out_of_bounds",
            "not_retailer",
            "no_grant",
            "exceeds_grant",
            "price_outside_grant",
            "market_suspended",
            "account_restricted",
            "no_feeder",
            "feeder_suspended",
            "too_many_defaults",
            "opposite_side_open",
            "beyond_state_of_charge",
            "insufficient_free_balance",
        ),
    )
    def post(self, request: Request) -> Response:
        _household(request.user, Role.RETAILER)
        data = validated(self.InputSerializer, request.data)
        return api.sent(services.order_place_for(retailer=request.user, **data))


class OrderDetailApi(APIView):
    @_write(
        "retail_order_cancel",
        "Cancel the unmatched rest of an open order you placed for a customer",
        None,
        _codes("unknown_order", "slot_past", "slot_closed"),
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH, description="64 hex.")],
        responses={404: error_response("`unknown_order`: not placed by you, or not open.")},
    )
    def delete(self, request: Request, id: str) -> Response:
        _household(request.user, Role.RETAILER)
        if not TX_ID.fullmatch(id):
            raise NotFoundError(MESSAGES["unknown_order"], code="unknown_order")
        try:
            tx = services.order_cancel_for(retailer=request.user, order_id=id)
        except TransactionRejected as error:
            if error.code == "unknown_order":
                raise NotFoundError(error.message, code="unknown_order") from None
            raise
        return api.sent(tx)
