"""The market's error lookup: the site's own codes, and every code the market's API, forms and
pages answer with.

:data:`SITE_MESSAGES` defines the codes only the market's site gives; the codes of the ledger,
of the meters (validators' and site's: ``meters.errors``) and of the market's validators
(``market.chain.errors``) are defined there, once. :data:`MESSAGES` composes them, lowest first;
it raises at import if a catalogue here defines a code a lower one has (docs/ledger.md, "Error
codes").
"""

from __future__ import annotations

from ledger import errors as ledger_errors
from market.chain import errors as chain_errors
from meters import errors as meters_errors

SITE_MESSAGES: dict[str, str] = {
    "bad_status": "That is not a status of these rows.",
    "not_on_ledger": "Your account is not on the ledger yet: the grid operator enrols it.",
}
# ``no_feeder`` for a carrier other than electricity: it is the heating network's segment that
# is missing, not a feeder.
NO_SEGMENT = "Your connection is not assigned to a segment of the heating network yet; the grid "
NO_SEGMENT += "operator does that."

MESSAGES: dict[str, str] = ledger_errors.compose(
    meters_errors.MESSAGES, chain_errors.MESSAGES, SITE_MESSAGES
)
