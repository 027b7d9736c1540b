"""What every REST API view shares: the one exception handler, the error body, pagination.

Every error the API returns is JSON of one shape, with a stable ``code`` a client can branch on
and a ``message`` for people::

    {"code": "bad_nonce", "message": "The nonce is not the sender's next one.", "detail": {...}}

``detail`` is optional (field errors of a validation failure, ``retry_after`` of a throttle).
Domain errors (``gridplatform.errors.DomainError``) carry their own code and status; DRF's and
Django's errors are mapped below. Bad input never reaches the 500 path: an unexpected exception
is a bug, answered with ``{"code": "server_error"}``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import set_rollback

from gridplatform.errors import DomainError, InvalidInput
from ledger import errors as ledger_errors
from ledger.crypto import Transaction

API_PREFIX = "/api/"

# DRF's exceptions, by class, to our codes. Subclasses are looked up along their MRO.
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed",
    exceptions.ValidationError: "invalid",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (for the schema)."""

    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    detail = serializers.DictField(
        required=False, help_text="Optional details: field errors, retry_after, ..."
    )


def error_response(description: str) -> OpenApiResponse:
    """An error answer in the OpenAPI schema: the error body, with what ``code`` may be."""
    return OpenApiResponse(response=ErrorSerializer, description=description)


def codes_text(messages: dict[str, str], *codes: str) -> str:
    """A Markdown list of ``codes`` with their messages, for a schema description."""
    return "\n".join(f"- `{code}`: {messages.get(code, code)}" for code in codes)


UNAUTHENTICATED = error_response(
    "`not_authenticated` (no credentials) or `authentication_failed` (a bad or revoked token)."
)


def validated(
    serializer_class: type[serializers.Serializer],
    data: Any,
    *,
    messages: dict[str, str],
    field_codes: dict[str, str],
    fallback: str = "invalid",
    out_of_bounds: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``data`` checked by ``serializer_class``, or ``InvalidInput`` with the code of the first
    bad field in the serializer's order.

    ``field_codes`` names each field's code (``fallback`` for the rest); a field whose first error
    is ``unsafe`` (an integer too large for the ledger) takes its code from ``out_of_bounds``.
    A body that is not an object, or errors on no field, is ``malformed``.
    """
    if not isinstance(data, dict):
        raise InvalidInput(messages["malformed"], code="malformed")
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        result: dict[str, Any] = dict(serializer.validated_data)
        return result
    errors = {name: [str(e) for e in problems] for name, problems in serializer.errors.items()}
    name = next((name for name in serializer.fields if name in errors), "")
    if not name:
        raise InvalidInput(messages["malformed"], code="malformed", detail=errors)
    code = field_codes.get(name, fallback)
    if out_of_bounds and serializer.errors[name][0].code == "unsafe":
        code = out_of_bounds.get(name, code)
    raise InvalidInput(messages.get(code, f"{name}: {errors[name][0]}"), code=code, detail=errors)


def error_body(code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return body


def _code_of(exc: exceptions.APIException) -> str:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    default = exc.default_code
    return default if isinstance(default, str) else "error"


def _message_of(exc: exceptions.APIException) -> str:
    if isinstance(exc, exceptions.ValidationError):
        return "The request is not valid; see detail."
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return str(exc.default_detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every error as ``{"code", "message", "detail"?}``.

    Returns None (DRF then re-raises, and Django answers 500) only for exceptions that are not
    errors of the request: bugs.
    """
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    detail: dict[str, Any] | None = None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
        detail = {"retry_after": int(exc.wait)}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    set_rollback()
    return Response(
        error_body(_code_of(exc), _message_of(exc), detail), status=exc.status_code, headers=headers
    )


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=``; at most 200 per page. A value that is not a whole number (``limit``
    from 1, ``offset`` from 0) is refused, ``bad_paging``, never silently replaced."""

    default_limit = 50
    max_limit = 200

    def get_limit(self, request: Any) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise InvalidInput(
                f"limit is a whole number from 1 to {self.max_limit}.", code="bad_paging"
            )
        limit: int | None = super().get_limit(request)
        return limit

    def get_offset(self, request: Any) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit()):
            raise InvalidInput("offset is a whole number from 0.", code="bad_paging")
        return int(super().get_offset(request))


# --- Django's error pages, as JSON under /api/ -------------------------------------------------


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for an unknown URL under /api/, the site's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /api/, the site's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        message = "Something went wrong on our side; it has been logged."
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)


# --- writes that sign a transaction --------------------------------------------------------------

SIGNED_WRITE = (
    "Signed with your custodial key, rehearsed on the site's copy of the ledger (most refusals "
    "come back at once, with the validators' code) and sent to the validators: **202** means "
    "sent, not done; the read models show the outcome once its block commits."
)
SIGNING_REFUSALS = (
    "Signing and admission: "
    + ", ".join(f"`{code}`" for code in [*ledger_errors.SIGNING, *ledger_errors.ADMISSION])
    + " (docs/ledger.md)."
)


class SentSerializer(serializers.Serializer):
    """The answer to a write that signed a transaction: sent to the validators, not done."""

    class Meta:
        ref_name = "SentTransaction"

    type = serializers.CharField(help_text="The transaction's type.")
    transaction = serializers.CharField(
        help_text="Its id: follow it at `GET /api/v1/ledger/transactions/{id}`."
    )


def sent(tx: Transaction) -> Response:
    """``202`` with the type and id of the transaction a write signed and sent."""
    body = SentSerializer({"type": tx.type, "transaction": tx.id}).data
    return Response(body, status=202)


def signed_write_schema(
    *,
    tag: str,
    operation_id: str,
    summary: str,
    request: Any,
    refusals: str,
    forbidden: str,
    **extra: Any,
) -> Any:
    """The schema of a write that signs one transaction: ``refusals`` (a Markdown list of its
    codes, in the order they are checked), then signing's and admission's; ``forbidden`` says
    who may call it. ``extra``: drf-spectacular's own arguments (``responses`` are added)."""
    responses = {
        202: SentSerializer,
        400: error_response("A refusal; `code` is one of the codes above. Nothing was signed."),
        401: UNAUTHENTICATED,
        403: error_response(f"`forbidden`: {forbidden}"),
    } | extra.pop("responses", {})
    return extend_schema(
        tags=[tag],
        operation_id=operation_id,
        summary=summary,
        description=f"{SIGNED_WRITE}\n\nRefusals, in the order they are checked:\n{refusals}"
        f"\n\n{SIGNING_REFUSALS}",
        request=request,
        responses=responses,
        **extra,
    )
