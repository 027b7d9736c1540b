"""Supervision's validators' error catalogue: every code ``supervision.chain`` refuses with,
and its message.

No Django import; nothing but the standard library. Codes of the ledger (``bad_payload``,
``bad_address``, ``unknown_account``), of the meters (``bad_energy``, ``bad_feeder``,
``not_household``) and of the market (the stops of its network interface, ``market_suspended``
... ``grid_unstable``, which ``supervision.chain.network`` raises for it) are theirs and are not
repeated here.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # every act
    "reason_required": "Say why, in 1 to 500 characters.",
    # the regulators' acts
    "unknown_contract": "No such contract.",
    "contract_vetoed": "That contract has been vetoed already.",
    "delivery_started": "That contract's slot has started: the contract stands.",
    "not_a_curtailment": (
        "Curtail to between 1 Wh and 1 Wh less than the contract's energy; to cancel it all, veto."
    ),
    "already_cleared": "That contract has been cleared already.",
    "bad_scope": "The scope is the whole market (or grid) or 'feeder:<name>'.",
    "unknown_feeder": "The grid operator has not published that feeder.",
    "carrier_mismatch": "That name is already published for another network (electricity or heat).",
    "bad_until": "The end must be a time after now, with its zone (e.g. 2026-01-01T12:15:00Z), "
    "or none.",
    "already_suspended": "Trading there is suspended already.",
    "not_suspended": "Trading there is not suspended.",
    "already_restricted": "That account is restricted already.",
    "not_restricted": "That account is not restricted.",
    "no_defaults": "That account has no unsettled defaults.",
    # the grid operator's
    "bad_limit": "A limit is a whole number of W, 0 or more.",
    "bad_state": "The state is normal, high_load or unstable.",
    "no_change": "It is in that state already.",
}
