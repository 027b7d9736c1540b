from __future__ import annotations

from channels.generic.websocket import WebsocketConsumer
from django.urls import path, re_path

from gridplatform.accounts import consumers
from ledger.consumers import LedgerConsumer


class NoSuchSocket(WebsocketConsumer):
    """Any other WebSocket path: the handshake is refused (HTTP 403), as for a page that is not
    there, instead of the router's error (an HTTP 500)."""

    def connect(self) -> None:
        self.close()


websocket_urlpatterns = [
    path("ws/console/accounts/", consumers.AccountListConsumer.as_asgi()),
    path("ws/ledger/", LedgerConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),
]
