"""The pure rules of a batch (meters.readings) and of its signature (meters.signing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.identity import KeyPair
from meters import readings as rules
from meters import signing
from tests.meters.support import readings

NOW = 1_767_270_000  # 2026-01-01T12:20:00Z
START = NOW - NOW % 900 - 3 * 900  # three whole intervals before now: 11:30


def parse(items: Any, *, interval_s: int = 900, now_s: int = NOW) -> list[rules.ParsedReading]:
    return rules.parse_batch(
        json.dumps({"readings": items}).encode(), interval_s=interval_s, now_s=now_s
    )


def problems_of(items: Any, **kwargs: Any) -> list[tuple[int, str, str]]:
    with pytest.raises(rules.InvalidReadings) as raised:
        parse(items, **kwargs)
    assert raised.value.code == "invalid_readings"
    assert raised.value.status_code == 400
    errors = raised.value.detail["errors"]  # type: ignore[index]
    return [(e["index"], e["field"], e["reason"]) for e in errors]


def test_it_parses_a_batch_in_its_order() -> None:
    parsed = parse(readings(3, start_s=START))
    assert [(r.index, r.start_s, r.duration_s, r.quality) for r in parsed] == [
        (0, START, 900, "actual"),
        (1, START + 900, 900, "actual"),
        (2, START + 1800, 900, "actual"),
    ]
    assert [(r.import_wh, r.export_wh) for r in parsed] == [(0, 100), (1, 101), (2, 102)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T11:30:00Z", START),
        ("2026-01-01t11:30:00z", START),
        ("2026-01-01T12:30:00+01:00", START),
        ("2026-01-01T06:00:00-05:30", START),
        ("2026-01-01T11:30:00-00:00", START),
        ("2026-01-01T11:30:00.000Z", START),
    ],
)
def test_it_reads_every_zone_to_the_same_instant(text: str, expected: int) -> None:
    assert rules.parse_start(text) == (expected, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-01-01T11:30:00", "no_zone"),
        ("2026-01-01 11:30:00Z", "bad_start"),
        ("2026-1-1T11:30:00Z", "bad_start"),
        ("2026-01-01T11:30Z", "bad_start"),
        ("2026-02-30T11:30:00Z", "bad_start"),
        ("2026-01-01T23:59:60Z", "bad_start"),
        ("2026-01-01T11:30:00+0100", "bad_start"),
        ("2026-01-01T11:30:00+24:00", "bad_start"),
        ("1969-12-31T23:45:00Z", "bad_start"),
        ("٢٠٢٦-01-01T11:30:00Z", "bad_start"),  # Arabic-Indic digits are not RFC 3339's
        ("2026-01-01T11:30:00.5Z", "misaligned"),
        (1767267000, "bad_start"),
    ],
)
def test_it_refuses_a_start_that_is_not_rfc_3339_with_its_zone(text: Any, reason: str) -> None:
    assert rules.parse_start(text) == (None, reason)


def _one(**change: Any) -> list[dict[str, Any]]:
    item = readings(1, start_s=START)[0]
    for name, value in change.items():
        if value is ...:
            del item[name]
        else:
            item[name] = value
    return [item]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"start": "2026-01-01T11:30:00"}, "start", "no_zone"),
        ({"start": "yesterday"}, "start", "bad_start"),
        ({"start": "2026-01-01T12:30:00Z"}, "start", "in_future"),
        ({"start": "2026-01-01T11:35:00Z"}, "start", "misaligned"),
        ({"duration_s": 300}, "duration_s", "wrong_duration"),
        ({"duration_s": 900.0}, "duration_s", "not_integer"),
        ({"duration_s": "900"}, "duration_s", "not_integer"),
        ({"import_wh": -1}, "import_wh", "negative_energy"),
        ({"export_wh": -5}, "export_wh", "negative_energy"),
        ({"export_wh": 1.5}, "export_wh", "not_integer"),
        ({"import_wh": True}, "import_wh", "not_integer"),
        ({"import_wh": None}, "import_wh", "not_integer"),
        ({"export_wh": 10**9 + 1}, "export_wh", "out_of_range"),
        ({"quality": "measured"}, "quality", "bad_quality"),
        ({"quality": ...}, "quality", "missing_field"),
        ({"note": "hi"}, "note", "unknown_field"),
    ],
)
def test_it_names_a_bad_reading_by_index_field_and_reason(
    change: dict[str, Any], field: str, reason: str
) -> None:
    good = readings(2, start_s=START - 2 * 900)
    assert problems_of([*good, *_one(**change)]) == [(2, field, reason)]


def test_it_takes_a_start_up_to_five_minutes_ahead_of_the_clock() -> None:
    start = NOW - NOW % 900 + 900  # 12:30, ten minutes ahead of 12:20
    assert parse(readings(1, start_s=start), now_s=start - 300)[0].start_s == start
    assert problems_of(readings(1, start_s=start), now_s=start - 301) == [(0, "start", "in_future")]


def test_it_names_every_bad_reading_and_keeps_none() -> None:
    items = readings(4, start_s=START - 900)
    items[1]["import_wh"] = -1
    items[3]["quality"] = "good"
    items[3]["duration_s"] = 60
    assert problems_of(items) == [
        (1, "import_wh", "negative_energy"),
        (3, "duration_s", "wrong_duration"),
        (3, "quality", "bad_quality"),
    ]


def test_it_refuses_overlapping_intervals_naming_the_later_one() -> None:
    items = readings(3, start_s=START - 900)
    items.append(dict(items[1]))
    with pytest.raises(rules.InvalidReadings) as raised:
        parse(items)
    (error,) = raised.value.detail["errors"]  # type: ignore[index]
    assert (error["index"], error["reason"], error["overlaps"]) == (3, "overlap", 1)


def test_it_refuses_a_reading_that_is_not_an_object() -> None:
    assert problems_of([*readings(1, start_s=START), 5]) == [(1, "", "not_an_object")]


def test_it_lists_at_most_two_hundred_problems() -> None:
    items = readings(300, start_s=START - 299 * 900, import_wh=-1)
    with pytest.raises(rules.InvalidReadings) as raised:
        parse(items)
    detail: dict[str, Any] = raised.value.detail  # type: ignore[assignment]
    assert len(detail["errors"]) == rules.MAX_LISTED_PROBLEMS
    assert detail["truncated"] is True
    assert raised.value.message.startswith("300 of the 300 readings are not valid")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"readings": {}}',
        b'{"readings": [], "meter": "x"}',
        b'{"readings": [], "readings": []}',
        b'{"readings": [{"start": 1, "start": 2}]}',
        '{"readings": []}'.encode("utf-16"),
        b'\xef\xbb\xbf{"readings": []}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_it_refuses_a_malformed_body(body: bytes) -> None:
    with pytest.raises(rules.MalformedBatch) as raised:
        rules.parse_batch(body, interval_s=900, now_s=NOW)
    assert raised.value.code == "malformed"


def test_it_refuses_more_than_two_thousand_readings_or_a_mebibyte() -> None:
    with pytest.raises(rules.BatchTooLarge) as raised:
        parse(readings(2_001, start_s=START - 2_000 * 900))
    assert (raised.value.code, raised.value.status_code) == ("batch_too_large", 413)
    assert parse(readings(2_000, start_s=START - 1_999 * 900))[-1].start_s == START
    padded = b'{"readings": []}' + b" " * (rules.MAX_BODY_BYTES - 15)
    with pytest.raises(rules.BatchTooLarge):
        rules.parse_batch(padded, interval_s=900, now_s=NOW)
    assert rules.parse_batch(padded[:-1], interval_s=900, now_s=NOW) == []


# --- signatures --------------------------------------------------------------------------------


def test_it_verifies_a_signature_over_t_and_the_exact_body() -> None:
    key = KeyPair.generate()
    body = b'{"readings": []}'
    header = signing.header_value(key, body, t=NOW)
    assert header == f"t={NOW},sig={key.sign(str(NOW).encode() + b'.' + body)}"
    assert signing.verify_header(key.public_key_hex, header=header, body=body, now_s=NOW) == (
        NOW,
        header.split("sig=")[1],
    )
    # The body byte for byte: the same JSON with one more space is another message.
    with pytest.raises(signing.BadSignature):
        signing.verify_header(key.public_key_hex, header=header, body=body + b" ", now_s=NOW)
    with pytest.raises(signing.BadSignature):
        signing.verify_header(
            KeyPair.generate().public_key_hex, header=header, body=body, now_s=NOW
        )


@pytest.mark.parametrize("skew", [-301, 301, 10**6])
def test_it_refuses_a_signature_more_than_five_minutes_off(skew: int) -> None:
    key = KeyPair.generate()
    header = signing.header_value(key, b"{}", t=NOW + skew)
    with pytest.raises(signing.StaleSignature) as raised:
        signing.verify_header(key.public_key_hex, header=header, body=b"{}", now_s=NOW)
    assert (raised.value.code, raised.value.status_code) == ("stale_signature", 401)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_it_takes_a_signature_up_to_five_minutes_off(skew: int) -> None:
    key = KeyPair.generate()
    header = signing.header_value(key, b"{}", t=NOW + skew)
    assert signing.verify_header(key.public_key_hex, header=header, body=b"{}", now_s=NOW)[0] == (
        NOW + skew
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sig=" + "a" * 128,
        f"t={NOW}",
        f"t={NOW},sig=" + "a" * 127,
        f"t={NOW},sig=" + "A" * 128,
        f"sig={'a' * 128},t={NOW}",
        f"t=-{NOW},sig=" + "a" * 128,
        f"t={NOW}.5,sig=" + "a" * 128,
        f"t={NOW},sig=" + "a" * 128,  # well-formed, but not a signature of anything
    ],
)
def test_it_refuses_a_missing_malformed_or_wrong_header(header: str | None) -> None:
    key = KeyPair.generate()
    with pytest.raises(signing.BadSignature) as raised:
        signing.verify_header(key.public_key_hex, header=header, body=b"{}", now_s=NOW)
    assert (raised.value.code, raised.value.status_code) == ("bad_signature", 401)


def test_it_tolerates_a_space_after_the_comma() -> None:
    key = KeyPair.generate()
    header = signing.header_value(key, b"{}", t=NOW).replace(",", ", ")
    assert signing.verify_header(key.public_key_hex, header=f" {header} ", body=b"{}", now_s=NOW)
