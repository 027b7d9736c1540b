"""API authentication of a meter by its token: ``Authorization: Meter <token>``.

Used by one endpoint only, ``POST /api/v1/meters/{meter_id}/readings``, where the token must be
that meter's: a meter's token opens nothing else (it is not an account's API token). The
request's user is the meter's owner and ``request.auth`` the ``Meter``. Anything other than a
``Meter`` header is left alone (and the request stays unauthenticated: 401); a ``Meter`` header
that does not hold the meter's active token is a 401 ``authentication_failed``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from gridplatform.accounts.authentication import authorization_credentials
from gridplatform.accounts.models import User
from meters import services
from meters.models import Meter

KEYWORD = "Meter"


class MeterTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, Meter] | None:
        token = authorization_credentials(request, KEYWORD, "meter token")
        if token is None:
            return None
        # The token is checked against the meter the URL names: another meter's token is bad.
        url_kwargs = (getattr(request, "parser_context", None) or {}).get("kwargs") or {}
        try:
            meter = services.meter_authenticate(
                meter_id=str(url_kwargs.get("meter_id", "")), token=token
            )
        except services.InvalidMeterToken as error:
            raise AuthenticationFailed(error.message, code="authentication_failed") from None
        owner: User = meter.owner
        return owner, meter

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer a missing or bad credential with 401 (and this header), not 403.
        return f'{KEYWORD} realm="meters"'


class MeterTokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the meter token scheme in the OpenAPI schema."""

    target_class = MeterTokenAuthentication
    name = "meterToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "The meter's token, shown once when the meter is registered or its token "
                "rotated, sent as `Authorization: Meter <token>`. Only for sending readings; "
                "each request is also signed with the meter's key (`X-Meter-Signature`)."
            ),
        }
