"""Django's Redis cache with one connection pool per process, not one per cache object.

Django keeps a cache object per async context (``django.core.cache.caches``), so under ASGI
every request gets a new one, and Django's Redis client builds a new connection pool for each
object: every request opened, and later dropped, a Redis connection of its own for the
throttle's one ``GET``. A profile of the web server under one-reading meter requests put about
7 % of its time in ``connect``. Here the pools are shared by every cache object of the process,
keyed by server URL and options. redis-py's pools are thread-safe and reset themselves in a
forked child.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_POOLS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        url = self._servers[self._get_connection_pool_index(write)]
        key = (url, repr(sorted(self._pool_options.items())))
        with _LOCK:
            pool = _POOLS.get(key)
            if pool is None:
                pool = _POOLS[key] = self._pool_class.from_url(url, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolClient
