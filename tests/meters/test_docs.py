"""The vendor's example in docs/meters.md sends readings to a running server as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gridplatform.accounts.models import User
from meters import services
from meters.models import Reading
from tests.meters.support import aligned_past, readings

DOC = Path(__file__).resolve().parents[2] / "docs" / "meters.md"


def example() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(blocks[0], namespace)  # noqa: S102 - our own documentation
    return namespace


@pytest.mark.django_db(transaction=True)
def test_it_sends_readings_as_the_vendor_example_does(live_server: Any, prosumer: User) -> None:
    code = example()
    key = Ed25519PrivateKey.generate()
    _, token = services.meter_register(
        by=prosumer,
        owner=prosumer,
        meter_id="roof-pv-1",
        kind="pv",
        public_key=code["public_key_hex"](key),
        feeder="f1",
    )
    batch = readings(4, start_s=aligned_past(4))
    send = code["send_readings"]
    assert send(live_server.url, "roof-pv-1", token, key, batch) == (
        202,
        {"accepted": 4, "duplicates": 0, "batch": Reading.objects.first().batch_id},
    )
    assert send(live_server.url, "roof-pv-1", token, key, batch)[1]["duplicates"] == 4
    status, answer = send(live_server.url, "roof-pv-1", "not-the-token", key, batch)
    assert (status, answer["code"]) == (401, "authentication_failed")
    assert Reading.objects.count() == 4
