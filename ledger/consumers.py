"""Live hints for ledger pages (``ledger.live``): a block was projected, and which of the
accounts and slots a page shows it changed. Only moves messages."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from gridplatform.accounts.consumers import CLOSE_FORBIDDEN
from gridplatform.accounts.models import Identity, Role
from ledger.live import LEDGER_GROUP, MAX_TOPICS, topic_account, valid_topic


class LedgerConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/ledger/``, for every authenticated account (blocks are public to them); others are
    closed with 4403.

    * ``{"type": "ledger.block", "height": h, "everything": false}`` after each projected block
      (``everything``: the read models were rebuilt, re-read every row);
    * ``{"type": "ledger.changed", "height": h, "topic": t}`` for each topic this socket
      subscribed to that the block changed. The page subscribes by sending
      ``{"subscribe": [topic, ...]}`` (it replaces the last subscription; at most
      ``MAX_TOPICS``): ``account.<address>`` (a household only its own) and ``slot.<ms>``. A
      bad subscription is answered ``{"type": "error", "code": "bad_subscription", ...}`` and
      changes nothing.

    Hints only: the page re-reads the truth when it gets one and after a reconnect.
    """

    topics: frozenset[str] = frozenset()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept, then close with our code (see gridplatform.accounts.consumers).
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        household = user.role == Role.HOUSEHOLD
        self.own_address = await database_sync_to_async(_address_of)(user.pk) if household else None
        await self.channel_layer.group_add(LEDGER_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(LEDGER_GROUP, self.channel_name)
        for topic in self.topics:
            await self.channel_layer.group_discard(topic, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        wanted = content.get("subscribe") if isinstance(content, dict) else None
        problem = self._refusal(wanted)
        if problem:
            await self.send_json({"type": "error", "code": "bad_subscription", "message": problem})
            return
        new = frozenset(wanted or ())
        for topic in self.topics - new:
            await self.channel_layer.group_discard(topic, self.channel_name)
        for topic in new - self.topics:
            await self.channel_layer.group_add(topic, self.channel_name)
        self.topics = new
        await self.send_json({"type": "subscribed", "topics": len(new)})

    def _refusal(self, wanted: Any) -> str:
        """Why ``wanted`` is no subscription this socket may have; empty if it is one."""
        if not isinstance(wanted, list) or len(wanted) > MAX_TOPICS:
            return f'send {{"subscribe": [topic, ...]}} with at most {MAX_TOPICS} topics'
        for topic in wanted:
            if not valid_topic(topic):
                return f"not a topic: {str(topic)[:80]!r} (account.<address> or slot.<ms>)"
            account = topic_account(topic)
            if account is not None and self.own_address is not None:
                if account != self.own_address:
                    return "a household may follow its own account only"
        return ""

    async def ledger_block(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "ledger.block",
                "height": event["height"],
                "everything": event.get("everything", False),
            }
        )

    async def ledger_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {"type": "ledger.changed", "height": event["height"], "topic": event["topic"]}
        )


def _address_of(user_id: int) -> str:
    """A household's ledger address; empty (it follows no account) before it has one."""
    identity = Identity.objects.filter(user_id=user_id).only("address").first()
    return identity.address if identity is not None else ""
