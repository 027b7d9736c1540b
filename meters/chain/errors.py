"""The meters' validators' error catalogue: every code ``meters.chain`` refuses with, and its
message.

No Django import; nothing but the standard library. A code the ledger defines (``bad_payload``,
``bad_address``, ``unknown_account``, ``bad_public_key``) is the ledger's (``ledger.errors``)
and is not repeated here; the market and supervision use this catalogue's ``bad_energy``,
``bad_feeder`` and ``not_household``. The numbers in the words are ``meters.chain.metering``'s
and the site's (a test checks that they agree).
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # meter.register
    "bad_meter": "That is not a meter id (1-64 of a-z, 0-9, '.', '_' and '-', starting with a "
    "letter or digit).",
    "not_household": "That account is neither a household nor a storage provider.",
    "bad_kind": "The kind is one of pv, consumption, bidirectional, battery, heat, "
    "thermal_storage.",
    "bad_feeder": "A feeder name is 1-64 of a-z, 0-9, '.', '_' and '-', starting with a letter "
    "or digit.",
    "bad_interval": "The interval is one of 60, 300, 900 seconds.",
    "owner_mismatch": "A meter stays with its household.",
    "interval_mismatch": "A meter's reading interval cannot change.",
    "key_in_use": "The device key belongs to another meter.",
    "too_many_meters": "A household has at most 16 meters.",
    # meter.readings
    "unknown_meter": "No such meter on the ledger.",
    "bad_time": "That is not a valid time: RFC 3339 with its zone, e.g. 2026-01-01T12:15:00Z (a "
    "batch's signing time t: Unix seconds).",
    "bad_body": 'The batch is not {"readings": [...]} in JSON without floats, of at most '
    "1,048,576 bytes.",
    "bad_device_signature": "The meter's device did not sign this batch.",
    "too_many_readings": "A batch has at most 2,000 readings.",
    "bad_reading": "A reading has exactly start, duration_s, import_wh, export_wh and quality.",
    "bad_energy": "The energy must be a whole number of Wh.",
    "bad_start": "A reading's start is an RFC 3339 date-time with its zone, after 1970.",
    "bad_duration": "A reading's duration is the meter's interval.",
    "misaligned_reading": "An interval starts at a multiple of its duration.",
    "bad_quality": "A reading's quality is actual, estimated or missing.",
    "future_reading": "The interval starts too far after the block time.",
}
