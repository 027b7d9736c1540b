"""The error lookup of energy sellers: the site's own codes, and every code the retail API,
forms and pages answer with.

:data:`SITE_MESSAGES` defines the codes only this site side gives; those of the ledger, the
meters and the market's validators (``market.errors``, which composes them: ``no_grant``,
``exceeds_grant``, ``price_outside_grant``, ``own_grant``...) are defined there, once.
:data:`MESSAGES` composes them, lowest first (docs/ledger.md, "Error codes").
"""

from __future__ import annotations

from ledger import errors as ledger_errors
from market import errors as market_errors

SITE_MESSAGES: dict[str, str] = {
    "unknown_retailer": "No household on the ledger has that email or address.",
    "not_a_customer": "That household has not granted you trading.",
}

MESSAGES: dict[str, str] = ledger_errors.compose(market_errors.MESSAGES, SITE_MESSAGES)
