"""What the public ledger's answers share, API and pages alike: HTTP caching and the anonymous
rate limit (docs/ledger.md, "The public ledger").

* **Caching.** A committed block or transaction never changes, so its answer may be kept for
  ``COMMITTED_MAX_AGE_S``; the newest blocks, for anonymous readers, ``NEWEST_MAX_AGE_S``. The
  answer of an anonymous request is ``public`` (a shared cache may keep it); that of a logged-in
  account ``private`` (its browser only), since it may hold what only that account may see (a
  meter's readings, its name on a page). Every such answer varies with ``Cookie`` and
  ``Authorization``.
* **Rate limit.** Anonymous page views count against the same budget as anonymous API calls:
  ``gridplatform.throttling.AnonRate`` (``API_THROTTLE_ANON`` per client address), so that the
  pages are no unthrottled way to the same data. Logged-in accounts are not limited on pages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control, patch_vary_headers

from gridplatform.throttling import AnonRate, over_limit

# A committed block is final (BFT: no fork, no reorganisation). A day, not a year: if a site's
# database were ever rebuilt wrongly, shared caches forget the wrong answers within a day.
COMMITTED_MAX_AGE_S = 24 * 60 * 60
# The newest blocks: a new one comes every few seconds.
NEWEST_MAX_AGE_S = 5
# The genesis document never changes for a network; a new network is rare.
GENESIS_MAX_AGE_S = 5 * 60

View = Callable[..., HttpResponse]


def _authenticated(request: Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def cache_for(
    response: HttpResponse, request: Any, max_age: int | None, *, accounts: bool = True
) -> HttpResponse:
    """``response`` with its ``Cache-Control``: ``public`` for an anonymous ``request``,
    ``private`` otherwise, for ``max_age`` seconds; ``no-cache`` when ``max_age`` is None, or
    for an account's request when not ``accounts`` (the newest blocks: a logged-in page reloads
    them on a live hint, which a cached copy would hide)."""
    if max_age is None or (not accounts and _authenticated(request)):
        patch_cache_control(response, no_cache=True)
    elif _authenticated(request):
        patch_cache_control(response, private=True, max_age=max_age)
    else:
        patch_cache_control(response, public=True, max_age=max_age)
    patch_vary_headers(response, ("Cookie", "Authorization"))
    return response


def throttled_when_anonymous(view: View) -> View:
    """Count an anonymous page view against the anonymous API budget; past it, 429 with
    ``Retry-After``, as the API answers."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        refused = over_limit(request, AnonRate(), "ledger/throttled.html")
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return wrapped
