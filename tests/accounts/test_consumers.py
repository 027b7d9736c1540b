"""The console's live account list, over the real Channels layer (Redis)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from gridplatform.accounts import services
from gridplatform.accounts.consumers import CLOSE_FORBIDDEN
from gridplatform.accounts.models import HouseholdKind, User
from gridplatform.asgi import application

PATH = "/ws/console/accounts/"

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def headers(user: User | None, origin: str = "http://localhost") -> list[tuple[bytes, bytes]]:
    result = [(b"origin", origin.encode())]
    if user is not None:
        result.append((b"cookie", session_cookie(user).encode()))
    return result


async def _connect(
    handshake: list[tuple[bytes, bytes]],
) -> tuple[WebsocketCommunicator, Any]:
    communicator = WebsocketCommunicator(application, PATH, headers=handshake)
    connected, code = await communicator.connect(timeout=5)
    return communicator, (connected, code)


def connect(user: User | None, origin: str = "http://localhost") -> tuple[bool, Any]:
    """Whether the socket stays open, and the close code when it does not."""
    handshake = headers(user, origin)

    async def run() -> tuple[bool, Any]:
        communicator, (connected, code) = await _connect(handshake)
        if not connected:
            return False, code
        if await communicator.receive_nothing(timeout=0.3):
            await communicator.disconnect()
            return True, None
        closed = await communicator.receive_output(timeout=1)
        return False, closed.get("code")

    return async_to_sync(run)()


def register_femi() -> str:
    user = services.household_register(
        name="Femi Adeyemi",
        email="femi@test.example",
        password="a-long-and-unusual-passphrase",
        household_kind=HouseholdKind.PROSUMER,
    )
    return user.identity.address


def test_it_pushes_a_new_account_to_a_watching_operator(grid_operator: User) -> None:
    handshake = headers(grid_operator)

    async def run() -> tuple[bool, str, Any]:
        communicator, (connected, _) = await _connect(handshake)
        address = await database_sync_to_async(register_femi)()
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return connected, address, message

    connected, address, message = async_to_sync(run)()
    assert connected is True
    assert message == {"type": "accounts.changed", "address": address}


def test_it_lets_a_regulator_watch_too(regulator: User) -> None:
    assert connect(regulator) == (True, None)


def test_it_refuses_a_household(prosumer: User) -> None:
    assert connect(prosumer) == (False, CLOSE_FORBIDDEN)


def test_it_refuses_an_anonymous_visitor(db: None) -> None:
    assert connect(None) == (False, CLOSE_FORBIDDEN)


def test_it_refuses_a_foreign_origin(grid_operator: User) -> None:
    connected, _ = connect(grid_operator, origin="https://evil.example")
    assert connected is False
