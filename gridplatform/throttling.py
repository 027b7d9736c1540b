"""API rate limits whose counters are atomic.

DRF's throttles keep, per client, a list of request times in the cache: read the list, append,
write it back. Concurrent requests read the same list and each writes back its own, so from 8
threads 2,000 requests passed a 1,200/min limit in under two seconds. Here every request is one
atomic increment of a counter (``INCR`` on Redis) for the current window of ``duration`` seconds
(a minute for ``.../min``), created with an expiry; a request is let through while the counter is
at most the limit, however many arrive at once. ``Retry-After`` is the time to the next window.

Fixed windows let a client that waits for a window's end send up to twice the limit within a
few seconds around it, never more; that is the price of one round trip per request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


class AtomicRateMixin(SimpleRateThrottle):
    """``allow_request`` and ``wait`` of a SimpleRateThrottle, on an atomic counter per window."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counter = f"{self.key}:w{window}"
        # add() creates the counter only if absent (SET NX with its expiry); incr() is INCRBY.
        self.cache.add(counter, 0, timeout=self.duration + 1)
        try:
            count = self.cache.incr(counter)
        except ValueError:  # expired between the two calls: this request starts the window
            self.cache.add(counter, 1, timeout=self.duration + 1)
            count = 1
        return bool(count <= self.num_requests)

    def wait(self) -> float | None:
        return max(0.0, float(self.window_ends - self.now))

    @classmethod
    def forget(cls, key: str) -> None:
        """Drop the counters of ``key`` (e.g. ``throttle_user_7``) for the window under way and
        the next: the client starts afresh (an operator lifting a limit, a test)."""
        throttle = cls()
        window = int(throttle.timer() // (throttle.duration or 60))
        throttle.cache.delete_many([f"{key}:w{window}", f"{key}:w{window + 1}"])


class UserRate(AtomicRateMixin, UserRateThrottle):
    """Requests per logged-in user (``API_THROTTLE_USER``), per address when anonymous."""


class AnonRate(AtomicRateMixin, AnonRateThrottle):
    """Requests per client address from anonymous callers (``API_THROTTLE_ANON``)."""


class AddressRate(AtomicRateMixin, SimpleRateThrottle):
    """Form posts that cost the server a password hash (logging in, registering, asking for or
    setting a new password), per client address: ``FORM_THROTTLE_ADDRESS``."""

    scope = "address"

    def get_rate(self) -> str | None:
        rate: str | None = self.THROTTLE_RATES.get(self.scope)
        return rate

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return str(self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)})


def over_limit(
    request: HttpRequest, throttle: AtomicRateMixin, template: str
) -> HttpResponse | None:
    """None when ``request`` is within ``throttle``'s limit (and is counted); otherwise the 429
    page ``template`` (given ``retry_after``), with ``Retry-After``, as the API answers."""
    if throttle.allow_request(request, None):
        return None
    retry_after = max(1, math.ceil(throttle.wait() or 1))
    response = render(request, template, {"retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def address_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Limit a page's POSTs per client address (``AddressRate``); past the limit, a 429 page
    with ``Retry-After`` and nothing done. GETs are not counted."""

    @wraps(view)
    def limited(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            refused = over_limit(request, AddressRate(), "registration/throttled.html")
            if refused is not None:
                return refused
        return view(request, *args, **kwargs)

    return limited
