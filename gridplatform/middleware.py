"""A database that cannot answer now (SQLite locked past its timeout, PostgreSQL unreachable or
out of connections) is answered 503 with ``Retry-After``, not 500: the request is not wrong and
the site has no bug, it is busy or its database is down. Every write runs in a transaction, so
such a request changed nothing, and the client may send it again. The error is still logged.
"""

from __future__ import annotations

import logging
import zoneinfo
from typing import Any

import redis
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.deprecation import MiddlewareMixin
from kombu.exceptions import OperationalError as KombuError

from gridplatform.api import API_PREFIX, error_body

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 5
MESSAGE = "The site is busy and could not do this now; nothing was changed. Try again shortly."


# Redis (cache, rate limits, channel layer) and the Celery broker on it, when down.
BROKER_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, KombuError)
BROKER_MESSAGE = (
    "A service the site needs is not answering, so this could not be finished now. Try again "
    "shortly; a transaction you sent is shown as pending if it was taken."
)


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """503 with ``Retry-After`` (JSON under /api/, a page elsewhere) when the database, or the
    Redis the site works through, cannot answer."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, BROKER_ERRORS):
            logger.error("redis unavailable: %s %s", request.method, request.path, exc_info=True)
            return _unavailable(request, BROKER_MESSAGE)
        if not isinstance(exception, OperationalError):
            return None
        logger.error("database unavailable: %s %s", request.method, request.path, exc_info=True)
        return _unavailable(request, MESSAGE)


def _unavailable(request: HttpRequest, message: str) -> HttpResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.path.startswith(API_PREFIX):
        return JsonResponse(
            error_body("unavailable", message, {"retry_after": RETRY_AFTER_S}),
            status=503,
            headers=headers,
        )
    html = render_to_string("503.html", {"message": message})
    return HttpResponse(html, status=503, headers=headers)


class UserTimeZoneMiddleware:
    """Pages show times in the user's own zone (``User.time_zone``), the site's otherwise; the
    pages name the zone ("Times in Europe/Vienna.")."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        zone = getattr(user, "time_zone", "") if user is not None else ""
        try:
            if zone:
                timezone.activate(zoneinfo.ZoneInfo(zone))
            else:
                timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class LivePartialRevalidationMiddleware:
    """A live region's partial (an htmx GET) is cached by the browser only to be revalidated:
    ``Cache-Control: private, no-cache``. With ``ConditionalGetMiddleware`` (its ETag), a partial
    re-fetched after a block that did not change it costs a 304 and no body."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        response = self.get_response(request)
        if (
            request.method == "GET"
            and request.headers.get("HX-Request") == "true"
            and not response.has_header("Cache-Control")
        ):
            patch_cache_control(response, private=True, no_cache=True)
        return response
