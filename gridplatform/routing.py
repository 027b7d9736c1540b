from __future__ import annotations

from django.urls import path

from gridplatform.accounts import consumers

websocket_urlpatterns = [
    path("ws/console/accounts/", consumers.AccountListConsumer.as_asgi()),
]
