"""Live pages stay live: a WebSocket stays open while nothing happens for longer than Redis's
read timeout, and gets every block hint sent between the quiet spells.

Every idle socket used to close with 1011 after 5 s: channels_redis waits for messages with a
blocking BZPOPMIN of 5 s, and redis-py's default read timeout was 5 s too (settings:
``CHANNEL_LAYERS``). The socket here is held for about 45 s on the real channel layer (Redis, the
embedded one under ``make test``), with quiet spells of 7 s between six block hints.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from gridplatform.accounts.models import User
from gridplatform.asgi import application
from ledger.live import LEDGER_GROUP
from tests.accounts.test_consumers import headers

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_S = 7.0  # longer than the 5 s that ended every idle socket
HINTS = 6


def test_a_ledger_socket_stays_open_across_quiet_spells(prosumer: User) -> None:
    handshake = headers(prosumer)

    async def run() -> list[int]:
        socket = WebsocketCommunicator(application, "/ws/ledger/", headers=handshake)
        connected, _ = await socket.connect(timeout=5)
        assert connected
        layer = get_channel_layer()
        heights = []
        for height in range(1, HINTS + 1):
            assert await socket.receive_nothing(timeout=QUIET_S)  # open, and quiet
            await layer.group_send(LEDGER_GROUP, {"type": "ledger.block", "height": height})
            message = await socket.receive_json_from(timeout=5)
            heights.append(message["height"])
        await asyncio.sleep(0)
        await socket.disconnect()
        return heights

    assert async_to_sync(run)() == list(range(1, HINTS + 1))
