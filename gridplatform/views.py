"""The site package's own page: the health check. The dashboards and consoles are the
``dashboards`` app's (at the top of the stack: it imports every app)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and the run command: the web process answers."""
    return HttpResponse("ok", content_type="text/plain")
