"""The market's validators' error catalogue: every code ``market.chain`` refuses with, and its
message.

No Django import; nothing but the standard library. Codes of the ledger (``bad_payload``,
``bad_address``, ``unknown_account``, ...) and of the meters (``bad_energy``, ``not_household``)
are theirs (``ledger.errors``, ``meters.chain.errors``) and are not repeated here.

The stops of the market's network interface (``market.chain.network.Network.qualify``:
``market_suspended``, ``account_restricted``, ``no_feeder``, ``feeder_suspended``,
``grid_high_load``, ``grid_unstable``) are defined here, by the market that declares them, though
the application providing the interface (``supervision.chain.network``) raises them: a market
transaction is refused with them, and the market's site says them without knowing that
application.
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    # payload fields and the slot
    "bad_slot": "The slot is an ISO 8601 start time with its zone, e.g. 2026-01-01T12:15:00Z.",
    "bad_side": "Choose buy or sell.",
    "bad_carrier": "This market does not trade that carrier.",
    "bad_price": "The price must be a whole number of cents per kWh.",
    "slot_misaligned": "That is not the start of a delivery slot.",
    "slot_past": "That slot has started already.",
    "slot_closed": "Trading for that slot has closed (gate closure).",
    "slot_open": "Trading for that slot is still open.",
    "beyond_horizon": "That slot is too far ahead to trade yet.",
    "energy_out_of_bounds": "The energy is outside what the market accepts.",
    "energy_not_in_steps": "The energy must be a whole number of this carrier's steps (heat may "
    "be traded in whole kWh only).",
    "price_out_of_bounds": "The price is outside what the market accepts.",
    # market.tariff.publish
    "tariff_in_past": "A tariff applies from a slot that has not started yet.",
    "bad_bands": "A tariff has 1 to 24 time-of-use bands, each with from_minute (the first 0, "
    "then increasing, below 1,440), retail, feed_in and network_fee.",
    # the qualification audit: the network's stops, then the market's own
    "market_suspended": "Trading is suspended.",
    "account_restricted": "Your account may not trade at the moment.",
    "no_feeder": "Your connection is not assigned to a feeder yet; the grid operator does that.",
    "feeder_suspended": "Trading on this feeder is suspended.",
    "grid_high_load": "The grid operator declared the grid under high load: trading waits.",
    "grid_unstable": "The grid operator declared the grid unstable: trading waits.",
    "too_many_defaults": "Too many unsettled defaults on your account.",
    # orders, offers and margins
    "opposite_side_open": "You have orders on the other side of this slot; cancel them first.",
    "insufficient_free_balance": "Not enough free credits (the balance less the margins "
    "locked) for this.",
    "unknown_order": "No such open order.",
    "not_owner": "That is not yours.",
    "unknown_offer": "No such open offer.",
    "own_offer": "That is your own offer.",
    "not_offered_to_you": "That offer is for another buyer.",
    "exceeds_offer": "That is more than the offer has left.",
    "grid_refused": "The grid cannot carry that energy now.",
    # the network operators' requirements (market.chain.flexibility)
    "already_enrolled": "You are enrolled for flexibility already.",
    "bad_direction": "The flow to reduce is import or export.",
    "unknown_requirement": "No such open requirement.",
    "unknown_answer": "No such open answer.",
    "exceeds_requirement": "That is more than the requirement asks for (or has left).",
    "price_above_requirement": "That price is above what the requirement pays.",
    "not_on_feeder": "Your connection is not on the feeder the requirement is for.",
    "not_enrolled": "Enrol for flexibility first: your reduction is measured against a baseline.",
    "no_baseline": "Your meters have no history for that time of day yet: no baseline.",
    "exceeds_baseline": "You cannot reduce by more than your baseline for that time of day.",
    "exceeds_answer": "That is more than the answer offers (or has left).",
    # energy sellers (market.chain.retail)
    "own_grant": "You trade for yourself without a grant.",
    "bad_grant_limit": "Limits are whole numbers: energy at least 1 Wh, prices 0 or more.",
    "unknown_grant": "You have no such grant.",
    "no_grant": "That household has not granted you trading in this carrier.",
    "not_retailer": "Only a retailer account trades for households.",
    "for_customers_only": "A retailer places orders for the households that granted it, never "
    "for itself.",
    "exceeds_grant": "That is more energy than the household's grant allows in one order.",
    "price_outside_grant": "That price is outside the household's grant.",
    # energy storage providers (market.chain.storage)
    "beyond_state_of_charge": "Your store cannot give (or take) that much now: see its charge.",
    "no_store": "A storage provider trades only within a store of that carrier: the grid "
    "operator registers it first.",
    "not_storage_meter": "That is not a battery or thermal store meter of that account.",
    "bad_capacity": "A capacity is a positive whole number of Wh.",
    "bad_state_of_charge": "The state of charge is a whole number of Wh from 0 to the capacity.",
    # clearing and settlement
    "nothing_to_clear": "Nothing to clear in that slot.",
    "slot_not_ended": "That slot has not ended yet.",
    "settlement_not_due": "That slot's meter data may still arrive: settlement comes later.",
    "slot_not_cleared": "That slot still has open orders or offers: it is cleared first.",
    "nothing_to_settle": "That slot has no contracts.",
}
