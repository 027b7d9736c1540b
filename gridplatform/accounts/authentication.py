"""API authentication by the tokens accounts make on their settings page.

A client sends ``Authorization: Token <token>``. Anything else in that header is left to the
other authentication classes (sessions); a ``Token`` header that does not hold an active token is
refused with a 401, never silently treated as anonymous.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from gridplatform.accounts import services
from gridplatform.accounts.models import ApiToken, User

KEYWORD = "Token"


def authorization_credentials(request: Any, keyword: str, what: str) -> str | None:
    """The credentials of an ``Authorization: <keyword> <credentials>`` header (ASCII), None
    when the header names another scheme; AuthenticationFailed when it is malformed."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != keyword.lower().encode():
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed(
            f"Malformed Authorization header: expected '{keyword} <token>'.",
            code="authentication_failed",
        )
    try:
        return str(parts[1].decode("ascii"))
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed(
            f"Invalid or revoked {what}.", code="authentication_failed"
        ) from None


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        token = authorization_credentials(request, KEYWORD, "token")
        if token is None:
            return None
        try:
            return services.api_token_authenticate(token=token)
        except services.InvalidApiToken as error:
            raise AuthenticationFailed(error.message, code="authentication_failed") from None

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer a missing or bad credential with 401 (and this header), not 403.
        return f'{KEYWORD} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the token scheme in the OpenAPI schema (and Swagger UI's Authorize dialog)."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "An API token made on your settings page (/accounts/settings/), sent as "
                "`Authorization: Token <token>`. In Swagger UI's Authorize dialog, enter "
                "`Token <token>`, with the word Token."
            ),
        }
