"""Meter services: registration and its permissions, tokens, and ingestion (stored once, in bulk,
relayed after commit), and the selectors' scoping."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from gridplatform.accounts.models import User
from gridplatform.errors import DomainError
from ledger.identity import KeyPair
from meters import selectors, services, signing
from meters.models import Meter, MeterToken, Reading, ReadingBatch
from tests.meters.support import aligned_past, encode, readings, register

pytestmark = pytest.mark.django_db


def code_of(raised: pytest.ExceptionInfo[DomainError]) -> tuple[int, str]:
    return raised.value.status_code, raised.value.code


def ingest(device: Any, body: Any, *, t: int | None = None) -> services.Ingestion:
    raw = encode(body)
    t = int(time.time()) if t is None else t
    header = signing.header_value(device.key, raw, t=t)
    return services.readings_ingest(meter=device.meter, body=raw, signature_header=header)


# --- registration ------------------------------------------------------------------------------


def test_it_registers_a_households_own_meter_with_a_token_stored_as_its_digest(
    prosumer: User,
) -> None:
    key = KeyPair.generate()
    meter, token = services.meter_register(
        by=prosumer,
        owner=prosumer,
        meter_id="roof-pv-1",
        kind="pv",
        public_key=key.public_key_hex,
        feeder="f1",
    )
    assert (meter.owner, meter.registered_by, meter.kind, meter.interval_s) == (
        prosumer,
        prosumer,
        "pv",
        900,
    )
    assert meter.active is True
    row = MeterToken.objects.get()
    assert (row.meter, row.prefix, row.revoked_at) == (meter, token[:8], None)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    # The token itself is nowhere in the database.
    assert len(token) >= 43
    assert not MeterToken.objects.filter(digest=token).exists()
    assert token not in json.dumps(list(MeterToken.objects.values("prefix", "digest")))
    assert services.meter_authenticate(meter_id="roof-pv-1", token=token) == meter


def test_it_lets_the_grid_operator_register_any_households_meter(
    grid_operator: User, consumer: User
) -> None:
    device = register(consumer, "cellar-1", by=grid_operator, kind="consumption", interval_s=300)
    meter = Meter.objects.get()
    assert (meter.owner, meter.registered_by, meter.interval_s) == (consumer, grid_operator, 300)
    assert services.meter_authenticate(meter_id="cellar-1", token=device.token) == meter


@pytest.mark.parametrize("who", ["regulator", "admin", "outsider", "grid_operator_for_operator"])
def test_it_refuses_anyone_else_and_stores_nothing(
    who: str,
    request: pytest.FixtureRequest,
    prosumer: User,
    grid_operator: User,
) -> None:
    owner = prosumer
    if who == "grid_operator_for_operator":
        by, owner = grid_operator, grid_operator
        expected = (400, "not_household")
    else:
        by = request.getfixturevalue(who)
        expected = (403, "forbidden")
    with pytest.raises(DomainError) as raised:
        register(owner, by=by)
    assert code_of(raised) == expected
    assert (Meter.objects.count(), MeterToken.objects.count()) == (0, 0)


def test_it_refuses_a_deactivated_household(grid_operator: User, prosumer: User) -> None:
    User.objects.filter(pk=prosumer.pk).update(is_active=False)
    prosumer.refresh_from_db()
    with pytest.raises(DomainError) as raised:
        register(prosumer, by=grid_operator)
    assert code_of(raised) == (400, "not_household")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("meter_id", "", "bad_meter_id"),
        ("meter_id", "Roof-PV", "bad_meter_id"),
        ("meter_id", "-roof", "bad_meter_id"),
        ("meter_id", "roof pv", "bad_meter_id"),
        ("meter_id", "a" * 65, "bad_meter_id"),
        ("meter_id", "roof\x00", "bad_meter_id"),
        ("kind", "wind", "bad_kind"),
        ("public_key", "ab" * 31, "bad_public_key"),
        ("public_key", "AB" * 32, "bad_public_key"),
        ("public_key", "zz" * 32, "bad_public_key"),
        ("feeder", "", "bad_feeder"),
        ("feeder", "F1", "bad_feeder"),
        ("feeder", "f" * 65, "bad_feeder"),
        ("feeder", ".f1", "bad_feeder"),
        ("interval_s", 600, "bad_interval"),
        ("interval_s", 900.0, "bad_interval"),
        ("interval_s", True, "bad_interval"),
    ],
)
def test_it_refuses_bad_fields_with_their_codes_and_stores_nothing(
    prosumer: User, field: str, value: Any, code: str
) -> None:
    fields: dict[str, Any] = {
        "meter_id": "roof-pv-1",
        "kind": "pv",
        "public_key": KeyPair.generate().public_key_hex,
        "feeder": "f1",
        "interval_s": 900,
    }
    with pytest.raises(DomainError) as raised:
        services.meter_register(by=prosumer, owner=prosumer, **(fields | {field: value}))
    assert code_of(raised) == (400, code)
    assert Meter.objects.count() == 0


def test_it_takes_the_longest_ids_and_names(prosumer: User) -> None:
    register(prosumer, "a" * 64, feeder="f." + "b" * 62)
    assert Meter.objects.get().meter_id == "a" * 64


def test_it_refuses_a_taken_meter_id_or_device_key(prosumer: User, consumer: User) -> None:
    device = register(prosumer, "roof-pv-1")
    with pytest.raises(DomainError) as raised:
        register(consumer, "roof-pv-1")
    assert code_of(raised) == (400, "meter_id_taken")
    with pytest.raises(DomainError) as raised:
        services.meter_register(
            by=consumer,
            owner=consumer,
            meter_id="other",
            kind="pv",
            public_key=device.key.public_key_hex,
            feeder="f1",
        )
    assert code_of(raised) == (400, "public_key_taken")
    assert list(Meter.objects.values_list("meter_id", flat=True)) == ["roof-pv-1"]


def test_it_refuses_a_seventeenth_meter(prosumer: User) -> None:
    for i in range(services.MAX_METERS_PER_OWNER):
        register(prosumer, f"m{i}")
    with pytest.raises(DomainError) as raised:
        register(prosumer, "one-more")
    assert code_of(raised) == (400, "too_many_meters")
    assert Meter.objects.count() == services.MAX_METERS_PER_OWNER


# --- tokens ------------------------------------------------------------------------------------


def test_it_rotates_a_token_revoking_the_old_one(prosumer: User) -> None:
    device = register(prosumer)
    row, token = services.meter_token_rotate(by=prosumer, meter_id="roof-pv-1")
    assert token != device.token
    assert (row.prefix, row.revoked_at) == (token[:8], None)
    old = MeterToken.objects.get(digest=hashlib.sha256(device.token.encode()).hexdigest())
    assert old.revoked_at is not None
    assert MeterToken.objects.filter(meter=device.meter, revoked_at__isnull=True).get() == row
    with pytest.raises(services.InvalidMeterToken):
        services.meter_authenticate(meter_id="roof-pv-1", token=device.token)
    assert services.meter_authenticate(meter_id="roof-pv-1", token=token) == device.meter


def test_it_revokes_a_token_idempotently(prosumer: User, grid_operator: User) -> None:
    device = register(prosumer)
    revoked = services.meter_token_revoke(by=grid_operator, meter_id="roof-pv-1")
    assert revoked is not None
    assert revoked.prefix == device.token[:8]
    assert services.meter_token_revoke(by=prosumer, meter_id="roof-pv-1") is None
    assert MeterToken.objects.filter(revoked_at__isnull=True).count() == 0
    with pytest.raises(services.InvalidMeterToken):
        services.meter_authenticate(meter_id="roof-pv-1", token=device.token)
    # Rotating gives the meter a token again.
    _, token = services.meter_token_rotate(by=prosumer, meter_id="roof-pv-1")
    assert services.meter_authenticate(meter_id="roof-pv-1", token=token) == device.meter


def test_it_hides_another_households_meter_and_forbids_regulators_its_token(
    prosumer: User, outsider: User, regulator: User
) -> None:
    device = register(prosumer)
    with pytest.raises(Http404):
        services.meter_token_rotate(by=outsider, meter_id="roof-pv-1")
    with pytest.raises(Http404):
        services.meter_token_revoke(by=outsider, meter_id="roof-pv-1")
    with pytest.raises(DomainError) as raised:
        services.meter_token_rotate(by=regulator, meter_id="roof-pv-1")
    assert code_of(raised) == (403, "forbidden")
    assert services.meter_authenticate(meter_id="roof-pv-1", token=device.token) == device.meter
    assert MeterToken.objects.count() == 1


def test_it_authenticates_only_the_meter_the_token_is_for(prosumer: User) -> None:
    first = register(prosumer, "first")
    register(prosumer, "second")
    for meter_id, token in [
        ("second", first.token),
        ("nobody", first.token),
        ("first", ""),
        ("first", first.token + "x"),
        ("first", "x" * 300),
        ("first\x00", first.token),
    ]:
        with pytest.raises(services.InvalidMeterToken) as raised:
            services.meter_authenticate(meter_id=meter_id, token=token)
        assert (raised.value.status_code, raised.value.code) == (401, "authentication_failed")


def test_it_refuses_an_inactive_meter_or_a_deactivated_owner(prosumer: User) -> None:
    device = register(prosumer)
    Meter.objects.filter(pk=device.meter.pk).update(active=False)
    with pytest.raises(services.InvalidMeterToken):
        services.meter_authenticate(meter_id="roof-pv-1", token=device.token)
    Meter.objects.filter(pk=device.meter.pk).update(active=True)
    User.objects.filter(pk=prosumer.pk).update(is_active=False)
    with pytest.raises(services.InvalidMeterToken):
        services.meter_authenticate(meter_id="roof-pv-1", token=device.token)


# --- ingestion ---------------------------------------------------------------------------------


def test_it_stores_a_batch_with_its_signed_bytes_and_relays_it_after_commit(
    prosumer: User,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
    tasks_inline: None,
) -> None:
    device = register(prosumer)
    first = aligned_past(4)
    raw = encode(readings(4, start_s=first))
    t = int(time.time())
    header = signing.header_value(device.key, raw, t=t)
    caplog.set_level(logging.INFO, logger="meters.relay")
    with django_capture_on_commit_callbacks() as callbacks:
        result = services.readings_ingest(meter=device.meter, body=raw, signature_header=header)
        assert "not relayed" not in caplog.text  # nothing is relayed before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    batch = ReadingBatch.objects.get()
    assert result == services.Ingestion(batch=batch, accepted=4, duplicates=0)
    assert (bytes(batch.body), batch.signed_t, batch.signature) == (raw, t, header[-128:])
    assert (batch.accepted, batch.duplicates, batch.meter) == (4, 0, device.meter)
    # Anyone holding the meter's key can check the stored bytes again, without a clock.
    signing.check(
        device.meter.public_key, t=batch.signed_t, body=bytes(batch.body), signature=batch.signature
    )
    stored = list(
        Reading.objects.order_by("start").values(
            "start", "duration_s", "import_wh", "export_wh", "quality", "batch", "received_at"
        )
    )
    assert stored == [
        {
            "start": datetime.fromtimestamp(first + i * 900, UTC),
            "duration_s": 900,
            "import_wh": i,
            "export_wh": 100 + i,
            "quality": "actual",
            "batch": batch.pk,
            "received_at": batch.received_at,
        }
        for i in range(4)
    ]
    # The relay ran after the commit, as a task (this site has no grid operator to sign it: it
    # says so, and meters.relay_pending sends it later; tests/market/test_statements.py relays
    # for real).
    assert "no grid operator with a custodial key: meter.readings not relayed" in caplog.text


def test_it_stores_a_resent_batch_once_and_relays_only_what_is_new(
    prosumer: User, django_capture_on_commit_callbacks: Any
) -> None:
    device = register(prosumer)
    batch = readings(1_000)
    with django_capture_on_commit_callbacks() as callbacks:
        results = [ingest(device, batch) for _ in range(5)]
    assert [(r.accepted, r.duplicates) for r in results] == [(1_000, 0)] + [(0, 1_000)] * 4
    assert [r.batch is None for r in results] == [False, True, True, True, True]
    assert len(callbacks) == 1
    assert (Reading.objects.count(), ReadingBatch.objects.count()) == (1_000, 1)


def test_it_counts_duplicates_and_stores_the_rest(prosumer: User) -> None:
    device = register(prosumer)
    ten = readings(10)
    older, newer = ten[:6], ten[6:]
    ingest(device, older)
    result = ingest(device, older[3:] + newer)
    assert (result.accepted, result.duplicates) == (4, 3)
    assert result.batch is not None
    assert (result.batch.accepted, result.batch.duplicates) == (4, 3)
    assert Reading.objects.count() == 10
    assert Reading.objects.filter(batch=result.batch).count() == 4


def test_it_refuses_a_changed_reading_and_stores_nothing_of_its_batch(prosumer: User) -> None:
    device = register(prosumer)
    first = aligned_past(6)
    ingest(device, readings(4, start_s=first))
    changed = readings(6, start_s=first)  # the same four intervals and two new ones ...
    changed[1]["export_wh"] += 1  # ... one of them changed,
    changed[2]["quality"] = "estimated"  # ... and one restated
    with pytest.raises(DomainError) as raised:
        ingest(device, changed)
    assert code_of(raised) == (409, "conflict")
    assert raised.value.detail == {
        "conflicts": [
            {
                "index": 1,
                "start": changed[1]["start"],
                "stored": {
                    "duration_s": 900,
                    "import_wh": 1,
                    "export_wh": 101,
                    "quality": "actual",
                },
            },
            {
                "index": 2,
                "start": changed[2]["start"],
                "stored": {
                    "duration_s": 900,
                    "import_wh": 2,
                    "export_wh": 102,
                    "quality": "actual",
                },
            },
        ]
    }
    assert (Reading.objects.count(), ReadingBatch.objects.count()) == (4, 1)


def test_it_finds_duplicates_and_conflicts_in_one_lookup_and_inserts_in_bulk(
    prosumer: User,
) -> None:
    device = register(prosumer)
    batch = readings(2_000)
    ingest(device, batch[:1_000])
    with CaptureQueriesContext(connection) as queries:
        result = ingest(device, batch)
    assert (result.accepted, result.duplicates) == (1_000, 1_000)
    sql = [q["sql"] for q in queries.captured_queries]
    # The latest interval stored (one index probe), then the batch's intervals at once.
    assert len([q for q in sql if 'FROM "meters_reading"' in q or "FROM meters_reading" in q]) == 2
    inserts = [q for q in sql if re.match(r'\s*INSERT INTO "?meters_reading"?\s', q)]
    if connection.vendor == "postgresql":
        assert len(inserts) == 1  # the whole batch as arrays
    else:  # the ORM's bulk insert, split only by SQLite's 999-parameter limit
        assert len(inserts) == -(-1_000 // connection.ops.bulk_batch_size(["x"] * 8, []))
    # Besides: the lock, the batch row and savepoints; nothing per reading.
    assert len(sql) - len(inserts) <= 6


def test_it_looks_up_nothing_for_a_batch_after_the_latest_interval_stored(
    prosumer: User,
) -> None:
    device = register(prosumer)
    batch = readings(2_000)
    ingest(device, batch[:1_000])
    with CaptureQueriesContext(connection) as queries:
        result = ingest(device, batch[1_000:])
    assert (result.accepted, result.duplicates) == (1_000, 0)
    sql = [q["sql"] for q in queries.captured_queries]
    [probe] = [q for q in sql if 'FROM "meters_reading"' in q or "FROM meters_reading" in q]
    assert "ORDER BY" in probe
    assert "LIMIT 1" in probe


def test_it_stores_nothing_for_an_empty_batch(prosumer: User) -> None:
    device = register(prosumer)
    assert ingest(device, []) == services.Ingestion(batch=None, accepted=0, duplicates=0)
    assert ReadingBatch.objects.count() == 0


def test_it_checks_the_signature_before_reading_the_body(prosumer: User) -> None:
    device = register(prosumer)
    with pytest.raises(DomainError) as raised:
        services.readings_ingest(meter=device.meter, body=b"junk", signature_header=None)
    assert code_of(raised) == (401, "bad_signature")
    with pytest.raises(DomainError) as raised:
        ingest(device, b"junk", t=int(time.time()) - 1_000)
    assert code_of(raised) == (401, "stale_signature")
    with pytest.raises(DomainError) as raised:
        ingest(device, b"junk")
    assert code_of(raised) == (400, "malformed")
    assert ReadingBatch.objects.count() == 0


def test_it_refuses_a_reading_that_the_ledger_would_not_take(prosumer: User) -> None:
    device = register(prosumer, interval_s=300)
    with pytest.raises(DomainError) as raised:
        ingest(device, readings(3))  # 900 s readings for a 5-minute meter
    assert code_of(raised) == (400, "invalid_readings")
    assert Reading.objects.count() == 0
    assert ingest(device, readings(3, interval=300)).accepted == 3


def test_it_keeps_readings_append_only(prosumer: User) -> None:
    device = register(prosumer)
    ingest(device, readings(1))
    reading = Reading.objects.get()
    reading.export_wh = 0
    with pytest.raises(ValueError, match="append-only"):
        reading.save()
    with pytest.raises(ValueError, match="append-only"):
        reading.delete()
    assert Reading.objects.get().export_wh == 100


# --- selectors ---------------------------------------------------------------------------------


def test_it_scopes_meters_by_who_asks(
    prosumer: User, consumer: User, outsider: User, grid_operator: User, regulator: User
) -> None:
    register(prosumer, "a-pv")
    register(consumer, "b-home")

    def ids(user: User) -> list[str]:
        return [m.meter_id for m in selectors.meter_list(user=user)]

    assert ids(prosumer) == ["a-pv"]
    assert ids(consumer) == ["b-home"]
    assert ids(outsider) == []
    assert ids(grid_operator) == ["a-pv", "b-home"]
    assert ids(regulator) == ["a-pv", "b-home"]
    with pytest.raises(Http404):
        selectors.access_meter(user=outsider, meter_id="a-pv")
    with pytest.raises(Http404):
        selectors.reading_list(user=consumer, meter_id="a-pv")
    assert selectors.access_meter(user=regulator, meter_id="a-pv").owner == prosumer


def test_it_annotates_the_active_token_and_the_latest_reading(prosumer: User) -> None:
    device = register(prosumer)
    meter = selectors.access_meter(user=prosumer, meter_id="roof-pv-1")
    assert (meter.token_prefix, meter.last_reading_start) == (device.token[:8], None)
    first = aligned_past(3)
    ingest(device, readings(3, start_s=first))
    services.meter_token_revoke(by=prosumer, meter_id="roof-pv-1")
    meter = selectors.access_meter(user=prosumer, meter_id="roof-pv-1")
    assert meter.token_prefix is None
    assert meter.last_reading_start == datetime.fromtimestamp(first + 2 * 900, UTC)


def test_it_lists_readings_in_a_half_open_range(prosumer: User) -> None:
    device = register(prosumer)
    first = aligned_past(8)
    ingest(device, readings(8, start_s=first))
    rows = selectors.reading_list(
        user=prosumer,
        meter_id="roof-pv-1",
        start=datetime.fromtimestamp(first + 2 * 900, UTC),
        end=datetime.fromtimestamp(first + 5 * 900, UTC),
    )
    assert [r.export_wh for r in rows] == [102, 103, 104]


def test_a_broker_that_cannot_take_the_relay_task_loses_no_reading(
    prosumer: User,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kombu.exceptions import OperationalError

    from meters import tasks

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.batch_relay, "delay", broker_down)
    device = register(prosumer)
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest(device, readings(3))
    assert result.accepted == 3
    assert (Reading.objects.count(), ReadingBatch.objects.get().relay_tx) == (3, "")
    assert "not queued for the relay; relay_pending will send it" in caplog.text


def test_the_relay_task_skips_a_batch_already_relayed(
    prosumer: User, caplog: pytest.LogCaptureFixture
) -> None:
    from meters import tasks

    caplog.set_level(logging.INFO, logger="meters.relay")
    device = register(prosumer)
    batch = ingest(device, readings(2)).batch
    assert batch is not None
    tasks.batch_relay(batch.pk)  # this site has no grid operator: it tries, and says so
    assert caplog.text.count("meter.readings not relayed") == 1
    ReadingBatch.objects.filter(pk=batch.pk).update(relay_tx="ab" * 32)
    tasks.batch_relay(batch.pk)  # delivered again (acks_late) after it was relayed: nothing sent
    tasks.batch_relay(batch.pk + 1)  # no such batch
    assert caplog.text.count("meter.readings not relayed") == 1


# --- what the network allows -------------------------------------------------------------------


@pytest.fixture
def five_minute_network(settings: Any, tmp_path: Any) -> None:
    """This site's network: a genesis with 5-minute delivery slots."""
    from tests.ledger.chains import genesis_of

    genesis, _ = genesis_of(options=(("market.slot_ms", 300_000),))
    genesis.to_json_file(tmp_path / "genesis.json")
    settings.LEDGER_DIR = tmp_path


