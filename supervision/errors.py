"""Supervision's error lookup: the site's own codes, and every code supervision's API, forms
and pages answer with.

:data:`SITE_MESSAGES` defines the codes only supervision's site gives; the codes of the ledger,
the meters, the market (``market.errors``, which composes them) and supervision's validators
(``supervision.chain.errors``) are defined there, once. :data:`MESSAGES` composes them, lowest
first; it raises at import if a catalogue here defines a code a lower one has (docs/ledger.md,
"Error codes").
"""

from __future__ import annotations

from ledger import errors as ledger_errors
from market import errors as market_errors
from supervision.chain import errors as chain_errors

SITE_MESSAGES: dict[str, str] = {
    "bad_type": "The type is veto, curtail, suspend, resume, restrict, reinstate or "
    "defaults_reset.",
    "bad_decision": "The decision is clear, veto or curtail.",
    "bad_ids": "ids is a list of notification ids (integers).",
    "not_under_review": "That contract is not in the review queue.",
    "unknown_alert": "There is no such alert now: it may have cleared.",
    "alert_acknowledged": "That alert is acknowledged already.",
    "alert_changed": "That alert changed since it was shown: read it again, then acknowledge it.",
    "bad_desk": "The desk is operator or regulator.",
    "bad_participant_role": "The grid operator opens accounts for storage providers and "
    "retailers here; households register themselves.",
    "bad_name": "Give the account a name.",
    "bad_email": "Give a valid email address.",
    "email_taken": "An account with this email address already exists.",
}

MESSAGES: dict[str, str] = ledger_errors.compose(
    market_errors.MESSAGES, chain_errors.MESSAGES, SITE_MESSAGES
)
