"""The meters' REST API: devices sending signed batches (every status and code, each refusal
storing nothing), registration and tokens, readings read back, scoping, throttling, the schema."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema
from rest_framework.throttling import SimpleRateThrottle

from gridplatform.accounts.models import User
from ledger.identity import KeyPair
from meters import readings as rules
from meters import signing
from meters.api import MeterRateThrottle
from meters.models import Meter, MeterToken, Reading, ReadingBatch
from tests.meters.support import (
    API,
    Device,
    aligned_past,
    client_for,
    encode,
    error_of,
    iso,
    readings,
    register,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(prosumer: User) -> Device:
    return register(prosumer)


def stored() -> tuple[int, int]:
    return Reading.objects.count(), ReadingBatch.objects.count()


# --- sending readings --------------------------------------------------------------------------


def test_it_accepts_a_signed_batch(device: Device) -> None:
    response = device.send(readings(4))
    assert response.status_code == 202
    batch = ReadingBatch.objects.get()
    assert response.json() == {"accepted": 4, "duplicates": 0, "batch": batch.pk}
    assert stored() == (4, 1)


def test_it_stores_the_same_thousand_readings_once_when_sent_five_times(device: Device) -> None:
    batch = readings(1_000)
    answers = [device.send(batch) for _ in range(5)]
    assert [a.status_code for a in answers] == [202, 200, 200, 200, 200]
    assert [(a.json()["accepted"], a.json()["duplicates"]) for a in answers] == [
        (1_000, 0),
        (0, 1_000),
        (0, 1_000),
        (0, 1_000),
        (0, 1_000),
    ]
    assert [a.json()["batch"] is None for a in answers] == [False, True, True, True, True]
    assert stored() == (1_000, 1)


def test_it_counts_duplicates_among_new_readings(device: Device) -> None:
    batch = readings(10)
    device.send(batch[:4])
    response = device.send(batch)
    assert (response.status_code, response.json()["accepted"], response.json()["duplicates"]) == (
        202,
        6,
        4,
    )
    assert stored() == (10, 2)


def test_it_answers_a_changed_reading_with_409_naming_it_and_stores_nothing(
    device: Device,
) -> None:
    first = aligned_past(5)
    device.send(readings(3, start_s=first))
    changed = readings(5, start_s=first)
    changed[2]["import_wh"] = 99
    response = device.send(changed)
    assert error_of(response) == (409, "conflict")
    assert response.json()["detail"] == {
        "conflicts": [
            {
                "index": 2,
                "start": iso(first + 1_800),
                "stored": {
                    "duration_s": 900,
                    "import_wh": 2,
                    "export_wh": 102,
                    "quality": "actual",
                },
            }
        ]
    }
    assert stored() == (3, 1)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"start": "2026-01-01T11:30:00"}, "start", "no_zone"),
        ({"start": iso(aligned_past(0) + 1_800)}, "start", "in_future"),
        ({"import_wh": -1}, "import_wh", "negative_energy"),
        ({"duration_s": 300}, "duration_s", "wrong_duration"),
        ({"start": iso(aligned_past(3) + 60)}, "start", "misaligned"),
        ({"export_wh": 5.0}, "export_wh", "not_integer"),
        ({"export_wh": False}, "export_wh", "not_integer"),
        ({"quality": "good"}, "quality", "bad_quality"),
    ],
)
def test_it_refuses_a_batch_with_a_bad_reading_naming_it_and_stores_nothing(
    device: Device, change: dict[str, Any], field: str, reason: str
) -> None:
    batch = readings(3, start_s=aligned_past(6))
    batch.append(readings(1, start_s=aligned_past(2))[0] | change)
    response = device.send(batch)
    assert error_of(response) == (400, "invalid_readings")
    errors = response.json()["detail"]["errors"]
    assert [(e["index"], e["field"], e["reason"]) for e in errors] == [(3, field, reason)]
    assert errors[0]["message"] == rules.REASONS[reason]
    assert stored() == (0, 0)


def test_it_refuses_overlapping_readings_in_one_batch(device: Device) -> None:
    batch = readings(3)
    response = device.send([*batch, batch[0]])
    assert error_of(response) == (400, "invalid_readings")
    assert response.json()["detail"]["errors"][0] | {"message": ""} == {
        "index": 3,
        "field": "start",
        "reason": "overlap",
        "overlaps": 0,
        "message": "",
    }
    assert stored() == (0, 0)


@pytest.mark.parametrize(
    "body",
    [b"", b"nonsense", b"[]", b'{"readings": 1}', b'{"readings": [], "readings": []}'],
)
def test_it_refuses_a_malformed_body(device: Device, body: bytes) -> None:
    assert error_of(device.send(body)) == (400, "malformed")
    assert stored() == (0, 0)


def test_it_refuses_more_than_two_thousand_readings_with_413(device: Device) -> None:
    response = device.send(readings(2_001, start_s=aligned_past(2_001)))
    assert error_of(response) == (413, "batch_too_large")
    assert response.json()["detail"] == {"max_readings": 2_000, "readings": 2_001}
    assert stored() == (0, 0)
    assert device.send(readings(2_000)).json()["accepted"] == 2_000


def test_it_refuses_a_body_over_a_mebibyte_with_413(device: Device) -> None:
    body = encode(readings(2)) + b" " * rules.MAX_BODY_BYTES
    assert error_of(device.send(body)) == (413, "batch_too_large")
    assert stored() == (0, 0)


# --- authentication and signatures -------------------------------------------------------------


def test_it_refuses_a_missing_token_with_401(device: Device) -> None:
    raw = encode(readings(1))
    response = Client().post(device.url, raw, content_type="application/json")
    assert error_of(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Meter realm="meters"'
    assert stored() == (0, 0)


def test_it_refuses_an_account_token_or_session_for_sending(device: Device, prosumer: User) -> None:
    api = client_for(prosumer)
    assert error_of(api.post(device.url, encode(readings(1)), content_type="application/json")) == (
        401,
        "not_authenticated",
    )
    browser = Client()
    browser.force_login(prosumer, backend="django.contrib.auth.backends.ModelBackend")
    response = browser.post(device.url, encode(readings(1)), content_type="application/json")
    assert error_of(response) == (401, "not_authenticated")
    assert stored() == (0, 0)


def test_it_refuses_a_bad_revoked_or_another_meters_token_with_401(
    device: Device, prosumer: User
) -> None:
    other = register(prosumer, "other-meter")
    for token in ["nonsense", other.token, "two words"]:
        assert error_of(device.send(readings(1), token=token)) == (401, "authentication_failed")
    client_for(prosumer).delete(f"{API}/meters/{device.meter.meter_id}/token")
    assert error_of(device.send(readings(1))) == (401, "authentication_failed")
    assert stored() == (0, 0)


def test_it_refuses_a_bad_signature_with_401(device: Device) -> None:
    batch = readings(2)
    raw = encode(batch)
    t = int(time.time())
    cases = {
        "no header": device.client.post(
            device.url,
            raw,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Meter {device.token}",
        ),
        "malformed": device.send(raw, signature="t=now,sig=abc"),
        "another key": device.send(raw, key=KeyPair.generate()),
        "other bytes": device.send(raw, signature=_header(device, raw + b" ", t)),
        "other t": device.send(
            raw, signature=_header(device, raw, t).replace(f"t={t}", f"t={t - 1}")
        ),
    }
    assert {name: error_of(r) for name, r in cases.items()} == dict.fromkeys(
        cases, (401, "bad_signature")
    )
    assert stored() == (0, 0)


def _header(device: Device, raw: bytes, t: int) -> str:
    return signing.header_value(device.key, raw, t=t)


# Well past the 5-minute window: a second passing on a busy machine between signing and the
# check must not bring it back inside (the exact boundary is tested with a fixed clock in
# tests/meters/test_readings.py).
@pytest.mark.parametrize("skew", [-330, 330])
def test_it_refuses_a_stale_signature_with_401(device: Device, skew: int) -> None:
    response = device.send(readings(2), t=int(time.time()) + skew)
    assert error_of(response) == (401, "stale_signature")
    assert stored() == (0, 0)


def test_it_takes_a_signature_made_a_little_earlier(device: Device) -> None:
    assert device.send(readings(2), t=int(time.time()) - 290).status_code == 202


def test_it_throttles_each_meter_on_its_own(
    device: Device, prosumer: User, monkeypatch: pytest.MonkeyPatch, throttle_clock: float
) -> None:
    other = register(prosumer, "other-meter")
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"user": "1000/min", "anon": "1000/min", "meter": "3/min"},
    )
    keys = [f"throttle_meter_{d.meter.pk}" for d in (device, other)]
    for key in keys:
        MeterRateThrottle.forget(key)
    try:
        batch = readings(3)
        codes = [device.send(batch[i : i + 1]).status_code for i in range(3)]
        response = device.send(batch)
        others = other.send(batch).status_code
    finally:
        for key in keys:
            MeterRateThrottle.forget(key)
    assert codes == [202, 202, 202]
    assert error_of(response) == (429, "throttled")
    assert 0 < response.json()["detail"]["retry_after"] <= 60
    assert response["Retry-After"] == str(response.json()["detail"]["retry_after"])
    assert others == 202
    assert Reading.objects.filter(meter=device.meter).count() == 3


# --- registration and tokens -------------------------------------------------------------------


def _registration(**change: Any) -> dict[str, Any]:
    return {
        "meter_id": "roof-pv-1",
        "kind": "pv",
        "public_key": KeyPair.generate().public_key_hex,
        "feeder": "f1",
    } | change


def test_it_registers_a_meter_and_shows_its_token_once(prosumer: User) -> None:
    api = client_for(prosumer)
    body = _registration()
    response = api.post(f"{API}/meters", body, content_type="application/json")
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    answer = response.json()
    token = answer.pop("token")
    meter = answer["meter"]
    assert (
        meter | {"created_at": None}
        == {
            "meter_id": "roof-pv-1",
            "owner": prosumer.identity.address,
            "kind": "pv",
            "carrier": "electricity",  # what a pv meter measures
            "unit": "kWh",
            "public_key": body["public_key"],
            "feeder": "f1",
            "interval_s": 900,
            "active": True,
            "created_at": None,
            "token": {"prefix": token[:8], "created_at": meter["token"]["created_at"]},
            "last_reading_start": None,
        }
    )
    assert MeterToken.objects.get().digest == hashlib.sha256(token.encode()).hexdigest()
    # Never again: not in the list, not in the meter.
    for path in ["/meters", "/meters/roof-pv-1"]:
        assert token not in api.get(f"{API}{path}").content.decode()


def test_it_lets_the_grid_operator_register_for_a_household(
    grid_operator: User, consumer: User
) -> None:
    body = _registration(owner=consumer.identity.address, interval_s=300)
    response = client_for(grid_operator).post(
        f"{API}/meters", body, content_type="application/json"
    )
    assert response.status_code == 201
    assert Meter.objects.get().owner == consumer
    assert Meter.objects.get().interval_s == 300


@pytest.mark.parametrize(
    ("who", "change", "expected"),
    [
        ("prosumer", {"owner": "consumer"}, (403, "forbidden")),
        ("regulator", {}, (403, "forbidden")),
        ("grid_operator", {"owner": "grid_operator"}, (400, "not_household")),
        ("grid_operator", {"owner": "a" * 50}, (400, "bad_address")),
        ("prosumer", {"meter_id": "Roof PV"}, (400, "bad_meter_id")),
        ("prosumer", {"meter_id": 5}, (400, "bad_meter_id")),
        ("prosumer", {"kind": "wind"}, (400, "bad_kind")),
        ("prosumer", {"public_key": "00" * 32 + "0"}, (400, "bad_public_key")),
        ("prosumer", {"feeder": "Feeder 1"}, (400, "bad_feeder")),
        ("prosumer", {"interval_s": 900.0}, (400, "bad_interval")),
        ("prosumer", {"interval_s": "900"}, (400, "bad_interval")),
        ("prosumer", {"interval_s": 3600}, (400, "bad_interval")),
    ],
)
def test_it_refuses_a_registration_with_its_code_and_stores_nothing(
    request: pytest.FixtureRequest,
    prosumer: User,
    consumer: User,
    who: str,
    change: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    if change.get("owner") in ("consumer", "grid_operator"):
        change = change | {"owner": request.getfixturevalue(change["owner"]).identity.address}
    api = client_for(request.getfixturevalue(who))
    response = api.post(f"{API}/meters", _registration(**change), content_type="application/json")
    assert error_of(response) == expected
    assert Meter.objects.count() == 0


def test_it_refuses_a_registration_that_is_not_an_object(prosumer: User) -> None:
    response = client_for(prosumer).post(f"{API}/meters", "[1]", content_type="application/json")
    assert error_of(response) == (400, "malformed")


def test_it_refuses_an_address_nobody_has(grid_operator: User) -> None:
    address = KeyPair.generate().address
    body = _registration(owner=address)
    response = client_for(grid_operator).post(
        f"{API}/meters", body, content_type="application/json"
    )
    assert error_of(response) == (400, "unknown_account")


def test_it_refuses_a_taken_meter_id(device: Device, consumer: User) -> None:
    response = client_for(consumer).post(
        f"{API}/meters", _registration(), content_type="application/json"
    )
    assert error_of(response) == (400, "meter_id_taken")
    assert Meter.objects.count() == 1


def test_it_rotates_a_token_once_and_the_old_one_stops_working(
    device: Device, prosumer: User
) -> None:
    response = client_for(prosumer).post(f"{API}/meters/roof-pv-1/token")
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    token = response.json()["token"]
    assert response.json()["prefix"] == token[:8]
    assert error_of(device.send(readings(1))) == (401, "authentication_failed")
    assert device.send(readings(1), token=token).status_code == 202


def test_it_revokes_a_token(device: Device, grid_operator: User) -> None:
    api = client_for(grid_operator)
    assert api.delete(f"{API}/meters/roof-pv-1/token").status_code == 204
    assert api.delete(f"{API}/meters/roof-pv-1/token").status_code == 204
    assert error_of(device.send(readings(1))) == (401, "authentication_failed")
    assert stored() == (0, 0)


def test_it_hides_another_households_meter(device: Device, outsider: User, regulator: User) -> None:
    api = client_for(outsider)
    for method, path in [
        ("get", "/meters/roof-pv-1"),
        ("get", "/meters/roof-pv-1/readings"),
        ("post", "/meters/roof-pv-1/token"),
        ("delete", "/meters/roof-pv-1/token"),
        ("get", "/meters/no-such-meter"),
        ("get", "/meters/bad%00id/readings"),
    ]:
        assert error_of(getattr(api, method)(f"{API}{path}")) == (404, "not_found"), path
    assert api.get(f"{API}/meters").json()["results"] == []
    regulators = client_for(regulator)
    assert error_of(regulators.post(f"{API}/meters/roof-pv-1/token")) == (403, "forbidden")
    assert error_of(regulators.delete(f"{API}/meters/roof-pv-1/token")) == (403, "forbidden")
    assert MeterToken.objects.get().revoked_at is None


def test_it_lists_a_households_meters_and_all_for_the_grid_operator(
    device: Device, consumer: User, grid_operator: User
) -> None:
    register(consumer, "b-home")

    def ids(user: User) -> list[str]:
        return [m["meter_id"] for m in client_for(user).get(f"{API}/meters").json()["results"]]

    assert ids(device.meter.owner) == ["roof-pv-1"]
    assert ids(consumer) == ["b-home"]
    assert ids(grid_operator) == ["b-home", "roof-pv-1"]


def test_it_needs_an_account_to_list_or_register(device: Device) -> None:
    assert error_of(Client().get(f"{API}/meters")) == (401, "not_authenticated")
    meter_auth = Client(HTTP_AUTHORIZATION=f"Meter {device.token}")
    assert error_of(meter_auth.get(f"{API}/meters")) == (401, "not_authenticated")
    assert error_of(meter_auth.get(device.url)) == (401, "not_authenticated")


# --- reading readings back ---------------------------------------------------------------------


def test_it_shows_readings_to_the_owner_the_grid_operator_and_regulators(
    device: Device, prosumer: User, grid_operator: User, regulator: User
) -> None:
    first = aligned_past(6)
    device.send(readings(6, start_s=first))
    for user in (prosumer, grid_operator, regulator):
        response = client_for(user).get(device.url)
        assert response.status_code == 200
        rows = response.json()["results"]
        assert [r["start"] for r in rows] == [iso(first + i * 900) for i in range(6)]
        assert rows[0] | {"received_at": None} == {
            "start": iso(first),
            "duration_s": 900,
            "import_wh": 0,
            "export_wh": 100,
            "quality": "actual",
            "received_at": None,
        }


def test_it_filters_readings_by_time_and_pages_them(device: Device, prosumer: User) -> None:
    first = aligned_past(10)
    device.send(readings(10, start_s=first))
    api = client_for(prosumer)
    since, until = iso(first + 2 * 900), iso(first + 8 * 900)
    response = api.get(f"{device.url}?from={since}&to={until}&limit=4")
    page = response.json()
    assert page["count"] == 6
    assert [r["export_wh"] for r in page["results"]] == [102, 103, 104, 105]
    assert [r["export_wh"] for r in api.get(page["next"]).json()["results"]] == [106, 107]
    # The same instants written with an offset, "+" encoded or not.
    offset = since.replace("Z", "+00:00")
    for value in (quote(offset), offset):
        assert api.get(f"{device.url}?from={value}").json()["count"] == 8


@pytest.mark.parametrize("value", ["2026-01-01T11:30:00", "yesterday", "0001-01-01T00:00%2B05:00"])
def test_it_refuses_a_time_without_zone_in_the_query(
    device: Device, prosumer: User, value: str
) -> None:
    response = client_for(prosumer).get(f"{device.url}?from={value}")
    assert error_of(response) == (400, "bad_time")


# --- the schema --------------------------------------------------------------------------------


def test_it_publishes_every_meter_endpoint_with_its_error_codes(db: None) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    validate_schema(schema)
    paths = schema["paths"]
    assert {path: sorted(paths[path]) for path in paths if path.startswith(f"{API}/meters")} == {
        f"{API}/meters": ["get", "post"],
        f"{API}/meters/{{meter_id}}": ["get"],
        f"{API}/meters/{{meter_id}}/token": ["delete", "post"],
        f"{API}/meters/{{meter_id}}/readings": ["get", "post"],
    }
    send = paths[f"{API}/meters/{{meter_id}}/readings"]["post"]
    assert send["security"] == [{"meterToken": []}]
    assert sorted(send["responses"]) == ["200", "202", "400", "401", "409", "413", "429"]
    for code in [
        "not_authenticated",
        "authentication_failed",
        "bad_signature",
        "stale_signature",
        "malformed",
        "invalid_readings",
        "batch_too_large",
        "conflict",
        "throttled",
        *rules.REASONS,
    ]:
        assert f"`{code}`" in send["description"], code
    assert any(p["name"] == "X-Meter-Signature" and p["in"] == "header" for p in send["parameters"])
    register_ = paths[f"{API}/meters"]["post"]
    for code in ["bad_meter_id", "bad_public_key", "meter_id_taken", "too_many_meters"]:
        assert f"`{code}`" in register_["description"], code
    assert "meterToken" in schema["components"]["securitySchemes"]
    assert (
        json.dumps(paths[f"{API}/meters/{{meter_id}}/readings"]["get"]["security"]).count(
            "meterToken"
        )
        == 0
    )
