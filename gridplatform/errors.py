"""The base of every domain error: a stable ``code``, a human ``message``, optional ``detail``.

Services raise subclasses; the API's one exception handler (``gridplatform.api``) turns any of
them into ``{"code", "message", "detail"}`` with the subclass's ``status_code`` (400 unless it
says otherwise), and HTML views show the message. No Django import: pure modules may raise them.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status_code = 400

    def __init__(
        self, message: str, *, code: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail


# The API's common refusals, shared by every application's REST API.


class InvalidInput(DomainError):
    """A request refused before any service runs: the code of its first bad field."""


class Forbidden(DomainError):
    """The caller's role may not do this (403)."""

    code = "forbidden"
    status_code = 403


class NotFoundError(DomainError):
    """404, with a code more precise than ``not_found`` (``unknown_order``, ...)."""

    status_code = 404
