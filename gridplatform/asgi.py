"""The ASGI application: HTML and (later) the REST API over HTTP, live pages over WebSockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridplatform.settings")
# The web server keeps PostgreSQL connections in a pool (settings: DATABASE_POOL). Only here:
# Celery's prefork workers must not inherit a pool opened before they fork.
os.environ.setdefault("DATABASE_POOL", "1")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from gridplatform.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A WebSocket from another origin is refused before it reaches a consumer.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
