"""A batch of interval readings: its wire format and every rule a reading must meet.

No Django import: the rules are a function of the body's bytes, the meter's interval and a
time, so the validators can apply them to a relayed batch with the block's time.

The body is UTF-8 JSON, exactly one key::

    {"readings": [
        {"start": "2026-01-01T12:15:00Z", "duration_s": 900,
         "import_wh": 120, "export_wh": 0, "quality": "actual"},
        ...
    ]}

- ``start``: RFC 3339 with its zone (``Z`` or ``+hh:mm``/``-hh:mm``), seconds required, not
  before 1970; the interval's start, aligned to the meter's interval counted from the Unix
  epoch (for 900 s: :00, :15, :30, :45 of every UTC hour), and not more than
  :data:`MAX_FUTURE_S` ahead of now.
- ``duration_s``: the meter's interval, a JSON integer.
- ``import_wh`` / ``export_wh``: energy drawn from / fed into the grid in the interval, JSON
  integers from 0 to :data:`MAX_ENERGY_WH`. Never a float (``1.0`` is refused) or a boolean.
- ``quality``: ``actual``, ``estimated`` (filled in by the meter) or ``missing`` (the meter
  has no value; energy is then what the meter reports, usually 0).

No other key is allowed, in the body or in a reading. Intervals in one batch may not overlap.
A batch with a bad reading is refused whole (:class:`InvalidReadings`, each problem named by
the reading's index, the field and a reason code); a body that is not such a JSON object, or
that repeats a key, is :class:`MalformedBatch`; more than :data:`MAX_READINGS` readings or
more than :data:`MAX_BODY_BYTES` bytes is :class:`BatchTooLarge`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gridplatform.errors import DomainError

MAX_READINGS = 2_000
MAX_BODY_BYTES = 1024 * 1024
# How far ahead of now a reading may start: a meter's clock may run a little fast.
MAX_FUTURE_S = 300
# Per interval: far above any household's, and sums over a day stay far below 2**53 (the
# largest integer every JSON parser reads exactly). The ledger's bound (meters.chain.metering).
MAX_ENERGY_WH = 10**9
QUALITIES = ("actual", "estimated", "missing")
FIELDS = ("start", "duration_s", "import_wh", "export_wh", "quality")
# At most this many problems are listed in an InvalidReadings' detail.
MAX_LISTED_PROBLEMS = 200

# ASCII digits only: Python's \d would also take other scripts' digits, and int() reads them.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REASONS = {
    "not_an_object": "A reading is a JSON object.",
    "missing_field": "This field is required.",
    "unknown_field": "This field is not part of a reading.",
    "bad_start": "Not an RFC 3339 date and time from 1970 on, e.g. 2026-01-01T12:15:00Z.",
    "no_zone": "The time has no zone: add Z or an offset such as +01:00.",
    "in_future": f"The interval starts more than {MAX_FUTURE_S} s in the future.",
    "misaligned": "The start is not aligned to the meter's interval.",
    "not_integer": "Must be a JSON integer (not a float, string or boolean).",
    "wrong_duration": "The duration is not the meter's interval.",
    "negative_energy": "Energy may not be negative.",
    "out_of_range": f"Energy is at most {MAX_ENERGY_WH} Wh.",
    "bad_quality": f"The quality is one of {', '.join(QUALITIES)}.",
    "overlap": "The interval overlaps another reading of the batch.",
}


class BatchError(DomainError):
    """A batch refused as a whole; nothing of it is stored."""


class MalformedBatch(BatchError):
    code = "malformed"


class BatchTooLarge(BatchError):
    code = "batch_too_large"
    status_code = 413


class InvalidReadings(BatchError):
    """``detail["errors"]``: ``{"index", "field", "reason", "message"}`` per problem, in the
    batch's order; ``detail["truncated"]`` when more than ``MAX_LISTED_PROBLEMS`` were found."""

    code = "invalid_readings"


@dataclass(frozen=True, slots=True)
class ParsedReading:
    index: int
    start_s: int  # Unix seconds
    duration_s: int
    import_wh: int
    export_wh: int
    quality: str

    @property
    def end_s(self) -> int:
        return self.start_s + self.duration_s

    @property
    def values(self) -> tuple[int, int, int, str]:
        """What must be equal for a reading sent again to be a duplicate, not a conflict."""
        return (self.duration_s, self.import_wh, self.export_wh, self.quality)


class _NotAnInteger:
    """A float or NaN/Infinity in the body: kept so the reading can be named, then refused."""

    def __init__(self, text: str) -> None:
        self.text = text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedBatch("The body repeats a key in an object; every key appears once.")
    return result


