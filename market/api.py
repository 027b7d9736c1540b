"""The market's REST API, under /api/v1/: thin views, one method per operation.

Each write validates its body strictly (``market.serializers``: integers are JSON integers, a
slot has its zone), then calls one ``market.services`` action, which signs the transaction with
the user's custodial key, rehearses it and submits it: the answer is ``202`` with the
transaction's id, and the read models show the outcome once its block commits. Reads go through
``market.selectors``, each scoped by who asks. Every error is ``{"code", "message", "detail"?}``
(``gridplatform.api.exception_handler``); the codes are listed per endpoint in the schema and in
docs/market.md, "REST API".
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gridplatform import api
from gridplatform.accounts.models import TRADING_ROLES, User
from gridplatform.api import UNAUTHENTICATED, codes_text, error_response
from gridplatform.errors import DomainError, Forbidden, InvalidInput, NotFoundError
from ledger.projection import ms_of_datetime
from ledger.services import ADMISSION_CODES, SIGNING_CODES, TransactionRejected
from market import rules, selectors, services
from market.chain.options import ELECTRICITY
from market.errors import MESSAGES
from market.models import (
    Carrier,
    Contract,
    Offer,
    OfferStatus,
    Order,
    OrderStatus,
    Side,
    Tariff,
)
from market.serializers import (
    AddressField,
    BookSerializer,
    ContractSerializer,
    OfferSerializer,
    OrderSerializer,
    PendingOfferSerializer,
    PendingOrderSerializer,
    SlotField,
    SlotSerializer,
    WholeNumberField,
    carrier_input,
    parse_slot,
    utc_datetime,
)

TAG = "market"

# The code of a bad field, in a body or a query string (the contract's code where it has one).
FIELD_CODES = {
    "carrier": "bad_carrier",
    "slot": "bad_slot",
    "side": "bad_side",
    "energy_wh": "bad_energy",
    "price": "bad_price",
    "buyer": "bad_address",
    "status": "bad_status",
}
# An integer beyond 2**53 - 1 is out of every bound the market accepts (and cannot be signed).
OUT_OF_BOUNDS = {"energy_wh": "energy_out_of_bounds", "price": "price_out_of_bounds"}


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """``data`` checked in the serializer's order (the order the contract checks them in)."""
    return api.validated(
        serializer_class,
        data,
        messages=MESSAGES,
        field_codes=FIELD_CODES,
        out_of_bounds=OUT_OF_BOUNDS,
    )


# Orders and offers are named by the transaction that made them.
TX_ID = re.compile(r"[0-9a-f]{64}")


def _check_id(id: str, *, code: str | None = None) -> None:
    """Anything but a transaction id is unknown, without a query: a URL can carry what a
    database refuses in a string (PostgreSQL: a NUL)."""
    if not TX_ID.fullmatch(id):
        if code is None:
            raise Http404("Not found.")
        raise NotFoundError(MESSAGES[code], code=code)


def _household(user: User) -> None:
    if user.role not in TRADING_ROLES:
        raise Forbidden(MESSAGES["forbidden"])


def _unknown_is_404(error: TransactionRejected, code: str) -> DomainError:
    """The services' (or the rehearsal's) ``unknown_order``/``unknown_offer`` as a 404."""
    if error.code == code:
        return NotFoundError(MESSAGES[code], code=code)
    return error


def _carrier_of(request: Request) -> str:
    """``?carrier=``: a carrier the market trades (electricity when absent), or ``bad_carrier``."""
    carrier = request.query_params.get("carrier", ELECTRICITY)
    if carrier not in selectors.options().carriers:
        raise InvalidInput(MESSAGES["bad_carrier"], code="bad_carrier")
    return carrier


