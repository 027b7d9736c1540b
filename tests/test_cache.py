"""The cache keeps one Redis connection pool per process (``gridplatform.cache``).

Under ASGI Django makes a cache object per request; each used to open a Redis connection of its
own. Requests go through the site's ASGI application here, as the web server runs them.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.test import AsyncClient

from gridplatform.accounts import services as account_services
from tests.factories import UserFactory


def connections_received() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def test_cache_objects_share_one_pool() -> None:
    first, second = caches.create_connection("default"), caches.create_connection("default")
    assert first is not second  # what Django does per async context
    pool = first._cache._get_connection_pool(False)  # type: ignore[attr-defined]
    assert pool is second._cache._get_connection_pool(True)  # type: ignore[attr-defined]
    first.set("shared-pool-check", 1, 10)
    assert second.get("shared-pool-check") == 1


@pytest.mark.django_db(transaction=True)
def test_throttled_api_requests_do_not_each_open_a_redis_connection(settings: Any) -> None:
    settings.REST_FRAMEWORK = settings.REST_FRAMEWORK | {
        "DEFAULT_THROTTLE_RATES": {"user": "10000/min", "anon": "10000/min", "meter": "60/min"}
    }
    user = UserFactory()
    _, token = account_services.api_token_create(user=user, name="tests")
    client = AsyncClient()
    headers = {"Authorization": f"Token {token}"}

    async def request() -> int:
        try:
            answer = await client.get("/api/v1/ledger/blocks", headers=headers)
        finally:
            # The test client leaves the view thread's database connection open; close it
            # there, or the test database cannot be dropped at the end of the run.
            await sync_to_async(connections.close_all)()
        return int(answer.status_code)

    def requests(n: int) -> list[int]:
        """``n`` requests, each in a context of its own, as the web server runs each request
        in a task of its own (the cache object Django keeps per context is then new)."""
        return [contextvars.Context().run(asyncio.run, request()) for _ in range(n)]

    assert requests(1) == [200]  # the pool's first connection
    before = connections_received()
    assert requests(20) == [200] * 20
    # Each request is a new async context, so a new cache object; they share the pool now.
    assert connections_received() - before <= 2