def _load(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_float=_NotAnInteger,
            parse_constant=_NotAnInteger,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedBatch("The body is not UTF-8 JSON.") from None


def parse_start(text: object) -> tuple[int | None, str]:
    """``(Unix seconds, "")`` of an RFC 3339 time with its zone, or ``(None, reason)``.

    The reason is ``bad_start``, ``no_zone``, or ``misaligned`` for a fraction of a second
    other than zero (every interval starts on a whole second).
    """
    if not isinstance(text, str):
        return None, "bad_start"
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None, "bad_start"
    year, month, day, hour, minute, second, fraction, z, sign, off_h, off_m = found.groups()
    if z is None and sign is None:
        return None, "no_zone"
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        return None, "bad_start"
    offset = 0
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            return None, "bad_start"
        offset = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
    start_s = int((moment - _EPOCH).total_seconds()) - offset
    if start_s < 0:
        return None, "bad_start"
    if fraction is not None and int(fraction):
        return None, "misaligned"
    return start_s, ""


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is a subclass of int, and is refused


def _check_reading(
    index: int, item: object, *, interval_s: int, now_s: int, problems: list[dict[str, Any]]
) -> ParsedReading | None:
    def problem(field: str, reason: str) -> None:
        problems.append(
            {"index": index, "field": field, "reason": reason, "message": REASONS[reason]}
        )

    if not isinstance(item, dict):
        problem("", "not_an_object")
        return None
    before = len(problems)
    for field in FIELDS:
        if field not in item:
            problem(field, "missing_field")
    for field in item:
        if field not in FIELDS:
            problem(field, "unknown_field")

    start_s: int | None = None
    if "start" in item:
        start_s, reason = parse_start(item["start"])
        if start_s is None:
            problem("start", reason)
        elif start_s > now_s + MAX_FUTURE_S:
            problem("start", "in_future")
        elif start_s % interval_s:
            problem("start", "misaligned")
    duration = item.get("duration_s")
    if "duration_s" in item:
        if not _is_int(duration):
            problem("duration_s", "not_integer")
        elif duration != interval_s:
            problem("duration_s", "wrong_duration")
    for field in ("import_wh", "export_wh"):
        if field in item:
            value = item[field]
            if not _is_int(value):
                problem(field, "not_integer")
            elif value < 0:
                problem(field, "negative_energy")
            elif value > MAX_ENERGY_WH:
                problem(field, "out_of_range")
    if "quality" in item and item["quality"] not in QUALITIES:
        problem("quality", "bad_quality")

    if len(problems) > before or start_s is None:
        return None
    return ParsedReading(
        index=index,
        start_s=start_s,
        duration_s=interval_s,
        import_wh=item["import_wh"],
        export_wh=item["export_wh"],
        quality=item["quality"],
    )


def parse_batch(body: bytes, *, interval_s: int, now_s: int) -> list[ParsedReading]:
    """The readings of ``body``, in the batch's order, each checked against the rules above
    for a meter with interval ``interval_s`` at time ``now_s`` (Unix seconds).

    Raises ``BatchTooLarge``, ``MalformedBatch`` or ``InvalidReadings``; never returns a
    partial batch.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BatchTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    data = _load(body)
    if not isinstance(data, dict) or set(data) != {"readings"}:
        raise MalformedBatch('The body is a JSON object with one key, "readings".')
    items = data["readings"]
    if not isinstance(items, list):
        raise MalformedBatch('"readings" is a JSON array of readings.')
    if len(items) > MAX_READINGS:
        raise BatchTooLarge(
            f"A batch holds at most {MAX_READINGS} readings; this one has {len(items)}.",
            detail={"max_readings": MAX_READINGS, "readings": len(items)},
        )

    problems: list[dict[str, Any]] = []
    readings = []
    for index, item in enumerate(items):
        reading = _check_reading(index, item, interval_s=interval_s, now_s=now_s, problems=problems)
        if reading is not None:
            readings.append(reading)

    # Overlaps, among readings otherwise valid: the later one in the batch is named.
    previous: ParsedReading | None = None
    for reading in sorted(readings, key=lambda r: (r.start_s, r.index)):
        if previous is not None and reading.start_s < previous.end_s:
            later = max(reading, previous, key=lambda r: r.index)
            other = min(reading, previous, key=lambda r: r.index)
            problems.append(
                {
                    "index": later.index,
                    "field": "start",
                    "reason": "overlap",
                    "message": f"{REASONS['overlap']} (index {other.index})",
                    "overlaps": other.index,
                }
            )
        if previous is None or reading.end_s > previous.end_s:
            previous = reading

    if problems:
        problems.sort(key=lambda p: p["index"])
        bad = len({p["index"] for p in problems})
        raise InvalidReadings(
            f"{bad} of the {len(items)} readings are not valid; nothing was stored. "
            "See detail.errors.",
            detail={
                "errors": problems[:MAX_LISTED_PROBLEMS],
                "truncated": len(problems) > MAX_LISTED_PROBLEMS,
            },
        )
    return readings