@pytest.mark.usefixtures("five_minute_network")
def test_a_meter_whose_interval_does_not_divide_the_networks_slot_is_refused(
    prosumer: User,
) -> None:
    # 900 s readings on 5-minute slots: the ledger would refuse the meter (bad_interval), and
    # its readings would never count at settlement. The site says so first, and keeps nothing.
    with pytest.raises(DomainError) as refused:
        register(prosumer, "roof-pv-1", interval_s=900)
    assert code_of(refused) == (400, "interval_not_in_slot")
    assert not Meter.objects.exists()
    assert not MeterToken.objects.exists()
    assert selectors.intervals_allowed() == (60, 300)
    # Without an interval, the longest one that divides the slot.
    assert register(prosumer, "roof-pv-2").meter.interval_s == 300


def test_on_fifteen_minute_slots_every_interval_is_allowed_and_900_is_the_default(
    prosumer: User,
) -> None:
    assert selectors.intervals_allowed() == (60, 300, 900)
    assert register(prosumer, "roof-pv-1").meter.interval_s == 900


def test_a_meter_without_a_feeder_is_on_its_owners_assigned_feeder(
    prosumer: User, grid_operator: User
) -> None:
    from market.models import MarketAccount

    key = KeyPair.generate()
    fields = {"meter_id": "roof-pv-1", "kind": "pv", "public_key": key.public_key_hex}
    # No feeder assigned yet: the household cannot know one, and is told why.
    with pytest.raises(DomainError) as refused:
        services.meter_register(by=prosumer, owner=prosumer, **fields)
    assert code_of(refused) == (400, "feeder_not_assigned")
    assert not Meter.objects.exists()
    # The grid operator assigned it on the ledger (the projection's row): that one.
    MarketAccount.objects.create(address=prosumer.identity.address, feeder="feeder-north")
    meter, _ = services.meter_register(by=prosumer, owner=prosumer, **fields)
    assert meter.feeder == "feeder-north"
