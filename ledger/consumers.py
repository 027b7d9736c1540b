"""Live hints for ledger pages: a new block was projected. Only moves messages."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gridplatform.accounts.consumers import CLOSE_FORBIDDEN
from ledger.projection import LEDGER_GROUP


class LedgerConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/ledger/``: ``{"type": "ledger.block", "height": h}`` after each projected block.

    For every authenticated account (blocks are public to them); others are closed with 4403.
    A hint only: the page re-reads the truth (the API) when it gets one and after a reconnect.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with our code (see gridplatform.accounts.consumers).
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(LEDGER_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LEDGER_GROUP, self.channel_name)

    async def ledger_block(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "ledger.block", "height": event["height"]})
