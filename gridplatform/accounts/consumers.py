from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gridplatform.accounts.events import ACCOUNTS_GROUP

# Close code for "not allowed": 4000-4999 are the application's own.
CLOSE_FORBIDDEN = 4403


class AccountListConsumer(AsyncJsonWebsocketConsumer):
    """Tells the consoles that the account list changed. Only moves messages."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.watches_accounts:
            # Accept, then close with our code: a socket closed before it is accepted reaches
            # the browser as 1006 (abnormal), which the page cannot tell from a network fault.
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(ACCOUNTS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(ACCOUNTS_GROUP, self.channel_name)

    async def accounts_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "accounts.changed", "address": event["address"]})
