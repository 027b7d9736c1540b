"""Live-page hints sent over the Channels layer once a write has committed.

A push is a hint: the page re-reads the truth from the server when it gets one, and after every
reconnect, so a lost push only delays an update.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

ACCOUNTS_GROUP = "accounts"


def _send(group: str, message: dict[str, object]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, message)


def accounts_changed_on_commit(*, address: str) -> None:
    transaction.on_commit(
        lambda: _send(ACCOUNTS_GROUP, {"type": "accounts.changed", "address": address})
    )
