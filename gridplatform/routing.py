from __future__ import annotations

from django.urls import path

from gridplatform.accounts import consumers
from ledger.consumers import LedgerConsumer

websocket_urlpatterns = [
    path("ws/console/accounts/", consumers.AccountListConsumer.as_asgi()),
    path("ws/ledger/", LedgerConsumer.as_asgi()),
]
