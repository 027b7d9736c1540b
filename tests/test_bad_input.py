"""Bad input is a 4xx everywhere, with one error shape (gridplatform.api): one JSON parser with
depth and size limits that refuses duplicate keys, the content type enforced, bad paging a 400,
an unknown WebSocket path refused, and Redis down a JSON 503 with a code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.cache import caches

from gridplatform.accounts.models import User
from gridplatform.asgi import application
from gridplatform.parsers import MAX_JSON_BYTES, MAX_JSON_DEPTH
from market.models import Order
from meters.models import Meter, Reading
from tests.meters.support import API, client_for, error_of, readings, register

DEEP = ("[" * 1000 + "]" * 1000).encode()


@pytest.fixture(autouse=True)
def _no_network(settings: Any, tmp_path: Path) -> None:
    settings.LEDGER_DIR = tmp_path


def post(client: Any, path: str, body: bytes, content_type: str = "application/json") -> Any:
    return client.post(path, body, content_type=content_type)


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("household", "/orders"),
        ("household", "/offers"),
        ("household", "/meters"),
        ("household", "/supervision/notifications/read"),
        ("grid_operator", "/supervision/topology"),
        ("grid_operator", "/supervision/grid-state"),
        ("regulator", "/supervision/acts"),
        ("regulator", "/supervision/suspensions"),
    ],
)
def test_deeply_nested_json_is_malformed_not_a_crash(
    role: str, path: str, prosumer: User, grid_operator: User, regulator: User
) -> None:
    user = {"household": prosumer, "grid_operator": grid_operator, "regulator": regulator}[role]
    response = post(client_for(user), f"{API}{path}", DEEP)
    assert error_of(response) == (400, "malformed")
    assert "nests deeper" in response.json()["message"]


def test_the_parser_keeps_its_limits(prosumer: User) -> None:
    client = client_for(prosumer)
    url = f"{API}/orders"
    at_limit = ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH).encode()
    over = ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()
    # At the limit the body parses (and is then refused as no order); one level more is not.
    assert "nests deeper" not in post(client, url, at_limit).json()["message"]
    assert "nests deeper" in post(client, url, over).json()["message"]
    duplicate = b'{"side": "buy", "side": "sell", "energy_wh": 100}'
    refused = post(client, url, duplicate)
    assert error_of(refused) == (400, "malformed")
    assert "key twice" in refused.json()["message"]
    assert error_of(post(client, url, b'{"price": NaN}')) == (400, "malformed")
    assert error_of(post(client, url, b"\xff\xfe")) == (400, "malformed")
    huge = json.dumps({"pad": "x" * MAX_JSON_BYTES}).encode()
    assert error_of(post(client, url, huge)) == (413, "too_large")
    assert error_of(post(client, url, b"side=buy", "application/x-www-form-urlencoded")) == (
        415,
        "unsupported_media_type",
    )
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_readings_come_as_json_only(prosumer: User, content_type: str) -> None:
    device = register(prosumer)
    raw = json.dumps({"readings": readings(1)}).encode()
    response = device.client.post(
        device.url,
        raw,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Meter {device.token}",
        HTTP_X_METER_SIGNATURE="irrelevant: refused before it is read",
    )
    assert error_of(response) == (415, "unsupported_media_type")
    assert not Reading.objects.filter(meter=device.meter).exists()
    assert Meter.objects.filter(pk=device.meter.pk).exists()


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=0", "limit=-5", "offset=-1", "offset=x", "limit=1e3", "limit=٣"]
)
def test_bad_paging_is_a_400_with_a_code(prosumer: User, query: str) -> None:
    response = client_for(prosumer).get(f"{API}/orders?{query}")
    assert error_of(response) == (400, "bad_paging")


def test_bad_paging_of_readings_is_a_400_with_a_code(prosumer: User) -> None:
    device = register(prosumer)
    url = f"{API}/meters/{device.meter.meter_id}/readings"
    for query in ("limit=abc", "offset=-1"):
        assert error_of(client_for(prosumer).get(f"{url}?{query}")) == (400, "bad_paging")


def test_good_paging_still_pages(prosumer: User) -> None:
    response = client_for(prosumer).get(f"{API}/orders?limit=1000&offset=0")
    assert response.status_code == 200  # over the maximum: capped at it, as documented


def test_an_unknown_websocket_path_is_refused_not_a_crash(db: None) -> None:
    async def run() -> bool:
        socket = WebsocketCommunicator(
            application, "/ws/no-such-socket/", headers=[(b"origin", b"http://localhost")]
        )
        connected, _ = await socket.connect()
        await socket.disconnect()
        return bool(connected)

    assert async_to_sync(run)() is False


def test_the_api_answers_a_json_503_when_redis_is_down(prosumer: User, settings: Any) -> None:
    client = client_for(prosumer)
    settings.CACHES = {
        "default": {
            "BACKEND": "gridplatform.cache.SharedPoolRedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    caches._settings = None  # type: ignore[attr-defined]  # read the new setting
    try:
        response = client.get(f"{API}/orders")
    finally:
        caches._settings = None  # type: ignore[attr-defined]
    assert error_of(response) == (503, "unavailable")
    assert response["Retry-After"]
    assert "not answering" in response.json()["message"]
