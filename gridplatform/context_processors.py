"""What every page's template may use."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone


def time_zone(request: HttpRequest) -> dict[str, str]:
    """``zone``: the name of the zone the page shows times in ("Times in Europe/Vienna."), the
    user's own if it chose one; ``site_zone``: the site's (``TIME_ZONE``)."""
    return {
        "zone": timezone.get_current_timezone_name(),
        "site_zone": settings.TIME_ZONE,
    }
