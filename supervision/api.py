"""Supervision's REST API, under /api/v1/supervision/: thin views, one method per operation.

Writes check the caller's role (403 ``forbidden``), validate the body strictly (400 with the
code the validators would give: ``reason_required``, ``bad_scope``...; nothing is signed), then
call one ``supervision.services`` action, which signs with the caller's custodial key, rehearses
and submits: ``202`` with the transaction's id; the read models show the outcome once its block
commits. Reads go through ``supervision.selectors``, scoped by who asks: households see only the
acts that touched them and their own notifications. Every error is ``{"code", "message",
"detail"?}`` (``gridplatform.api.exception_handler``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gridplatform import api
from gridplatform.accounts.models import Role, User
from gridplatform.api import UNAUTHENTICATED, codes_text, error_response
from gridplatform.errors import Forbidden, InvalidInput, NotFoundError
from ledger.crypto import Transaction
from ledger.services import ADMISSION_CODES, SIGNING_CODES
from market.serializers import AddressField, WholeNumberField, carrier_input
from supervision import selectors, services
from supervision.errors import MESSAGES
from supervision.models import GridState, Notification, ReviewItem, ReviewStatus, SupervisoryAct
from supervision.serializers import (
    CONTRACT_ID,
    ActSerializer,
    AlertAcknowledgementSerializer,
    AlertSerializer,
    ContractIdField,
    FeederLoadingSerializer,
    FeederNameField,
    FeederSerializer,
    GridStateSerializer,
    MomentField,
    NotificationSerializer,
    PendingActSerializer,
    ReasonField,
    ReviewItemSerializer,
    ScopeField,
    SlotStatisticsSerializer,
    SuspensionSerializer,
    is_scope,
)

TAG = "supervision"

REGULATORS = (Role.REGULATOR,)
OPERATORS = (Role.GRID_OPERATOR,)
REVIEWERS = (Role.REGULATOR, Role.ADMIN)
WATCHERS = (Role.REGULATOR, Role.GRID_OPERATOR, Role.ADMIN)
HOUSEHOLDS = (Role.HOUSEHOLD,)
# Who may use an endpoint, for its schema's 403 (the answer's message is the catalogue's).
WHO: dict[tuple[object, ...], str] = {
    REGULATORS: "Only regulators do this.",
    OPERATORS: "Only the grid operator does this.",
    REVIEWERS: "Only regulators and administrators see this.",
    WATCHERS: "Only regulators, the grid operator and administrators see this.",
    HOUSEHOLDS: "Only households have notifications.",
}

# The code of a bad field (the validators' code where they have one).
FIELD_CODES = {
    "type": "bad_type",
    "decision": "bad_decision",
    "contract": "unknown_contract",
    "energy_wh": "bad_energy",
    "reason": "reason_required",
    "scope": "bad_scope",
    "until": "bad_until",
    "address": "bad_address",
    "feeder": "bad_feeder",
    "carrier": "bad_carrier",
    "export_limit_w": "bad_limit",
    "import_limit_w": "bad_limit",
    "state": "bad_state",
    "ids": "bad_ids",
    "status": "bad_status",
    "desk": "bad_desk",
    "fingerprint": "malformed",
}


def _allow(user: User, roles: tuple[object, ...]) -> None:
    if user.role not in roles:
        raise Forbidden(MESSAGES["forbidden"])


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    return api.validated(serializer_class, data, messages=MESSAGES, field_codes=FIELD_CODES)


def _sent(type_: str, tx: Transaction) -> Response:
    body = PendingActSerializer({"type": type_, "transaction": tx.id}).data
    return Response(body, status=status.HTTP_202_ACCEPTED)


# --- the schema's words --------------------------------------------------------------------------


def _codes(*codes: str) -> str:
    return codes_text(MESSAGES, *codes)


SIGNING = (
    "Signing and admission: "
    + ", ".join(f"`{code}`" for code in [*SIGNING_CODES, *ADMISSION_CODES])
    + " (docs/ledger.md)."
)
PENDING = (
    "Signed with your custodial key, rehearsed on the site's copy of the ledger (most refusals "
    "come back at once, with the validators' code) and sent to the validators: **202** means "
    "sent, not done; the read models show the outcome once its block commits."
)
SENT = "Sent: the transaction's type and id."
BAD = error_response("A refusal; `code` is one of the codes above. Nothing was signed or sent.")


def _forbidden(roles: tuple[object, ...]) -> Any:
    return error_response(f"`forbidden`: {WHO[roles]}")


def _read_schema(
    operation_id: str,
    summary: str,
    description: str,
    ok: Any,
    *,
    roles: tuple[object, ...] | None = None,
    refused: Any = None,
    **more: Any,
) -> Any:
    """A read's schema: ``ok`` (200), ``refused`` (400) if any, 401, and 403 for a read only
    ``roles`` may make."""
    responses: dict[int, Any] = {200: ok}
    if refused is not None:
        responses[400] = refused
    responses[401] = UNAUTHENTICATED
    if roles is not None:
        responses[403] = _forbidden(roles)
    return extend_schema(
        tags=[TAG],
        operation_id=operation_id,
        summary=summary,
        description=description,
        responses=responses,
        **more,
    )


def _write_schema(
    operation_id: str,
    summary: str,
    *,
    roles: tuple[object, ...],
    who: str,
    checked: tuple[str, ...],
    rehearsed: tuple[str, ...] = (),
    not_found: Any = None,
    **more: Any,
) -> Any:
    """An act's schema: what ``PENDING`` says, who may send it, the refusals it ``checked``
    before signing and those the rehearsal gives (``rehearsed``); 202, 400, 401, 403 and the
    404 ``not_found`` if any."""
    description = (
        PENDING
        + f"\n\n{who} Refusals (400), in the order they are checked:\n"
        + _codes(*checked)
        + (
            f"\n\nthen the validators' (the rehearsal's):\n{_codes(*rehearsed)}"
            if rehearsed
            else ""
        )
        + "\n\n"
        + SIGNING
    )
    responses: dict[int, Any] = {
        202: PendingActSerializer,
        400: BAD,
        401: UNAUTHENTICATED,
        403: _forbidden(roles),
    }
    if not_found is not None:
        responses[404] = not_found
    return extend_schema(
        tags=[TAG],
        operation_id=operation_id,
        summary=summary,
        description=description,
        responses=responses,
        **more,
    )


PAGED = "Paged (`?limit=`, `?offset=`)"


class _ListApi(ListAPIView):
    """A paged list; only ``roles`` may read it (``None``: any signed-in account)."""

    roles: tuple[object, ...] | None = None

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if self.roles is not None:
            _allow(request.user, self.roles)
        return super().get(request, *args, **kwargs)


def _watchers_api(
    name: str,
    selector: Any,
    output: type[serializers.Serializer],
    operation_id: str,
    summary: str,
    description: str,
) -> type[APIView]:
    """A read-only endpoint of what regulators, the grid operator and administrators watch:
    ``selector(user=)``'s rows, serialized by ``output``, with its schema."""

    def get(self: APIView, request: Request) -> Response:
        _allow(request.user, WATCHERS)
        return Response(output(selector(user=request.user), many=True).data)

    api = type(name, (APIView,), {"get": get, "__module__": __name__})
    schema = _read_schema(
        operation_id,
        summary,
        "Regulators, the grid operator and administrators" + description,
        output(many=True),
        roles=WATCHERS,
    )
    decorated: type[APIView] = extend_schema_view(get=schema)(api)
    return decorated


