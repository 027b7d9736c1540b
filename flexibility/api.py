"""The REST API of requirements and stores, under /api/v1/flexibility/: thin views, one method
per operation.

Writes check the caller's role (403 ``forbidden``), validate the body strictly (a bad field is a
400 with its code; nothing is signed), then call one ``flexibility.services`` action, which signs
with the caller's custodial key, rehearses and submits: ``202`` with the transaction's type and
id; the read models show the outcome once its block commits. Reads go through
``flexibility.selectors``, scoped by who asks: the grid operator sees everything, a household
the requirements on its feeder or heat segment and its own answers, contracts and store. Every
error is ``{"code", "message", "detail"?}`` (``gridplatform.api.exception_handler``); the codes
are listed per endpoint in the schema and in docs/flexibility.md.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flexibility import selectors, services
from flexibility.errors import MESSAGES
from flexibility.models import AnswerStatus, Direction, RequirementStatus
from flexibility.serializers import (
    AnswerSerializer,
    BaselineSerializer,
    EnrolmentSerializer,
    FlexibilityContractSerializer,
    RequirementSerializer,
    StoreSerializer,
)
from gridplatform import api
from gridplatform.accounts.models import TRADING_ROLES, Role, User
from gridplatform.api import UNAUTHENTICATED, codes_text, error_response
from gridplatform.errors import Forbidden, InvalidInput, NotFoundError
from ledger.services import TransactionRejected
from market.chain.options import ELECTRICITY
from market.models import Carrier
from market.serializers import AddressField, SlotField, WholeNumberField
from supervision.serializers import FeederNameField

TAG = "flexibility"
TX_ID = re.compile(r"[0-9a-f]{64}")
CARRIERS = Carrier.choices  # the market's: one carrier enum in the API schema

FIELD_CODES = {
    "slot": "bad_slot",
    "feeder": "bad_feeder",
    "direction": "bad_direction",
    "energy_wh": "bad_energy",
    "price": "bad_price",
    "carrier": "bad_carrier",
    "address": "bad_address",
    "meter": "unknown_meter",
    "capacity_wh": "bad_capacity",
    "soc_wh": "bad_state_of_charge",
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


def _allow(user: User, role: object) -> None:
    roles = TRADING_ROLES if role == Role.HOUSEHOLD else (role,)
    if user.role not in roles:
        raise Forbidden(MESSAGES["forbidden"])


def _check_id(value: str, code: str) -> None:
    """Anything but a transaction id is unknown, without a query."""
    if not TX_ID.fullmatch(value):
        raise NotFoundError(MESSAGES[code], code=code)


def _unknown_is_404(error: TransactionRejected, code: str) -> Exception:
    return NotFoundError(error.message, code=code) if error.code == code else error


def _status_filter(request: Request, choices: list[str]) -> str | None:
    value = request.query_params.get("status")
    if value is not None and value not in choices:
        raise InvalidInput(MESSAGES["bad_status"], code="bad_status")
    return value


# --- the schema's words --------------------------------------------------------------------------


def _codes(*codes: str) -> str:
    return codes_text(MESSAGES, *codes)


OPERATOR_ONLY = "only the grid operator does this."
HOUSEHOLD_ONLY = "only households do this."
NOT_HOUSEHOLD = error_response(f"`forbidden`: {HOUSEHOLD_ONLY}")
SLOT_CHECKS = (
    "slot_misaligned",
    "slot_past",
    "slot_closed",
    "beyond_horizon",
    "energy_out_of_bounds",
    "energy_not_in_steps",
    "price_out_of_bounds",
)
QUALIFICATION = (
    "market_suspended",
    "account_restricted",
    "no_feeder",
    "feeder_suspended",
    "grid_high_load",
    "grid_unstable",
    "too_many_defaults",
)
ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="The id (64 hex).")
STATUS = OpenApiParameter(
    "status", OpenApiTypes.STR, OpenApiParameter.QUERY, description="Only rows of this status."
)


def _write(
    operation_id: str,
    summary: str,
    request: type[serializers.Serializer] | None,
    refusals: str,
    forbidden: str,
    **extra: Any,
) -> Any:
    return api.signed_write_schema(
        tag=TAG,
        operation_id=operation_id,
        summary=summary,
        request=request,
        refusals=refusals,
        forbidden=forbidden,
        **extra,
    )


# --- requirements --------------------------------------------------------------------------------


class RequirementListApi(ListAPIView):
    """GET: the requirements you may see. POST (grid operator): post one."""

    serializer_class = RequirementSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FlexibilityRequirementPosting"

        slot = SlotField()
        feeder = FeederNameField(help_text="The feeder, or the heat segment for heat.")
        direction = serializers.ChoiceField(choices=Direction.choices)
        energy_wh = WholeNumberField(help_text="The most reduction asked for, Wh.")
        price = WholeNumberField(help_text="The most paid, minor units per kWh.")
        carrier = serializers.ChoiceField(choices=CARRIERS, default=ELECTRICITY)

    def get_queryset(self) -> QuerySet[Any]:
        found = selectors.requirement_list(user=self.request.user).order_by("-slot", "-height")
        wanted = _status_filter(self.request, RequirementStatus.values)
        return found.filter(status=wanted) if wanted else found

    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_requirement_list",
        summary="Requirements: all of them (grid operator), those on your feeder (household)",
        description="Newest slot first, paged; `?status=open|filled|expired` (400 `bad_status`).",
        parameters=[STATUS],
        responses={
            200: RequirementSerializer(many=True),
            400: error_response("`bad_status`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @_write(
        "flexibility_requirement_post",
        "Post a requirement: reduce a flow on a feeder or heat segment in a slot",
        InputSerializer,
        _codes(
            "malformed",
            "bad_slot",
            "bad_feeder",
            "bad_direction",
            "bad_energy",
            "bad_price",
            "bad_carrier",
        )
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(*SLOT_CHECKS, "insufficient_free_balance"),
        OPERATOR_ONLY,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, Role.GRID_OPERATOR)
        data = validated(self.InputSerializer, request.data)
        return api.sent(services.requirement_post(operator=request.user, **data))


class RequirementDetailApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_requirement_get",
        summary="A requirement you may see",
        parameters=[ID],
        responses={
            200: RequirementSerializer,
            401: UNAUTHENTICATED,
            404: error_response("`unknown_requirement`."),
        },
    )
    def get(self, request: Request, id: str) -> Response:
        _check_id(id, "unknown_requirement")
        found = selectors.access_requirement(user=request.user, requirement_id=id)
        return Response(RequirementSerializer(found).data)


class AnswerPostApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FlexibilityAnswerPosting"

        energy_wh = WholeNumberField(help_text="The reduction you offer, Wh.")
        price = WholeNumberField(help_text="Your price, minor units per kWh.")

    @_write(
        "flexibility_answer_post",
        "Answer a requirement on your feeder: the reduction you offer and your price",
        InputSerializer,
        _codes("malformed", "bad_energy", "bad_price")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes(
            "slot_past",
            "slot_closed",
            "energy_out_of_bounds",
            "energy_not_in_steps",
            "price_out_of_bounds",
            "exceeds_requirement",
            "price_above_requirement",
            *QUALIFICATION,
            "not_on_feeder",
            "not_enrolled",
            "no_baseline",
            "exceeds_baseline",
            "insufficient_free_balance",
        ),
        HOUSEHOLD_ONLY,
        parameters=[ID],
        responses={404: error_response("`unknown_requirement` (not open, or not on your feeder).")},
    )
    def post(self, request: Request, id: str) -> Response:
        _allow(request.user, Role.HOUSEHOLD)
        _check_id(id, "unknown_requirement")
        data = validated(self.InputSerializer, request.data)
        try:
            tx = services.answer_post(user=request.user, requirement_id=id, **data)
        except TransactionRejected as error:
            raise _unknown_is_404(error, "unknown_requirement") from None
        return api.sent(tx)


# --- answers -------------------------------------------------------------------------------------


class AnswerListApi(ListAPIView):
    serializer_class = AnswerSerializer

    def get_queryset(self) -> QuerySet[Any]:
        found = selectors.answer_list(user=self.request.user).order_by("-height", "id")
        wanted = _status_filter(self.request, AnswerStatus.values)
        return found.filter(status=wanted) if wanted else found

    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_answer_list",
        summary="Answers: all of them (grid operator), yours (household)",
        description="Newest first, paged; `?status=open|taken|expired` (400 `bad_status`). "
        "`baseline_wh` is the household's baseline for the requirement's flow when it answered.",
        parameters=[STATUS],
        responses={
            200: AnswerSerializer(many=True),
            400: error_response("`bad_status`."),
            401: UNAUTHENTICATED,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AnswerAcceptApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FlexibilityAcceptance"

        energy_wh = WholeNumberField(
            min_value=1, help_text="How much of the answer to accept, Wh (a positive integer)."
        )

    @_write(
        "flexibility_answer_accept",
        "Accept all or part of an answer: a flexibility contract",
        InputSerializer,
        _codes("malformed", "bad_energy")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes("slot_past", "slot_closed", "exceeds_answer", "exceeds_requirement"),
        OPERATOR_ONLY,
        parameters=[ID],
        responses={404: error_response("`unknown_answer` (not open, or its requirement closed).")},
    )
    def post(self, request: Request, id: str) -> Response:
        _allow(request.user, Role.GRID_OPERATOR)
        _check_id(id, "unknown_answer")
        selectors.access_open_answer(user=request.user, answer_id=id)
        data = validated(self.InputSerializer, request.data)
        try:
            tx = services.answer_accept(operator=request.user, answer_id=id, **data)
        except TransactionRejected as error:
            raise _unknown_is_404(error, "unknown_answer") from None
        return api.sent(tx)


# --- enrolment and the baseline ------------------------------------------------------------------


class EnrolmentApi(ListAPIView):
    """GET: the carriers you are enrolled in. POST: enrol in one."""

    serializer_class = EnrolmentSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FlexibilityEnrolling"

        carrier = serializers.ChoiceField(choices=CARRIERS, default=ELECTRICITY)

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.enrolment_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_enrolment_list",
        summary="The carriers you are enrolled in for flexibility",
        responses={200: EnrolmentSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @_write(
        "flexibility_enrol",
        "Enrol for flexibility in a carrier: your baseline starts",
        InputSerializer,
        _codes("malformed", "bad_carrier")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes("already_enrolled"),
        HOUSEHOLD_ONLY,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, Role.HOUSEHOLD)
        data = validated(self.InputSerializer, request.data)
        return api.sent(services.flexibility_enroll(user=request.user, **data))


class BaselineApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_baseline_get",
        summary="Your baseline for the coming slots, per carrier you are enrolled in",
        description="Your metered import and export at each slot's time of day (null: no "
        "baseline yet: you cannot answer for it). What a reduction is measured against.",
        responses={200: BaselineSerializer(many=True), 401: UNAUTHENTICATED, 403: NOT_HOUSEHOLD},
    )
    def get(self, request: Request) -> Response:
        _allow(request.user, Role.HOUSEHOLD)
        rows = selectors.baselines(user=request.user)
        return Response(BaselineSerializer(rows, many=True).data)


# --- contracts and stores ------------------------------------------------------------------------


class ContractListApi(ListAPIView):
    serializer_class = FlexibilityContractSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.contract_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_contract_list",
        summary="Flexibility contracts: all (grid operator), yours (household)",
        description="Newest slot first, paged. Once the slot settled: `measured_wh` (the "
        "household's metered flow), `delivered_wh` (the reduction against `baseline_wh` that "
        "counts), `paid` and `penalty`; null before.",
        responses={200: FlexibilityContractSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class StoreListApi(ListAPIView):
    """GET: the stores you may see. POST (grid operator): register one."""

    serializer_class = StoreSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "FlexibilityStoreRegistration"

        address = AddressField(help_text="The household's address.")
        meter = serializers.CharField(
            max_length=64, help_text="Its battery or thermal_storage meter's id."
        )
        capacity_wh = WholeNumberField(help_text="A positive whole number of Wh.")
        soc_wh = WholeNumberField(help_text="The state of charge now, 0 to the capacity, Wh.")

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.store_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="flexibility_store_list",
        summary="Stores and their state of charge: all (grid operator), yours (household)",
        responses={200: StoreSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @_write(
        "flexibility_store_register",
        "Register (or register again) a household's battery or heat store",
        InputSerializer,
        _codes("malformed", "bad_address", "unknown_meter", "bad_capacity", "bad_state_of_charge")
        + "\n\nthen the validators' (the rehearsal's):\n"
        + _codes("unknown_account", "not_household", "not_storage_meter", "bad_carrier"),
        OPERATOR_ONLY,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, Role.GRID_OPERATOR)
        data = validated(self.InputSerializer, request.data)
        return api.sent(
            services.store_register(
                operator=request.user,
                address=data["address"],
                meter_id=data["meter"],
                capacity_wh=data["capacity_wh"],
                soc_wh=data["soc_wh"],
            )
        )
