"""The market's options: integers fixed in the genesis document, with defaults.

No Django import. A network sets them in its genesis ``options`` (``ledger/genesis`` state key,
``{"options": {name: int}}``); a name that genesis does not set takes its default below. They
never change after genesis, so every validator reads the same values at every height.

====================================  ==============  =============================================
option                                default         meaning
====================================  ==============  =============================================
``market.slot_ms``                    900 000         delivery slot length (15 min); slots start at
                                                      multiples of it since 1970-01-01T00:00Z
``market.horizon_ms``                 86 400 000      how far ahead a slot may be traded (a day):
                                                      its start at most this long after block time
``market.gate_closure_ms``            300 000         trading for a slot closes this long before
                                                      the slot starts (5 min)
``market.call_auction``               0               0: continuous double auction; 1: uniform-price
                                                      call auction at gate closure
``market.energy_step_wh``             1               energy of an order, offer or contract is a
                                                      whole number of these Wh; energy the market
                                                      computes is rounded down to it
``market.energy_min_wh``              1               smallest order or offer, Wh
``market.energy_max_wh``              1 000 000       largest order or offer, Wh (1 MWh)
``market.price_min``                  1               lowest price, minor units per kWh
``market.price_max``                  100 000         highest price, minor units per kWh (capped at
                                                      :data:`PRICE_LIMIT`)
``market.deposit_bps``                2 000           seller's security deposit, basis points of
                                                      the order's value (20 %)
``market.network_fee``                0               network fee, minor units per kWh, paid by the
                                                      buyer on top of the price
``market.penalty_bps``                2 000           penalty for undelivered energy, basis points
                                                      of its value (recorded in each contract)
``market.max_unsettled_defaults``     0               an account with more unsettled defaults than
                                                      this may not publish orders or accept offers
``market.settlement_delay_ms``        900 000         a slot settles no earlier than this long
                                                      after it ends, so that meter data can arrive
                                                      (15 min)
``market.heat``                       0               1: the market also trades heat (a second
                                                      carrier, below)
``market.retailers``                  0               1: only ``retailer`` accounts may be named in
                                                      a grant and place orders for a household
                                                      (``not_retailer``); 0: any account may, as
                                                      before roles existed (``market.chain.retail``)
====================================  ==============  =============================================

Carriers
========

Electricity is the market's first carrier and its default: every option above is electricity's.
A genesis with ``market.heat`` = 1 adds heat, traded in kWh thermal (``horizon_ms``,
``gate_closure_ms``, ``call_auction`` and ``settlement_delay_ms`` are the market's, shared by its
carriers), with its own slot length, energy step, bounds, fees and rates: ``market.heat.<name>``
for each name of :data:`CARRIER_OPTIONS` (a name genesis does not set takes electricity's value).

Heat's ``slot_ms`` is rounded down to a whole multiple of the market's ``slot_ms`` (at least
one), so that its slots start on the market's slot boundaries and the meters' intervals tile
them: with ``market.heat.slot_ms`` = 3 600 000 heat is traded by the hour beside 15-minute
electricity. A heat slot settles with its last market slot (:meth:`Options.ending_with`,
``market.chain.settlement``). Unset, heat's slots are the market's.

``Options.carrier("heat")`` is the market's options with heat's in place, so the code that
checks an order or prices a margin reads one set of options whichever carrier it trades. Energy
is in Wh of the carrier's unit (:data:`UNITS`), in whole steps of the carrier's
``energy_step_wh`` (energy the market computes, a tailored match or an auction's allocation, is
rounded down to the step), and money in minor units, with the market's one rounding rule
(``market.chain.pricing``) for every carrier.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from typing import Any

from ledger.state import State
from meters.chain.schema import ELECTRICITY as ELECTRICITY
from meters.chain.schema import HEAT as HEAT

# The order book's price index has 5 levels of 32-way nodes (see market.chain.book), so prices are
# below 2**25. With ENERGY_LIMIT_WH, every value stays far below 2**53 (canonical JSON's limit).
PRICE_LIMIT = 2**25 - 1
ENERGY_LIMIT_WH = 10**9
BPS = 10_000

# Each carrier the market can trade, with the unit its energy is measured in (Wh of it).
UNITS = {ELECTRICITY: "kWh", HEAT: "kWh thermal"}
# The options a carrier other than electricity may set for itself, as market.<carrier>.<name>.
CARRIER_OPTIONS = (
    "slot_ms",
    "energy_step_wh",
    "energy_min_wh",
    "energy_max_wh",
    "price_min",
    "price_max",
    "deposit_bps",
    "network_fee",
    "penalty_bps",
)


@dataclass(frozen=True)
class Options:
    slot_ms: int = 900_000
    horizon_ms: int = 86_400_000
    gate_closure_ms: int = 300_000
    call_auction: int = 0
    energy_step_wh: int = 1
    energy_min_wh: int = 1
    energy_max_wh: int = 1_000_000
    price_min: int = 1
    price_max: int = 100_000
    deposit_bps: int = 2_000
    network_fee: int = 0
    penalty_bps: int = 2_000
    max_unsettled_defaults: int = 0
    settlement_delay_ms: int = 900_000
    heat: int = 0
    retailers: int = 0
    # The other carriers' own options (``CARRIER_OPTIONS``) as genesis set them:
    # (carrier, ((name, value), ...)).
    overrides: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()

    @property
    def carriers(self) -> tuple[str, ...]:
        """The carriers this market trades, electricity first."""
        return (ELECTRICITY, HEAT) if self.heat else (ELECTRICITY,)

    def carrier(self, name: str) -> Options:
        """These options with ``name``'s own in place of electricity's (itself for electricity
        and for a carrier the market does not trade)."""
        return _carrier_options(self, name)

    def ending_with(self, slot: int) -> tuple[tuple[str, int, int], ...]:
        """``(carrier, start, slot_ms)`` of each carrier's slot that ends where the market's slot
        starting at ``slot`` ends (electricity's is that slot; heat's, with hourly heat slots and
        15-minute market slots, only for the hour's last quarter)."""
        spans = []
        for name in self.carriers:
            own = self.carrier(name).slot_ms
            start = slot + self.slot_ms - own
            if start >= 0 and not start % own:
                spans.append((name, start, own))
        return tuple(spans)

    @classmethod
    def from_genesis(cls, genesis_options: dict[str, Any]) -> Options:
        """The options named ``market.<field>`` in genesis, the defaults for the others.

        Values outside what the market can work with are clamped, not refused: genesis is
        already signed by every validator, and a clamped value is still the same on all of them.
        """
        given = {
            f.name: genesis_options[f"market.{f.name}"]
            for f in fields(cls)
            if f"market.{f.name}" in genesis_options and f.name not in ("heat", "overrides")
        }
        if type(genesis_options.get("market.heat")) is int and genesis_options["market.heat"]:
            given["heat"] = 1
            heat = tuple(
                (name, value)
                for name in CARRIER_OPTIONS
                if type(value := genesis_options.get(f"market.heat.{name}")) is int
            )
            given["overrides"] = ((HEAT, heat),)
        return _with_carrier_slots(_clamped(cls(**given)))


def _clamped(o: Options) -> Options:
    """``o`` with every value where the market can work with it."""
    return Options(
        slot_ms=max(1, o.slot_ms),
        horizon_ms=max(0, o.horizon_ms),
        gate_closure_ms=max(0, o.gate_closure_ms),
        call_auction=1 if o.call_auction else 0,
        energy_step_wh=min(max(1, o.energy_step_wh), ENERGY_LIMIT_WH),
        energy_min_wh=min(max(1, o.energy_min_wh), ENERGY_LIMIT_WH),
        energy_max_wh=min(max(1, o.energy_max_wh), ENERGY_LIMIT_WH),
        price_min=min(max(1, o.price_min), PRICE_LIMIT),
        price_max=min(max(1, o.price_max), PRICE_LIMIT),
        deposit_bps=min(max(0, o.deposit_bps), BPS),
        network_fee=min(max(0, o.network_fee), PRICE_LIMIT),
        penalty_bps=max(0, o.penalty_bps),
        max_unsettled_defaults=max(0, o.max_unsettled_defaults),
        settlement_delay_ms=max(0, o.settlement_delay_ms),
        heat=o.heat,
        retailers=1 if o.retailers else 0,
        overrides=o.overrides,
    )


def _with_carrier_slots(o: Options) -> Options:
    """``o`` with each carrier's own ``slot_ms`` a whole multiple of the market's (rounded
    down, at least one market slot), so that its slots start on the market's slot boundaries
    and the meters' intervals tile them."""
    overrides = []
    for carrier, values in o.overrides:
        own = dict(values)
        if "slot_ms" in own:
            own["slot_ms"] = max(1, own["slot_ms"] // o.slot_ms) * o.slot_ms
        overrides.append((carrier, tuple((name, own[name]) for name, _ in values)))
    return replace(o, overrides=tuple(overrides))


@functools.lru_cache(maxsize=64)
def _carrier_options(options: Options, name: str) -> Options:
    for carrier, values in options.overrides:
        if carrier == name:
            return _clamped(replace(options, **dict(values)))  # type: ignore[arg-type]
    return options


_cached: tuple[object, Options] | None = None


def market_options(state: State) -> Options:
    """The market's options in ``state``'s genesis.

    Read on every market transaction, so the parsed options are remembered for the genesis
    object last seen. Holding a reference to that object makes the identity test sound: it
    cannot be freed and its id reused while it is remembered.
    """
    global _cached
    genesis = state.get("ledger/genesis")
    if _cached is not None and _cached[0] is genesis:
        return _cached[1]
    result = Options.from_genesis(genesis.get("options", {}) if genesis else {})
    _cached = (genesis, result)
    return result
