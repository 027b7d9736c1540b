"""Meters in tests: a device with a real Ed25519 key, its token, and batches it signs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import User
from ledger.identity import KeyPair
from meters import services, signing
from meters.models import Meter, Reading, ReadingBatch

API = "/api/v1"
INTERVAL = 900


@dataclass
class Device:
    """A registered meter as its device knows it: its id, key pair and token."""

    meter: Meter
    key: KeyPair
    token: str
    client: Client = field(default_factory=Client)

    @property
    def url(self) -> str:
        return f"{API}/meters/{self.meter.meter_id}/readings"

    def send(
        self,
        body: bytes | dict[str, Any] | list[dict[str, Any]],
        *,
        t: int | None = None,
        token: str | None = None,
        signature: str | None = None,
        key: KeyPair | None = None,
    ) -> Any:
        """POST ``body`` (readings, a dict, or exact bytes) signed at ``t`` (now by default)."""
        raw = encode(body)
        t = int(time.time()) if t is None else t
        header = signature or signing.header_value(key or self.key, raw, t=t)
        return self.client.post(
            self.url,
            raw,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Meter {token or self.token}",
            HTTP_X_METER_SIGNATURE=header,
        )


def encode(body: bytes | dict[str, Any] | list[dict[str, Any]]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, list):
        body = {"readings": body}
    return json.dumps(body).encode()


def register(
    owner: User, meter_id: str = "roof-pv-1", *, by: User | None = None, **fields: Any
) -> Device:
    key = KeyPair.generate()
    meter, token = services.meter_register(
        by=by or owner,
        owner=owner,
        meter_id=meter_id,
        kind=fields.pop("kind", "bidirectional"),
        public_key=key.public_key_hex,
        feeder=fields.pop("feeder", "f1"),
        **fields,
    )
    return Device(meter=meter, key=key, token=token)


def aligned_past(n: int, interval: int = INTERVAL) -> int:
    """The start (Unix seconds) of ``n`` whole intervals that ended before now."""
    now = int(time.time())
    return now - now % interval - n * interval


def iso(start_s: int) -> str:
    return datetime.fromtimestamp(start_s, UTC).isoformat().replace("+00:00", "Z")


def readings(
    n: int, *, start_s: int | None = None, interval: int = INTERVAL, **values: Any
) -> list[dict[str, Any]]:
    """``n`` consecutive readings ending before now (or from ``start_s``); energy varies."""
    first = aligned_past(n, interval) if start_s is None else start_s
    return [
        {
            "start": iso(first + i * interval),
            "duration_s": interval,
            "import_wh": values.get("import_wh", i % 7),
            "export_wh": values.get("export_wh", 100 + i % 50),
            "quality": values.get("quality", "actual"),
        }
        for i in range(n)
    ]


def client_for(user: User) -> Client:
    _, token = account_services.api_token_create(user=user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def store_readings(meter: Meter, *rows: tuple[datetime, int, int]) -> None:
    """Readings ``(start, import_wh, export_wh)`` of the meter's interval, written straight to
    the database (no signed request): for tests of what reads them."""
    batch = ReadingBatch.objects.create(
        meter=meter,
        signed_t=0,
        signature="0" * 128,
        body=b"{}",
        accepted=len(rows),
        duplicates=0,
    )
    Reading.objects.bulk_create(
        Reading(
            meter=meter,
            batch=batch,
            start=start,
            duration_s=meter.interval_s,
            import_wh=import_wh,
            export_wh=export_wh,
            quality="actual",
            received_at=start + timedelta(seconds=meter.interval_s),
        )
        for start, import_wh, export_wh in rows
    )


# --- the flows' tests (meters' and market's) ---------------------------------------------------


@pytest.fixture
def default_market(settings: Any, tmp_path: Path) -> None:
    """No genesis document: the market's default options (15-minute slots), whatever the
    checkout's own ledger directory holds."""
    settings.LEDGER_DIR = tmp_path


def at(hour: int, minute: int, day: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client
