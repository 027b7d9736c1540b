"""The error lookup of requirements and stores: the site's own codes, and every code their API,
forms and pages answer with.

:data:`SITE_MESSAGES` defines the codes only this site side gives; those of the ledger, the
meters and the market's validators (``market.errors``, which composes them: ``not_enrolled``,
``exceeds_baseline``, ``beyond_state_of_charge``...) are defined there, once. :data:`MESSAGES`
composes them, lowest first (docs/ledger.md, "Error codes").
"""

from __future__ import annotations

from ledger import errors as ledger_errors
from market import errors as market_errors

SITE_MESSAGES: dict[str, str] = {
    "bad_network": "Choose a published feeder or heat segment.",
    "bad_confirmation": "Confirm the acceptance on its confirmation page.",
}

MESSAGES: dict[str, str] = ledger_errors.compose(market_errors.MESSAGES, SITE_MESSAGES)
