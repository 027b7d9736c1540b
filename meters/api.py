"""The meters' REST API, under /api/v1/meters: thin views, one method per operation.

Two kinds of caller. Accounts (``Authorization: Token <token>`` or a session) register meters,
rotate and revoke their tokens and read readings, each scoped by who asks
(``meters.selectors``). Meters send readings, with their own token (``Authorization: Meter
<token>``, ``meters.authentication``) and a signature over the exact body
(``X-Meter-Signature``, ``meters.signing``), throttled per meter (scope ``meter``). Every error
is ``{"code", "message", "detail"?}`` (``gridplatform.api.exception_handler``); the codes are
listed per endpoint in the schema and in docs/meters.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from gridplatform import api
from gridplatform.accounts.models import Identity, User
from gridplatform.api import UNAUTHENTICATED, codes_text, error_response
from gridplatform.errors import InvalidInput
from gridplatform.throttling import AtomicRateMixin
from ledger import identity
from meters import readings as batch_rules
from meters import selectors, services, signing
from meters.authentication import MeterTokenAuthentication
from meters.errors import MESSAGES
from meters.models import INTERVALS, Meter, MeterKind, Quality, Reading

TAG = "meters"
EXAMPLE_PUBLIC_KEY = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"


# The code of a bad field of a registration (the service's codes, for the same checks).
FIELD_CODES = {
    "owner": "bad_address",
    "meter_id": "bad_meter_id",
    "kind": "bad_kind",
    "public_key": "bad_public_key",
    "feeder": "bad_feeder",
    "interval_s": "bad_interval",
}


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    return api.validated(
        serializer_class, data, messages=MESSAGES, field_codes=FIELD_CODES, fallback="malformed"
    )


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no string, no float (not even ``900.0``), no boolean."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        value: int = super().to_internal_value(data)
        return value


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: ``5`` is not ``"5"``."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value: str = super().to_internal_value(data)
        return value


def _time_param(request: Request, name: str) -> datetime | None:
    """A query parameter holding an ISO 8601 / RFC 3339 time with its zone, or None when
    absent. A ``+`` of an offset that was not URL-encoded arrives as a space: read as ``+``."""
    value = request.query_params.get(name)
    if not value:
        return None
    moment = None
    if len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value.replace(" ", "+"))
        except ValueError:
            pass
    if moment is None or moment.utcoffset() is None:
        raise InvalidInput(MESSAGES["bad_time"], code="bad_time", detail={name: [value[:64]]})
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before year 1
        raise InvalidInput(MESSAGES["bad_time"], code="bad_time", detail={name: [value]}) from None


# --- the schema's words ------------------------------------------------------------------------


def _codes(*codes: str) -> str:
    return codes_text(MESSAGES, *codes)


NOT_FOUND = error_response("`not_found`: no such meter, or not one you may see.")
FORBIDDEN = error_response(
    "`forbidden`: only the meter's household or the grid operator may do this."
)
METER_ID = OpenApiParameter(
    "meter_id", str, OpenApiParameter.PATH, description="The meter's id (a lowercase slug)."
)


# --- output ------------------------------------------------------------------------------------


class ActiveTokenSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MeterActiveToken"

    prefix = serializers.CharField(help_text="The token's first 8 characters.")
    created_at = serializers.DateTimeField()


class MeterSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Meter"

    meter_id = serializers.CharField()
    owner = serializers.SerializerMethodField(help_text="The owner's account address.")
    kind = serializers.ChoiceField(choices=MeterKind.choices)
    carrier = serializers.CharField(
        read_only=True,
        help_text="What it measures, from its kind: `electricity`, or `heat` (kinds `heat`, "
        "`thermal_storage`), whose contracts its readings settle.",
    )
    unit = serializers.CharField(
        read_only=True, help_text="Its readings' energy unit: `kWh`, or `kWh thermal` for heat."
    )
    public_key = serializers.CharField(help_text="The device's Ed25519 public key (64 hex).")
    feeder = serializers.CharField()
    interval_s = serializers.IntegerField()
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    token = serializers.SerializerMethodField(help_text="The active token; null when revoked.")
    last_reading_start = serializers.DateTimeField(
        allow_null=True, help_text="The start of the latest reading stored; null before any."
    )

    @extend_schema_field(OpenApiTypes.STR)
    def get_owner(self, meter: Meter) -> str | None:
        found = getattr(meter.owner, "identity", None)
        return found.address if found is not None else None

    @extend_schema_field(ActiveTokenSerializer(allow_null=True))
    def get_token(self, meter: Meter) -> dict[str, Any] | None:
        prefix = getattr(meter, "token_prefix", None)
        if prefix is None:
            return None
        created_at = serializers.DateTimeField().to_representation(meter.token_created_at)
        return {"prefix": prefix, "created_at": created_at}


class ReadingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Reading
        ref_name = "MeterReading"
        fields = ["start", "duration_s", "import_wh", "export_wh", "quality", "received_at"]


class ReadingPagination(api.Pagination):
    """``?limit=&offset=``: up to a batch's worth per page (a 15-minute meter's 20 days); bad
    values are ``bad_paging`` like everywhere (gridplatform.api.Pagination)."""

    default_limit = 96
    max_limit = batch_rules.MAX_READINGS


# --- meters ------------------------------------------------------------------------------------


class MeterListApi(ListAPIView):
    """GET: the meters you may see. POST: register one."""

    serializer_class = MeterSerializer

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MeterRegistration"

        owner = StrictCharField(
            required=False,
            trim_whitespace=False,
            help_text="The owning household's account address (50 hex). Only the grid "
            "operator names another household; by default, you.",
        )
        meter_id = StrictCharField(
            max_length=64, trim_whitespace=False, help_text="A lowercase slug: [a-z0-9_-]."
        )
        kind = serializers.ChoiceField(choices=MeterKind.choices)
        public_key = StrictCharField(
            trim_whitespace=False, help_text="The device's Ed25519 public key, 64 lowercase hex."
        )
        feeder = StrictCharField(
            required=False,
            max_length=64,
            trim_whitespace=False,
            help_text="The feeder the meter is on; by default the owner's, as the grid operator "
            "assigned it.",
        )
        interval_s = StrictIntegerField(
            required=False,
            help_text=f"Seconds per reading, one of {', '.join(map(str, INTERVALS))} that "
            "divides the network's slot; 900 by default (or the longest that divides it).",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MeterRegistered"

        meter = MeterSerializer()
        token = serializers.CharField(
            help_text="The meter's token, shown this once: only its digest is kept."
        )

    def get_queryset(self) -> QuerySet[Meter]:
        return selectors.meter_list(user=self.request.user)

    @extend_schema(
        tags=[TAG],
        operation_id="meter_list",
        summary="The meters you may see",
        description="A household's own meters; every meter for the grid operator and "
        "regulators. Paged (`?limit=`, `?offset=`), by meter id.",
        responses={200: MeterSerializer(many=True), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="meter_register",
        summary="Register a meter; its token is in the answer, once",
        description="A household registers its own meters; the grid operator registers for "
        "any household (`owner`). The answer carries the meter's token: it is shown only "
        "here, and only its digest is kept.\n\nRefusals (400):\n"
        + _codes(
            "malformed",
            "bad_address",
            "unknown_account",
            "not_household",
            "bad_meter_id",
            "bad_kind",
            "bad_public_key",
            "feeder_not_assigned",
            "bad_feeder",
            "bad_interval",
            "interval_not_in_slot",
            "meter_id_taken",
            "public_key_taken",
            "too_many_meters",
        ),
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: error_response("A refusal; `code` is one of the codes above."),
            401: UNAUTHENTICATED,
            403: error_response(
                "`forbidden`: a household registers only its own meters; regulators none."
            ),
        },
        examples=[
            OpenApiExample(
                "A household's PV meter",
                value={
                    "meter_id": "roof-pv-1",
                    "kind": "pv",
                    "public_key": EXAMPLE_PUBLIC_KEY,
                    "feeder": "f1",
                    "interval_s": 900,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        owner = self._owner(request, data.pop("owner", None))
        meter, token = services.meter_register(by=request.user, owner=owner, **data)
        meter = selectors.access_meter(user=request.user, meter_id=meter.meter_id)
        body = self.OutputSerializer({"meter": meter, "token": token}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @staticmethod
    def _owner(request: Request, address: str | None) -> User:
        if address is None:
            user: User = request.user
            return user
        try:
            identity.validate_address(address)
        except identity.IdentityError:
            raise InvalidInput(MESSAGES["bad_address"], code="bad_address") from None
        found = Identity.objects.select_related("user").filter(address=address).first()
        if found is None:
            raise InvalidInput(MESSAGES["unknown_account"], code="unknown_account")
        owner: User = found.user
        return owner


class MeterDetailApi(APIView):
    @extend_schema(
        tags=[TAG],
        operation_id="meter_get",
        summary="A meter you may see",
        parameters=[METER_ID],
        responses={200: MeterSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, meter_id: str) -> Response:
        meter = selectors.access_meter(user=request.user, meter_id=meter_id)
        return Response(MeterSerializer(meter).data)


class MeterTokenApi(APIView):
    """POST: a new token for the meter (the old one stops working). DELETE: revoke it."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "MeterTokenIssued"

        meter_id = serializers.CharField()
        token = serializers.CharField(help_text="The new token, shown this once.")
        prefix = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        tags=[TAG],
        operation_id="meter_token_rotate",
        summary="Rotate a meter's token: a new one, shown once; the old one is revoked",
        description="For the meter's household and the grid operator.",
        parameters=[METER_ID],
        request=None,
        responses={
            201: OutputSerializer,
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request: Request, meter_id: str) -> Response:
        row, token = services.meter_token_rotate(by=request.user, meter_id=meter_id)
        data = {"meter_id": meter_id, "token": token, "prefix": row.prefix}
        body = self.OutputSerializer(data | {"created_at": row.created_at}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(
        tags=[TAG],
        operation_id="meter_token_revoke",
        summary="Revoke a meter's token: it cannot send readings until rotated",
        description="Idempotent: 204 whether a token was active or not.",
        parameters=[METER_ID],
        request=None,
        responses={
            204: OpenApiResponse(description="Revoked."),
            401: UNAUTHENTICATED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def delete(self, request: Request, meter_id: str) -> Response:
        services.meter_token_revoke(by=request.user, meter_id=meter_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- readings ----------------------------------------------------------------------------------


class MeterRateThrottle(AtomicRateMixin, SimpleRateThrottle):
    """Requests per meter (scope ``meter``, ``API_THROTTLE_METER``), whoever sends them."""

    scope = "meter"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, Meter):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class IsMeter(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Meter)


class IngestedSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MeterReadingsIngested"

    accepted = serializers.IntegerField(help_text="New readings, stored.")
    duplicates = serializers.IntegerField(
        help_text="Readings stored before with the same values: not stored again."
    )
    batch = serializers.IntegerField(
        allow_null=True, help_text="The stored batch's id; null when nothing was new."
    )


class ReadingInputSerializer(serializers.Serializer):
    """For the schema only: the body is parsed by ``meters.readings``, from its exact bytes."""

    class Meta:
        ref_name = "MeterReadingInput"

    start = serializers.DateTimeField(help_text="RFC 3339 with its zone; aligned.")
    duration_s = serializers.IntegerField(help_text="The meter's interval, a JSON integer.")
    import_wh = serializers.IntegerField(
        min_value=0, help_text="Wh drawn from the grid (a heat meter's: Wh thermal drawn)."
    )
    export_wh = serializers.IntegerField(
        min_value=0, help_text="Wh fed into the grid (a heat meter's: Wh thermal fed in)."
    )
    quality = serializers.ChoiceField(choices=Quality.choices)


class ReadingBatchInputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "MeterReadingBatch"

    readings = ReadingInputSerializer(many=True, help_text="At most 2,000.")


SIGNATURE_HEADER = OpenApiParameter(
    signing.HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="`t=<unix seconds>,sig=<128 hex>`: the meter's Ed25519 signature over the "
    'bytes `b"<t>." + body`, the body exactly as sent. `t` within 300 s of the site\'s clock.',
)
INGEST_DESCRIPTION = f"""\
Sent by the meter itself: `Authorization: Meter <token>` and `{signing.HEADER}` (the device's
signature over the exact body). All or nothing: a batch with one bad reading stores nothing.
A reading already stored with the same values counts as a duplicate; with other values it is a
`conflict`, and the batch stores nothing. **202** when something new was stored, **200** when
everything was a duplicate (also for an empty list).

Refusals, in the order they are checked:

- 401 `not_authenticated` (no `Meter` token), `authentication_failed` (not this meter's active
  token);
- 429 `throttled`: too many requests from this meter (`Retry-After` says when to retry);
- 413 `batch_too_large`: the body is over {batch_rules.MAX_BODY_BYTES} bytes;
- 415 `unsupported_media_type`: the body is not sent as `application/json`;
- 401 `bad_signature` (no or malformed `{signing.HEADER}`, or it does not verify),
  `stale_signature` (`t` more than {signing.MAX_SKEW_S} s from the site's clock);
- 400 `malformed`: not a UTF-8 JSON object `{{"readings": [...]}}`, or a repeated key;
- 413 `batch_too_large`: more than {batch_rules.MAX_READINGS} readings;
- 400 `invalid_readings`: `detail.errors` names each problem by `index`, `field` and
  `reason`: {", ".join(f"`{r}`" for r in batch_rules.REASONS)};
- 409 `conflict`: `detail.conflicts` names each interval already stored with other values
  (`index`, `start`, `stored`).
"""


class ReadingListApi(ListAPIView):
    """GET: a meter's readings (accounts). POST: a batch of readings (the meter itself)."""

    serializer_class = ReadingSerializer
    pagination_class = ReadingPagination

    # POST is the meter's, with its own credentials, permission and rate; GET the accounts'.
    def get_authenticators(self) -> list[Any]:
        if self._ingesting():
            return [MeterTokenAuthentication()]
        authenticators: list[Any] = super().get_authenticators()
        return authenticators

    def get_permissions(self) -> list[Any]:
        if self._ingesting():
            return [IsMeter()]
        permissions: list[Any] = super().get_permissions()
        return permissions

    def get_throttles(self) -> list[BaseThrottle]:
        if self._ingesting():
            return [MeterRateThrottle()]
        throttles: list[BaseThrottle] = super().get_throttles()
        return throttles

    def _ingesting(self) -> bool:
        request = getattr(self, "request", None)
        return request is not None and request.method == "POST"

    def get_queryset(self) -> QuerySet[Reading]:
        return selectors.reading_list(
            user=self.request.user,
            meter_id=self.kwargs["meter_id"],
            start=_time_param(self.request, "from"),
            end=_time_param(self.request, "to"),
        )

    @extend_schema(
        tags=[TAG],
        operation_id="meter_reading_list",
        summary="A meter's readings, by start",
        description="For the meter's household, the grid operator and regulators. `from` "
        "(inclusive) and `to` (exclusive) are optional RFC 3339 times with their zone "
        "(`+` as `%2B`); 400 `bad_time` otherwise. Paged: `?limit=` (up to 2,000, 96 by "
        "default), `?offset=`.",
        parameters=[
            METER_ID,
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Readings from here."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Readings before this."),
        ],
        responses={
            200: ReadingSerializer(many=True),
            400: error_response("`bad_time`."),
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=[TAG],
        operation_id="meter_readings_send",
        summary="Send a batch of readings (the meter, signed)",
        description=INGEST_DESCRIPTION,
        parameters=[METER_ID, SIGNATURE_HEADER],
        request=ReadingBatchInputSerializer,
        responses={
            202: IngestedSerializer,
            200: IngestedSerializer,
            400: error_response("`malformed` or `invalid_readings`."),
            401: error_response(
                "`not_authenticated`, `authentication_failed`, `bad_signature` or "
                "`stale_signature`."
            ),
            409: error_response("`conflict`."),
            413: error_response("`batch_too_large`."),
            429: error_response("`throttled`."),
        },
        examples=[
            OpenApiExample(
                "Two quarter-hours",
                value={
                    "readings": [
                        {
                            "start": "2026-01-01T12:00:00Z",
                            "duration_s": 900,
                            "import_wh": 0,
                            "export_wh": 410,
                            "quality": "actual",
                        },
                        {
                            "start": "2026-01-01T12:15:00Z",
                            "duration_s": 900,
                            "import_wh": 0,
                            "export_wh": 385,
                            "quality": "actual",
                        },
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Stored",
                value={"accepted": 2, "duplicates": 0, "batch": 17},
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request: Request, meter_id: str) -> Response:
        meter: Meter = request.auth
        length = request.META.get("CONTENT_LENGTH") or "0"
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json" and length != "0":  # signed bytes are JSON only
            raise exceptions.UnsupportedMediaType(media_type or "none")
        # Refused before it is read: a body over the limit never reaches memory.
        if not length.isdigit() or int(length) > batch_rules.MAX_BODY_BYTES:
            raise batch_rules.BatchTooLarge(
                f"The body is larger than {batch_rules.MAX_BODY_BYTES} bytes."
            )
        ingestion = services.readings_ingest(
            meter=meter, body=request.body, signature_header=request.headers.get(signing.HEADER)
        )
        body = IngestedSerializer(
            {
                "accepted": ingestion.accepted,
                "duplicates": ingestion.duplicates,
                "batch": ingestion.batch.pk if ingestion.batch is not None else None,
            }
        ).data
        answer = status.HTTP_202_ACCEPTED if ingestion.accepted else status.HTTP_200_OK
        return Response(body, status=answer)