def _slot_of(text: str, carrier: str = ELECTRICITY) -> datetime:
    """A slot's start in ``carrier``'s slots (heat's may be longer than the market's)."""
    start = parse_slot(text)
    if start is None:
        raise InvalidInput(MESSAGES["bad_slot"], code="bad_slot")
    if ms_of_datetime(start) % selectors.options().carrier(carrier).slot_ms:
        raise InvalidInput(MESSAGES["slot_misaligned"], code="slot_misaligned")
    return start


# --- filters -----------------------------------------------------------------------------------


class SlotFormField(forms.Field):
    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        moment = parse_slot(value)
        if moment is None:
            raise forms.ValidationError(MESSAGES["bad_slot"], code="invalid")
        return moment


@extend_schema_field(
    {
        "type": "string",
        "format": "date-time",
        "description": "The slot's start, ISO 8601 with its zone (`Z`, or `+` as `%2B`).",
    }
)
class SlotFilter(django_filters.Filter):
    """Rows of the slot starting at an ISO 8601 time with its zone."""

    field_class = SlotFormField


class FilterBackend(DjangoFilterBackend):
    """django-filter, with a bad filter value refused by the field's code, like a bad body."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            errors = {name: list(problems) for name, problems in filterset.errors.items()}
            name = next(iter(errors))
            code = FIELD_CODES.get(name, "invalid")
            message = MESSAGES.get(code, f"{name}: {errors[name][0]}")
            raise InvalidInput(message, code=code, detail=errors)
        return filterset.qs


def _carrier_filter() -> django_filters.ChoiceFilter:
    return django_filters.ChoiceFilter(
        choices=Carrier.choices, help_text="`electricity` or `heat`: that carrier's rows only."
    )


class OrderFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    slot = SlotFilter()
    side = django_filters.ChoiceFilter(choices=Side.choices)
    carrier = _carrier_filter()

    class Meta:
        model = Order
        fields = ["status", "slot", "side", "carrier"]


class OfferFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OfferStatus.choices)
    slot = SlotFilter()
    carrier = _carrier_filter()

    class Meta:
        model = Offer
        fields = ["status", "slot", "carrier"]


class TariffFilter(django_filters.FilterSet):
    carrier = _carrier_filter()

    class Meta:
        model = Tariff
        fields = ["carrier"]


class ContractFilter(django_filters.FilterSet):
    carrier = _carrier_filter()

    class Meta:
        model = Contract
        fields = ["carrier"]


# --- the schema's words ------------------------------------------------------------------------


def _codes(*codes: str) -> str:
    return codes_text(MESSAGES, *codes)


FORBIDDEN = error_response("`forbidden`: only households trade.")
QUALIFICATION = (
    "market_suspended",
    "account_restricted",
    "no_feeder",
    "feeder_suspended",
    "too_many_defaults",
)
SLOT_CHECKS = (
    "slot_misaligned",
    "slot_past",
    "slot_closed",
    "beyond_horizon",
    "energy_out_of_bounds",
    "energy_not_in_steps",
    "price_out_of_bounds",
)
SIGNING = (
    "Signing and admission: "
    + ", ".join(f"`{code}`" for code in [*SIGNING_CODES, *ADMISSION_CODES])
    + " (docs/ledger.md)."
)
PENDING = (
    "The transaction is signed with your custodial key, rehearsed on the site's copy of the "
    "ledger (so most refusals come back at once, with the validators' code) and sent to the "
    "validators: **202** means sent, not done. Follow it at "
    "`GET /api/v1/ledger/transactions/{id}`; the read models show the outcome once its block "
    "commits."
)
CARRIERS = (
    "Carriers: `carrier` is `electricity` (the default: leave it out) or `heat`, where the "
    "market trades it (genesis `market.heat`; else `bad_carrier`); energy is in Wh of the "
    "carrier's unit (kWh, kWh thermal) and the price per kWh of it, with the carrier's own "
    "bounds. For heat, `no_feeder` means your connection has no segment of the heating network "
    "yet."
)
ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The id (64 hex).")
CARRIER_QUERY = OpenApiParameter(
    "carrier",
    str,
    OpenApiParameter.QUERY,
    enum=Carrier.values,
    description="`electricity` (the default) or `heat`: whose book (400 `bad_carrier` for "
    "another value, or a carrier the market does not trade).",
)
SLOT_PATH = OpenApiParameter(
    "slot",
    OpenApiTypes.DATETIME,
    OpenApiParameter.PATH,
    description="The slot's start, ISO 8601 with its zone, URL-encoded (`+` as `%2B`).",
)


# --- orders ------------------------------------------------------------------------------------


class OrderListApi(ListAPIView):
    """GET: your orders. POST: place one."""

    serializer_class = OrderSerializer
    filter_backends = [FilterBackend]
    filterset_class = OrderFilter

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOrderPlacement"

        carrier = carrier_input()
        slot = SlotField()
        side = serializers.ChoiceField(choices=Side.choices)
        energy_wh = WholeNumberField(help_text="Energy in Wh, a JSON integer.")
        price = WholeNumberField(help_text="Limit price in minor units per kWh, a JSON integer.")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOrderPlaced"

        order = PendingOrderSerializer()
        transaction = serializers.CharField(help_text="The transaction's id (= the order's).")

    def get_queryset(self) -> QuerySet[Order]:
        return selectors.order_list(user=self.request.user)

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        if args and kwargs.get("many"):  # a page of orders: their rules' reasons in one query
            kwargs["context"] = self.get_serializer_context() | {
                "rule_orders": rules.rule_of_orders(order_ids=[order.id for order in args[0]])
            }
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="market_order_list",
        summary="Your orders, newest first",
        description="Paged (`?limit=`, `?offset=`); filter by `status`, `slot`, `side`, "
        "`carrier`. A bad filter value is a 400: `bad_status`, `bad_slot`, `bad_side`, "
        "`bad_carrier`.",
        responses={
            200: OrderSerializer(many=True),
            400: error_response("`bad_status`, `bad_slot`, `bad_side` or `bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="market_order_place",
        summary="Place a limit order",
        description=PENDING
        + "\n\nRefusals (400), in the order they are checked:\n"
        + _codes("malformed", "bad_carrier", "bad_slot", "bad_side", "bad_energy", "bad_price")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(*SLOT_CHECKS, *QUALIFICATION, "opposite_side_open", "insufficient_free_balance")
        + "\n\n"
        + CARRIERS
        + "\n\n"
        + SIGNING,
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: error_response("A refusal; `code` is one of the codes above."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
        examples=[
            OpenApiExample(
                "A bid",
                value={
                    "slot": "2026-01-01T12:15:00Z",
                    "side": "buy",
                    "energy_wh": 2000,
                    "price": 25,
                },
                request_only=True,
            ),
            OpenApiExample(
                "A bid for heat",
                value={
                    "carrier": "heat",
                    "slot": "2026-01-01T12:15:00Z",
                    "side": "buy",
                    "energy_wh": 5000,
                    "price": 9,
                },
                request_only=True,
            ),
            OpenApiExample(
                "A carrier the market does not trade",
                value={"code": "bad_carrier", "message": MESSAGES["bad_carrier"]},
                response_only=True,
                status_codes=["400"],
            ),
            OpenApiExample(
                "A refusal",
                value={"code": "bad_energy", "message": MESSAGES["bad_energy"]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        _household(request.user)
        data = validated(self.InputSerializer, request.data)
        tx = services.order_place(user=request.user, **data)
        order = {"id": tx.id, "status": "pending", **data}
        body = self.OutputSerializer({"order": order, "transaction": tx.id}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class OrderDetailApi(APIView):
    """GET: one of your orders. DELETE: cancel it."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOrderCancelling"

        order = serializers.CharField()
        transaction = serializers.CharField(help_text="The cancel transaction's id.")

    @extend_schema(
        tags=[TAG],
        operation_id="market_order_get",
        summary="One of your orders",
        description="Once its block has committed; another account's order is a 404.",
        parameters=[ID],
        responses={200: OrderSerializer, 401: UNAUTHENTICATED, 404: error_response("`not_found`.")},
    )
    def get(self, request: Request, id: str) -> Response:
        _check_id(id)
        order = get_object_or_404(selectors.order_list(user=request.user), id=id)
        return Response(OrderSerializer(order).data)

    @extend_schema(
        tags=[TAG],
        operation_id="market_order_cancel",
        summary="Cancel the unmatched rest of one of your open orders",
        description=PENDING
        + "\n\nRefusals: 404 `unknown_order` (not yours, or not open); 400 `slot_past`, "
        "`slot_closed` (after gate closure the rest waits for the slot's clearing). " + SIGNING,
        parameters=[ID],
        request=None,
        responses={
            202: OutputSerializer,
            400: error_response("`slot_past`, `slot_closed`, or a signing or admission code."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: error_response("`unknown_order`."),
        },
    )
    def delete(self, request: Request, id: str) -> Response:
        _household(request.user)
        _check_id(id, code="unknown_order")
        try:
            tx = services.order_cancel(user=request.user, order_id=id)
        except TransactionRejected as error:
            raise _unknown_is_404(error, "unknown_order") from None
        body = self.OutputSerializer({"order": id, "transaction": tx.id}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


# --- slots and books ---------------------------------------------------------------------------


class SlotListApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="market_slot_list",
        summary="The slots open for trading now, with their best bid and ask",
        description="Earliest first: every slot whose gate has not closed, within the "
        "market's horizon. `best_bid`/`best_ask` are of `?carrier=` (electricity by default), "
        "null when that side is empty.",
        parameters=[CARRIER_QUERY],
        responses={
            200: SlotSerializer(many=True),
            400: error_response("`bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request) -> Response:
        slots = selectors.slot_list(carrier=_carrier_of(request))
        return Response(SlotSerializer(slots, many=True).data)


class BookApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="market_book_get",
        summary="A slot's order book of one carrier: price levels, no owners",
        description="Bids best (highest) first, asks best (lowest) first; each level is the "
        "open energy at a price and how many orders make it up. Each carrier has its own "
        "book: `?carrier=heat` for heat's (electricity's by default). Refusals (400): "
        "`bad_slot` (not an ISO 8601 time with its zone), `slot_misaligned` (not a slot's "
        "start), `bad_carrier`.",
        parameters=[SLOT_PATH, CARRIER_QUERY],
        responses={
            200: BookSerializer,
            400: error_response("`bad_slot`, `slot_misaligned` or `bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, slot: str) -> Response:
        carrier = _carrier_of(request)
        book = selectors.book(slot=_slot_of(slot, carrier), carrier=carrier)
        return Response(BookSerializer(book).data)


# --- bilateral offers --------------------------------------------------------------------------


class OfferListApi(ListAPIView):
    """GET: the offers you may see. POST: post one."""

    serializer_class = OfferSerializer
    filter_backends = [FilterBackend]
    filterset_class = OfferFilter

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOfferPosting"

        carrier = carrier_input()
        slot = SlotField()
        energy_wh = WholeNumberField(help_text="Energy in Wh, a JSON integer.")
        price = WholeNumberField(help_text="Minor units per kWh, a JSON integer.")
        buyer = AddressField(
            allow_blank=True,
            help_text='The address of the one buyer it is for; "" for anyone. Required.',
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOfferPosted"

        offer = PendingOfferSerializer()
        transaction = serializers.CharField(help_text="The transaction's id (= the offer's).")

    def get_queryset(self) -> QuerySet[Offer]:
        return selectors.offer_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="market_offer_list",
        summary="Offers you may see",
        description="Your own (any status) and the open ones made to you or to anyone; by "
        "slot, then price. Paged; filter by `status`, `slot`, `carrier` (400 `bad_status`, "
        "`bad_slot`, `bad_carrier`).",
        responses={
            200: OfferSerializer(many=True),
            400: error_response("`bad_status`, `bad_slot` or `bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="market_offer_post",
        summary="Offer energy to one buyer or to anyone",
        description=PENDING
        + "\n\nRefusals (400), in the order they are checked:\n"
        + _codes("malformed", "bad_carrier", "bad_slot", "bad_energy", "bad_price", "bad_address")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(
            *SLOT_CHECKS,
            *QUALIFICATION,
            "unknown_account",
            "own_offer",
            "insufficient_free_balance",
        )
        + "\n\n"
        + CARRIERS
        + "\n\n"
        + SIGNING,
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: error_response("A refusal; `code` is one of the codes above."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
        },
    )
    def post(self, request: Request) -> Response:
        _household(request.user)
        data = validated(self.InputSerializer, request.data)
        tx = services.offer_post(user=request.user, **data)
        offer = {"id": tx.id, "status": "pending", **data}
        body = self.OutputSerializer({"offer": offer, "transaction": tx.id}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class OfferSentSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketOfferTransaction"

    offer = serializers.CharField()
    transaction = serializers.CharField(help_text="The transaction's id.")


class OfferDetailApi(APIView):
    """GET: an offer you may see. DELETE: withdraw one of yours."""

    @extend_schema(
        tags=[TAG],
        operation_id="market_offer_get",
        summary="An offer you may see",
        parameters=[ID],
        responses={200: OfferSerializer, 401: UNAUTHENTICATED, 404: error_response("`not_found`.")},
    )
    def get(self, request: Request, id: str) -> Response:
        _check_id(id)
        offer = get_object_or_404(selectors.offer_list(user=request.user), id=id)
        return Response(OfferSerializer(offer).data)

    @extend_schema(
        tags=[TAG],
        operation_id="market_offer_withdraw",
        summary="Withdraw the rest of one of your open offers",
        description=PENDING
        + "\n\nRefusals: 404 `unknown_offer` (not yours, or not open); 400 `slot_past`, "
        "`slot_closed`. " + SIGNING,
        parameters=[ID],
        request=None,
        responses={
            202: OfferSentSerializer,
            400: error_response("`slot_past`, `slot_closed`, or a signing or admission code."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: error_response("`unknown_offer`."),
        },
    )
    def delete(self, request: Request, id: str) -> Response:
        _household(request.user)
        _check_id(id, code="unknown_offer")
        try:
            tx = services.offer_withdraw(user=request.user, offer_id=id)
        except TransactionRejected as error:
            raise _unknown_is_404(error, "unknown_offer") from None
        body = OfferSentSerializer({"offer": id, "transaction": tx.id}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class OfferAcceptApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketOfferAcceptance"

        energy_wh = WholeNumberField(
            min_value=1, help_text="How much of the offer to take, Wh (a positive JSON integer)."
        )

    @extend_schema(
        tags=[TAG],
        operation_id="market_offer_accept",
        summary="Take all or part of an offer, at its price",
        description=PENDING
        + "\n\nRefusals: 404 `unknown_offer` (no open offer made to you or to anyone); "
        "400, in the order they are checked:\n"
        + _codes("malformed", "bad_energy")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(
            "slot_past",
            "slot_closed",
            "own_offer",
            "not_offered_to_you",
            "exceeds_offer",
            "energy_not_in_steps",
            *QUALIFICATION,
            "grid_refused",
            "insufficient_free_balance",
        )
        + "\n\n"
        + SIGNING,
        parameters=[ID],
        request=InputSerializer,
        responses={
            202: OfferSentSerializer,
            400: error_response("A refusal; `code` is one of the codes above."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: error_response("`unknown_offer`."),
        },
    )
    def post(self, request: Request, id: str) -> Response:
        _household(request.user)
        _check_id(id, code="unknown_offer")
        # Only offers this account may see: another buyer's offer is not even known to exist.
        if not selectors.offer_list(user=request.user).filter(id=id).exists():
            raise NotFoundError(MESSAGES["unknown_offer"], code="unknown_offer")
        data = validated(self.InputSerializer, request.data)
        try:
            tx = services.offer_accept(user=request.user, offer_id=id, **data)
        except TransactionRejected as error:
            raise _unknown_is_404(error, "unknown_offer") from None
        body = OfferSentSerializer({"offer": id, "transaction": tx.id}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


# --- contracts and money -----------------------------------------------------------------------


class ContractListApi(ListAPIView):
    serializer_class = ContractSerializer
    filter_backends = [FilterBackend]
    filterset_class = ContractFilter

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.contract_list(user=self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        return super().get_serializer_context() | {
            "address": selectors.address_of(self.request.user)
        }

    @extend_schema(
        tags=[TAG],
        operation_id="market_contract_list",
        summary="Your contracts, as seller or buyer, newest first",
        description="Paged (`?limit=`, `?offset=`); filter by `carrier` (400 `bad_carrier`). "
        "`side` is your side of each.",
        responses={
            200: ContractSerializer(many=True),
            400: error_response("`bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AccountApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketAccountMoney"

        address = serializers.CharField()
        balance = serializers.IntegerField(help_text="Credits, minor units.")
        locked = serializers.IntegerField(
            help_text="Locked as margins: open orders, offers, contracts."
        )
        free = serializers.IntegerField(help_text="balance - locked: what you may spend or lock.")

    @extend_schema(
        tags=[TAG],
        operation_id="market_account_get",
        summary="Your balance, locked margins and free balance",
        responses={
            200: OutputSerializer,
            401: UNAUTHENTICATED,
            404: error_response(
                "`not_on_ledger`: your account is not registered on the ledger yet."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        money = selectors.money(user=request.user)
        if money is None:
            raise NotFoundError(MESSAGES["not_on_ledger"], code="not_on_ledger")
        data = {
            "address": selectors.address_of(request.user),
            "balance": money.balance,
            "locked": money.locked,
            "free": money.free,
        }
        return Response(self.OutputSerializer(data).data)


class TariffSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MarketTariff"

    class BandSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MarketTariffBand"

        from_minute = serializers.IntegerField(help_text="Minutes after midnight, UTC.")
        retail = serializers.IntegerField(help_text="Minor units per kWh bought from the grid.")
        feed_in = serializers.IntegerField(help_text="Minor units per kWh sold to the grid.")
        network_fee = serializers.IntegerField(help_text="Minor units per kWh bought.")

    carrier = serializers.CharField(
        help_text="`electricity` or `heat`: the carrier it prices, per kWh of its unit "
        "(kWh thermal for heat)."
    )
    from_slot = utc_datetime(
        help_text="In force from this slot until the next tariff's of the same carrier."
    )
    bands = BandSerializer(many=True)
    tx = serializers.CharField(help_text="The publishing transaction.")
    height = serializers.IntegerField()


class TariffListApi(ListAPIView):
    """GET: the supplier of last resort's tariffs, newest first."""

    serializer_class = TariffSerializer
    filter_backends = [FilterBackend]
    filterset_class = TariffFilter

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.tariff_list()

    @extend_schema(
        tags=[TAG],
        operation_id="market_tariff_list",
        summary="The grid operator's tariffs, newest first",
        description="Retail, feed-in and network fee per time-of-use band (minor units per "
        "kWh of the tariff's `carrier`), each in force from `from_slot` until the next one's "
        "of its carrier. Each carrier has its own tariffs: `?carrier=heat` for heat's only "
        "(400 `bad_carrier` for another value). Paged.",
        responses={
            200: TariffSerializer(many=True),
            400: error_response("`bad_carrier`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