# --- review --------------------------------------------------------------------------------------


@extend_schema_view(
    get=_read_schema(
        "supervision_review_list",
        "The review queue: contracts that tripped a review rule, oldest first",
        "Regulators and administrators. Rules: `size`, `price`, `defaults`, "
        f"`feeder_load` (thresholds in `SUPERVISION_REVIEW`). {PAGED}; "
        "`?status=` pending (default), cleared, vetoed or curtailed (400 `bad_status`).",
        ReviewItemSerializer(many=True),
        roles=REVIEWERS,
        refused=error_response("`bad_status`."),
        parameters=[
            OpenApiParameter(
                "status", str, enum=ReviewStatus.values, description="Default: pending."
            )
        ],
    )
)
class ReviewListApi(_ListApi):
    serializer_class = ReviewItemSerializer
    roles = REVIEWERS

    def get_queryset(self) -> QuerySet[ReviewItem]:
        wanted = self.request.query_params.get("status", ReviewStatus.PENDING)
        if wanted not in ReviewStatus.values:
            raise InvalidInput(MESSAGES["bad_status"], code="bad_status")
        return selectors.review_queue(user=self.request.user, status=wanted)


class ReviewDecisionApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionReviewDecision"

        decision = serializers.ChoiceField(choices=["clear", "veto", "curtail"])
        reason = ReasonField()
        energy_wh = WholeNumberField(
            required=False, help_text="For `curtail`: the energy that stands, Wh."
        )

    @_write_schema(
        "supervision_review_decide",
        "Decide on a contract under review: clear, veto or curtail it",
        roles=REGULATORS,
        who="Regulators only. 404 `not_under_review` when the contract is not in the queue.",
        checked=("malformed", "bad_decision", "reason_required", "bad_energy"),
        rehearsed=("contract_vetoed", "delivery_started", "not_a_curtailment", "already_cleared"),
        not_found=error_response("`not_under_review`."),
        parameters=[
            OpenApiParameter(
                "contract_id", str, OpenApiParameter.PATH, description="`<slot ms>-<n>`."
            )
        ],
        request=InputSerializer,
        examples=[
            OpenApiExample(
                "A curtailment",
                value={"decision": "curtail", "energy_wh": 1_500, "reason": "feeder at 95 %"},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, contract_id: str) -> Response:
        _allow(request.user, REGULATORS)
        known = CONTRACT_ID.fullmatch(contract_id) is not None  # no query for anything else
        if not known or not ReviewItem.objects.filter(contract_id=contract_id).exists():
            raise NotFoundError(MESSAGES["not_under_review"], code="not_under_review")
        data = validated(self.InputSerializer, request.data)
        if data["decision"] == "curtail" and "energy_wh" not in data:
            raise InvalidInput(MESSAGES["bad_energy"], code="bad_energy")
        tx = services.review_decide(
            regulator=request.user,
            contract_id=contract_id,
            decision=data["decision"],
            reason=data["reason"],
            energy_wh=data.get("energy_wh"),
        )
        return _sent(tx.type, tx)


# --- acts ----------------------------------------------------------------------------------------


class VetoInput(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionVeto"

    type = serializers.ChoiceField(choices=["veto"])
    contract = ContractIdField()
    reason = ReasonField()


class CurtailInput(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionCurtailment"

    type = serializers.ChoiceField(choices=["curtail"])
    contract = ContractIdField()
    energy_wh = WholeNumberField(help_text="The energy that stands, Wh: 1 to the contract's - 1.")
    reason = ReasonField()


class SuspendInput(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionSuspend"

    type = serializers.ChoiceField(choices=["suspend"], required=False)
    scope = ScopeField(whole="market")
    reason = ReasonField()
    until = MomentField(
        required=False, allow_null=True, help_text="Its end, RFC 3339; leave out: until resumed."
    )


class ResumeInput(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionResume"

    type = serializers.ChoiceField(choices=["resume"], required=False)
    scope = ScopeField(whole="market")
    reason = ReasonField()


class AccountActInput(serializers.Serializer):
    class Meta:
        ref_name = "SupervisionAccountAct"

    type = serializers.ChoiceField(choices=["restrict", "reinstate", "defaults_reset"])
    address = AddressField(help_text="The household's address.")
    reason = ReasonField()

    def validate_address(self, value: str) -> str:
        if not value:
            raise serializers.ValidationError("An account address.")
        return value


ACT_INPUTS: dict[str, type[serializers.Serializer]] = {
    "veto": VetoInput,
    "curtail": CurtailInput,
    "suspend": SuspendInput,
    "resume": ResumeInput,
    "restrict": AccountActInput,
    "reinstate": AccountActInput,
    "defaults_reset": AccountActInput,
}
ACCOUNT_SERVICES = {
    "restrict": services.account_restrict,
    "reinstate": services.account_reinstate,
    "defaults_reset": services.defaults_reset,
}


def _act(user: User, data: dict[str, Any]) -> Transaction:
    """One regulator's act, by the body's ``type``."""
    match data["type"]:
        case "veto":
            return services.contract_veto(
                regulator=user, contract_id=data["contract"], reason=data["reason"]
            )
        case "curtail":
            return services.contract_curtail(
                regulator=user,
                contract_id=data["contract"],
                energy_wh=data["energy_wh"],
                reason=data["reason"],
            )
        case "suspend":
            return services.trading_suspend(
                regulator=user, scope=data["scope"], reason=data["reason"], until=data.get("until")
            )
        case "resume":
            return services.trading_resume(
                regulator=user, scope=data["scope"], reason=data["reason"]
            )
    return ACCOUNT_SERVICES[data["type"]](
        regulator=user, address=data["address"], reason=data["reason"]
    )


@extend_schema_view(
    get=_read_schema(
        "supervision_act_list",
        "The audit log of supervisory acts, newest first",
        "Every act that succeeded: who, when (its block), why. Regulators, the "
        "grid operator and administrators see all of them; a household sees the acts on its "
        "contracts and account, and the suspensions and declarations of the whole market or "
        f"grid and of its feeder. {PAGED}.",
        ActSerializer(many=True),
    )
)
class ActListApi(_ListApi):
    """GET: the audit log (households: what touched them). POST: a regulator's act."""

    serializer_class = ActSerializer

    def get_queryset(self) -> QuerySet[SupervisoryAct]:
        return selectors.acts(user=self.request.user)

    @_write_schema(
        "supervision_act_send",
        "A regulator's act: veto, curtail, suspend, resume, restrict, reinstate, defaults_reset",
        roles=REGULATORS,
        who="Regulators only. The body's `type` says which act; each has its fields.",
        checked=(
            "malformed",
            "bad_type",
            "unknown_contract",
            "bad_energy",
            "bad_scope",
            "bad_address",
            "reason_required",
            "bad_until",
        ),
        rehearsed=(
            "unknown_contract",
            "contract_vetoed",
            "delivery_started",
            "not_a_curtailment",
            "unknown_feeder",
            "bad_until",
            "already_suspended",
            "not_suspended",
            "unknown_account",
            "not_household",
            "already_restricted",
            "not_restricted",
            "no_defaults",
        ),
        request=PolymorphicProxySerializer(
            component_name="SupervisionActRequest",
            serializers=ACT_INPUTS,
            resource_type_field_name="type",
        ),
        examples=[
            OpenApiExample(
                "A veto",
                value={"type": "veto", "contract": "1767261600000-0", "reason": "wash trade"},
                request_only=True,
            ),
            OpenApiExample(
                "A refusal",
                value={"code": "delivery_started", "message": MESSAGES["delivery_started"]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, REGULATORS)
        if not isinstance(request.data, dict):
            raise InvalidInput(MESSAGES["malformed"], code="malformed")
        kind = request.data.get("type")
        if not isinstance(kind, str) or kind not in ACT_INPUTS:
            raise InvalidInput(MESSAGES["bad_type"], code="bad_type")
        data = validated(ACT_INPUTS[kind], request.data)
        tx = _act(request.user, data)
        return _sent(tx.type, tx)


# --- suspensions ---------------------------------------------------------------------------------


class SuspensionListApi(APIView):
    @_read_schema(
        "supervision_suspension_list",
        "Suspensions of trading in force",
        "Any signed-in account: the whole market (`market`) or one feeder "
        "(`feeder:<name>`), with the reason and the end (null: until resumed).",
        SuspensionSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = selectors.suspensions_in_force()
        return Response(SuspensionSerializer(rows, many=True).data)

    @_write_schema(
        "supervision_suspension_create",
        "Suspend trading in the whole market or on one feeder",
        roles=REGULATORS,
        who="Regulators only.",
        checked=("malformed", "bad_scope", "reason_required", "bad_until"),
        rehearsed=("unknown_feeder", "bad_until", "already_suspended"),
        request=SuspendInput,
        examples=[
            OpenApiExample(
                "A feeder until 18:00",
                value={
                    "scope": "feeder:f1",
                    "reason": "storm damage",
                    "until": "2026-01-01T18:00:00Z",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, REGULATORS)
        data = validated(SuspendInput, request.data)
        tx = services.trading_suspend(
            regulator=request.user,
            scope=data["scope"],
            reason=data["reason"],
            until=data.get("until"),
        )
        return _sent(tx.type, tx)


class SuspensionResumeApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionResumeReason"

        reason = ReasonField()

    @_write_schema(
        "supervision_suspension_resume",
        "End a suspension",
        roles=REGULATORS,
        who="Regulators only.",
        checked=("bad_scope", "malformed", "reason_required"),
        rehearsed=("unknown_feeder", "not_suspended"),
        parameters=[
            OpenApiParameter(
                "scope", str, OpenApiParameter.PATH, description="`market` or `feeder:<name>`."
            )
        ],
        request=InputSerializer,
    )
    def post(self, request: Request, scope: str) -> Response:
        _allow(request.user, REGULATORS)
        if not is_scope(scope, whole="market"):
            raise InvalidInput(MESSAGES["bad_scope"], code="bad_scope")
        data = validated(self.InputSerializer, request.data)
        tx = services.trading_resume(regulator=request.user, scope=scope, reason=data["reason"])
        return _sent(tx.type, tx)


# --- the grid operator's -------------------------------------------------------------------------


class TopologyApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionFeederPublication"

        feeder = FeederNameField(help_text="1-64 of `[a-z0-9._-]`.")
        export_limit_w = WholeNumberField(min_value=0, help_text="W, a JSON integer >= 0.")
        import_limit_w = WholeNumberField(min_value=0, help_text="W, a JSON integer >= 0.")
        carrier = carrier_input(
            help_text="`electricity` (the default: a feeder) or `heat` (a segment of the "
            "heating network, limits in W thermal), where the market trades it. Feeders and "
            "segments share one namespace of names."
        )

    @_read_schema(
        "supervision_topology_list",
        "The published feeders and heat segments, with their limits and declared state",
        "Any signed-in account. A slot lets a feeder carry `limit_w * slot length "
        "/ 1 h` Wh each way (a heat segment's `carrier` is `heat`: W and Wh thermal); matches "
        "are tailored to what is left.",
        FeederSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        return Response(FeederSerializer(selectors.topology(), many=True).data)

    @_write_schema(
        "supervision_topology_publish",
        "Publish a feeder or a heat segment, or change its limits",
        roles=OPERATORS,
        who="The grid operator only.",
        checked=("malformed", "bad_feeder", "bad_limit", "bad_carrier"),
        rehearsed=("bad_carrier", "carrier_mismatch"),
        request=InputSerializer,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, OPERATORS)
        data = validated(self.InputSerializer, request.data)
        tx = services.feeder_publish(operator=request.user, **data)
        return _sent(tx.type, tx)


# The grid's answer when the grid operator has declared nothing.
UNDECLARED = {"state": "normal", "reason": "", "by": "", "tx": "", "height": None, "since": None}


class GridStateApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionGridStateDeclaration"

        scope = ScopeField(whole="grid")
        state = serializers.ChoiceField(choices=GridState.choices)
        reason = ReasonField()

    @_read_schema(
        "supervision_grid_state_get",
        "The grid's declared state and each feeder's",
        "Any signed-in account. While the grid or a feeder is not `normal`, new "
        "trading there is refused (`grid_high_load`, `grid_unstable`).",
        GridStateSerializer,
    )
    def get(self, request: Request) -> Response:
        declared = selectors.grid_declaration()
        grid = (
            dict(UNDECLARED)
            if declared is None
            else {name: getattr(declared, name) for name in UNDECLARED}
        )
        feeders = [
            {
                "feeder": feeder.name,
                "state": feeder.state,
                "reason": feeder.state_reason,
                "since": feeder.state_since,
            }
            for feeder in selectors.topology()
        ]
        return Response(GridStateSerializer({"grid": grid, "feeders": feeders}).data)

    @_write_schema(
        "supervision_grid_state_declare",
        "Declare the grid or a feeder normal, under high load or unstable",
        roles=OPERATORS,
        who="The grid operator only.",
        checked=("malformed", "bad_scope", "bad_state", "reason_required"),
        rehearsed=("unknown_feeder", "no_change"),
        request=InputSerializer,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, OPERATORS)
        data = validated(self.InputSerializer, request.data)
        tx = services.grid_state_declare(operator=request.user, **data)
        return _sent(tx.type, tx)


# --- what the watchers see -----------------------------------------------------------------------


StatisticsApi = _watchers_api(
    "StatisticsApi",
    selectors.slot_statistics,
    SlotStatisticsSerializer,
    "supervision_statistics",
    "Per slot: contracts, volume, median price and the sellers' shares",
    ". The latest 24 slots with contracts, newest first; vetoed contracts are left out. "
    "`alert`: a seller holds more than the share threshold "
    "(`SUPERVISION_REVIEW['seller_share_bps']`).",
)
FeederLoadingApi = _watchers_api(
    "FeederLoadingApi",
    selectors.feeder_loading,
    FeederLoadingSerializer,
    "supervision_feeder_loading",
    "Each published feeder's load against its capacity, per slot",
    ". The latest 12 slots with load, newest first. `alert`: a direction at 80 % of capacity "
    "or more.",
)
DESK_PARAMETER = OpenApiParameter(
    "desk",
    str,
    enum=list(selectors.DESK_ROLES),
    description="Whose acknowledgements: `operator` (the grid operator and administrators) or "
    "`regulator` (regulators and administrators). Default: your own console's (an "
    "administrator's: `operator`).",
)


def _desk(user: User, desk: object) -> str:
    """The desk ``user`` asks about or acts for: 400 ``bad_desk`` for no such desk, 403
    ``forbidden`` for one it does not work at."""
    if desk is not None and desk not in selectors.DESK_ROLES:
        raise InvalidInput(MESSAGES["bad_desk"], code="bad_desk")
    try:
        return selectors.desk_for(user=user, desk=desk if isinstance(desk, str) else None)
    except PermissionDenied as error:
        raise Forbidden(MESSAGES["forbidden"]) from error


class AlertListApi(APIView):
    @_read_schema(
        "supervision_alert_list",
        "What needs attention now, each alert once, open or acknowledged",
        "Regulators, the grid operator and administrators: suspensions in force, the grid or "
        "feeders declared not normal, and, over the slots not yet ended, each feeder and "
        "direction at 80 % of capacity or more and each seller above the share threshold, one "
        "alert however many slots (`slot`: the earliest, `slots`: how many). `acknowledged`: "
        "at the desk of `?desk=`; an alert re-opens when it gets worse or comes back. "
        "Refusals: `bad_desk` (400), `forbidden` (403) for a desk not yours.",
        AlertSerializer(many=True),
        roles=WATCHERS,
        refused=error_response("`bad_desk`."),
        parameters=[DESK_PARAMETER],
    )
    def get(self, request: Request) -> Response:
        _allow(request.user, WATCHERS)
        desk = _desk(request.user, request.query_params.get("desk"))
        inbox = selectors.alert_inbox(user=request.user, desk=desk)
        rows = []
        for item in inbox.items:
            acknowledgement = item.acknowledgement
            rows.append(
                {
                    **asdict(item.alert),
                    "acknowledged": acknowledgement is not None,
                    "acknowledged_by": acknowledgement.by.name if acknowledgement else None,
                    "acknowledged_at": acknowledgement.at if acknowledgement else None,
                }
            )
        return Response(AlertSerializer(rows, many=True).data)


class AlertAcknowledgeApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionAlertAcknowledge"

        desk = serializers.CharField(
            required=False,
            help_text="`operator` or `regulator`; leave out: your own console's.",
        )
        fingerprint = serializers.CharField(
            required=False,
            max_length=128,
            help_text="The fingerprint you read: refused (`alert_changed`) if the alert has "
            "changed since.",
        )

    @extend_schema(
        tags=[TAG],
        operation_id="supervision_alert_acknowledge",
        summary="Acknowledge an alert for your desk",
        description="Regulators, the grid operator and administrators. Records who "
        "acknowledged the alert `key` and when, for the desk (site data: nothing is signed, "
        "the ledger is not touched). It is listed as acknowledged until it gets worse (more "
        "slots, a higher level) or comes back (a new suspension or declaration; slots after "
        "every slot acknowledged ended). Refusals, in the order they are checked: "
        + _codes("malformed", "bad_desk", "unknown_alert", "alert_changed", "alert_acknowledged")
        + ".",
        parameters=[
            OpenApiParameter("key", str, OpenApiParameter.PATH, description="The alert's `key`.")
        ],
        request=InputSerializer,
        responses={
            201: AlertAcknowledgementSerializer,
            400: error_response(
                "`malformed`, `bad_desk`, `alert_changed` or `alert_acknowledged`; nothing saved."
            ),
            401: UNAUTHENTICATED,
            403: _forbidden(WATCHERS),
            404: error_response("`unknown_alert`: no alert has that key now."),
        },
    )
    def post(self, request: Request, key: str) -> Response:
        _allow(request.user, WATCHERS)
        data = validated(self.InputSerializer, request.data)
        desk = _desk(request.user, data.get("desk"))
        acknowledgement = services.alert_acknowledge(
            user=request.user, desk=desk, key=key, fingerprint=data.get("fingerprint")
        )
        body = AlertAcknowledgementSerializer(
            {
                "key": acknowledgement.key,
                "desk": acknowledgement.desk,
                "fingerprint": acknowledgement.fingerprint,
                "text": acknowledgement.text,
                "by": request.user.name,
                "at": acknowledgement.at,
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


# --- notifications -------------------------------------------------------------------------------


@extend_schema_view(
    get=_read_schema(
        "supervision_notification_list",
        "Your notifications: supervisory acts that touched you, and why",
        "Households. Newest first, paged (`?limit=`, `?offset=`).",
        NotificationSerializer(many=True),
        roles=HOUSEHOLDS,
    )
)
class NotificationListApi(_ListApi):
    serializer_class = NotificationSerializer
    roles = HOUSEHOLDS

    def get_queryset(self) -> QuerySet[Notification]:
        return selectors.notifications(user=self.request.user)


class NotificationReadApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionNotificationsRead"

        ids = serializers.ListField(
            child=WholeNumberField(),
            required=False,
            max_length=1_000,
            help_text="Which to mark read; leave out for all of them.",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "SupervisionNotificationsMarked"

        marked = serializers.IntegerField(help_text="How many were unread and now are read.")

    @_read_schema(
        "supervision_notification_read",
        "Mark your notifications read",
        "Households. Ids that are not yours are passed over. Refusals (400): "
        "`malformed`, `bad_ids`.",
        OutputSerializer,
        roles=HOUSEHOLDS,
        refused=error_response("`malformed` or `bad_ids`."),
        request=InputSerializer,
    )
    def post(self, request: Request) -> Response:
        _allow(request.user, HOUSEHOLDS)
        data = validated(self.InputSerializer, request.data)
        marked = services.notifications_mark_read(user=request.user, ids=data.get("ids"))
        return Response(self.OutputSerializer({"marked": marked}).data)
