"""The meters' error lookup: the site's own codes, and every code the meters' API, forms and
pages answer with.

:data:`SITE_MESSAGES` defines the codes only the meters' site gives (its checks before a meter
is registered); the codes of the ledger (``ledger.errors``) and of the meters' validators
(``meters.chain.errors``) are defined there, once. :data:`MESSAGES` composes them, lowest first;
it raises at import if a catalogue here defines a code a lower one has (docs/ledger.md, "Error
codes").
"""

from __future__ import annotations

from ledger import errors as ledger_errors
from meters.chain import errors as chain_errors

SITE_MESSAGES: dict[str, str] = {
    "forbidden": "Your account may not do this.",
    "bad_meter_id": "A meter id is 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit.",
    "meter_id_taken": "A meter with this id is registered already.",
    "public_key_taken": "Another meter is registered with this public key.",
    "feeder_not_assigned": "Your connection has no feeder yet: the grid operator assigns it "
    "when it approves your household.",
    "interval_not_in_slot": "That reading interval does not divide this network's delivery "
    "slot, so its readings could not count at settlement: choose a shorter one.",
}

MESSAGES: dict[str, str] = ledger_errors.compose(
    ledger_errors.MESSAGES, chain_errors.MESSAGES, SITE_MESSAGES
)
