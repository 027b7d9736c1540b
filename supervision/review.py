"""Review rules: which new contracts the regulators should look at.

No Django import. Each rule is a pure function of a contract (its record in state,
``market/contract/<id>``), the ledger state after the block that made it, and the thresholds
(``settings.SUPERVISION_REVIEW``, passed in as a dict); it returns a plain sentence saying why it
trips, or None. The projection (``supervision.projection``) runs :func:`evaluate` once, when the
contract first appears (:func:`evaluate_made`, for all of a block's new contracts at once), and
files a ``ReviewItem`` if any rule trips. Integers only.

=================  ==========================================================================
``size``           ``energy_wh`` > ``max_energy_wh``
``price``          the price differs from the median price of the slot's contracts so far
                   (those made before it and itself, not vetoed) by more than
                   ``price_deviation_bps`` of that median; on a thin slot (fewer than
                   ``THIN_SLOT`` such contracts) with a tariff in force, from the middle of
                   the slot's tariff band (retail and feed-in) instead, so that a contract
                   alone in its slot can trip it too; on a thin slot with no tariff (or of
                   heat, which has none), from the median price of recent contracts of its
                   carrier (``recent``: the last day's slots before it, given by the caller)
                   when there are any. A flexibility contract's price is what
                   the grid operator pays for a reduction, not a price of energy: it never
                   trips this rule and is in no median of the energy market
``defaults``       the seller or the buyer has unsettled defaults (``market/defaults/<a>``
                   ``unsettled`` > 0), or a shortfall in the last 96 slots (``last_slot`` >=
                   the contract's slot - 96 slots)
``feeder_load``    right after this contract, the export load of the seller's feeder or the
                   import load of the buyer's feeder in the slot is at least ``feeder_load_bps``
                   of the feeder's capacity (``supervision.chain.grid.capacity_wh``; published
                   feeders only)
=================  ==========================================================================

The state keeps only the contracts of slots not yet settled, so the recent contracts' median is
the caller's to give (``Recent``: the site's projection reads it from its contracts, as they
stood when the block was projected, which a rebuild reproduces).

"So far" and "right after this contract" are read from the state after the block, less the
slot's later contracts (made in the same block): the answer does not depend on how the
validators packed transactions into blocks.

Each carrier is its own market (``market.chain.schema``, "carriers"): a heat contract is held
against the slot's heat contracts (``heat-<slot>-<n>``) and its parties' heat segments, never
against electricity's; the tariff (electricity's) is no reference for its price.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.state import State
from market.chain.flexibility import FLEXIBILITY
from market.chain.options import BPS, ELECTRICITY, market_options
from market.chain.schema import carrier_of, contract_id, contract_key, contracts_key, defaults_key
from market.chain.tariff import band_of, in_force
from supervision.chain import grid
from supervision.chain.schema import carrier_of_feeder, feeder_of, limit_w, loaded_wh, topology

DEFAULTS_WINDOW_SLOTS = 96
# A slot with fewer contracts so far than this is thin: its own median says little of the market.
THIN_SLOT = 3
SLOT_MEDIAN = "the slot's median"
RECENT_MEDIAN = "the median of the last day's contracts"
# The median price of recent contracts of a carrier before a slot (slot ms, carrier), None if
# there are none.
Recent = Callable[[int, str], int | None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def median(values: Sequence[int]) -> int:
    """The median of integers, rounded down between the two middle ones."""
    return _sorted_median(sorted(values))


def _sorted_median(ordered: Sequence[int]) -> int:
    if not ordered:
        raise ValueError("the median of nothing")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def _slot_text(slot_ms: int) -> str:
    return f"{_EPOCH + timedelta(milliseconds=slot_ms):%Y-%m-%d %H:%M} UTC"


def _slot_contracts(
    state: State, slot: int, indexes: range, carrier: str = ELECTRICITY
) -> list[dict[str, Any]]:
    """The slot's contracts of ``carrier`` numbered in ``indexes``, in time priority."""
    found = (state.get(contract_key(contract_id(slot, n, carrier))) for n in indexes)
    return [made for made in found if made is not None]


# --- the rules: each gets what it needs, read once for a whole block ------------------------------


def size(contract: dict[str, Any], limits: dict[str, int]) -> str | None:
    """A contract larger than ``max_energy_wh``."""
    most = limits["max_energy_wh"]
    if contract["energy_wh"] > most:
        return f"{contract['energy_wh']:,} Wh is more than {most:,} Wh"
    return None


def price(
    contract: dict[str, Any], limits: dict[str, int], middle: int, basis: str = SLOT_MEDIAN
) -> str | None:
    """A price far from ``middle``: the slot's median so far (this contract's included), or on
    a thin slot the middle of its tariff band (``reference``); ``basis`` says which. Never a
    flexibility contract's (module docstring)."""
    if contract.get("kind") == FLEXIBILITY:
        return None
    gap = abs(contract["price"] - middle)
    if gap * BPS > limits["price_deviation_bps"] * middle:
        away = f"{gap * 100 // middle} % away" if middle else f"{gap}/kWh away"
        return (
            f"{contract['price']}/kWh is {away} from {basis} "
            f"{middle}/kWh (more than {limits['price_deviation_bps'] // 100} %)"
        )
    return None


def reference(
    state: State,
    slot: int,
    prices: int,
    slot_median: int,
    carrier: str = ELECTRICITY,
    recent: Recent | None = None,
) -> tuple[int, str]:
    """What a contract's price is held against, and its name: the slot's median so far; on a
    thin slot (``prices`` < ``THIN_SLOT``) of electricity with a tariff in force, its band's
    middle; on another thin slot, the median of recent contracts of its carrier (``recent``)
    if there are any."""
    if prices >= THIN_SLOT:
        return slot_median, SLOT_MEDIAN
    tariff = in_force(state, slot) if carrier == ELECTRICITY else None
    if tariff is not None:
        band = band_of(tariff, slot)
        return (band["retail"] + band["feed_in"]) // 2, "the middle of the slot's tariff band"
    found = recent(slot, carrier) if recent is not None else None
    if found is not None and found > 0:
        return found, RECENT_MEDIAN
    return slot_median, SLOT_MEDIAN


def defaults(contract: dict[str, Any], state: State) -> str | None:
    """A party with unsettled defaults or a recent shortfall."""
    window = DEFAULTS_WINDOW_SLOTS * market_options(state).slot_ms
    found = []
    for party in ("seller", "buyer"):
        record = state.get(defaults_key(contract[party]))
        if record is None:
            continue
        unsettled = record.get("unsettled", 0)
        last = record.get("last_slot")
        if unsettled > 0:
            found.append(f"the {party} has {unsettled} unsettled default(s)")
        elif record.get("shortfalls", 0) > 0 and last is not None:
            if last >= contract["slot"] - window:
                found.append(f"the {party} fell short in the slot of {_slot_text(last)}")
    return "; ".join(found) or None


Later = dict[tuple[str, str], int]  # (direction, feeder) -> Wh of the slot's later contracts


def _later_load(state: State, later: Sequence[dict[str, Any]]) -> Later:
    """What ``later`` contracts (not vetoed) add to each feeder's export and import load."""
    load: Later = {}
    for made in later:
        _add_load(state, load, made)
    return load


def _add_load(state: State, load: Later, made: dict[str, Any]) -> None:
    if made.get("vetoed") or made.get("kind") == FLEXIBILITY:  # it loads no feeder
        return
    for direction, party in (("export", "seller"), ("import", "buyer")):
        feeder = feeder_of(state, made[party], carrier_of(made))
        if feeder is not None:
            key = (direction, feeder)
            load[key] = load.get(key, 0) + made["energy_wh"]


def feeder_load(
    contract: dict[str, Any], state: State, limits: dict[str, int], later: Later
) -> str | None:
    """A feeder loaded to ``feeder_load_bps`` of its capacity or more, right after it
    (``later``: what the slot's contracts made after it add to the load the state holds)."""
    slot, carrier = contract["slot"], carrier_of(contract)
    slot_ms = market_options(state).carrier(carrier).slot_ms  # heat's slots may be longer
    found = []
    for direction, party in (("export", "seller"), ("import", "buyer")):
        feeder = feeder_of(state, contract[party], carrier)
        published = topology(state, feeder) if feeder else None
        if feeder is None or published is None or carrier_of_feeder(published) != carrier:
            continue
        capacity = grid.capacity_wh(limit_w(published, direction), slot_ms)
        loaded = loaded_wh(state, slot, feeder, direction) - later.get((direction, feeder), 0)
        if loaded > 0 and loaded * BPS >= limits["feeder_load_bps"] * capacity:
            share = loaded * 100 // capacity if capacity else 100
            what = "feeder" if carrier == ELECTRICITY else f"{carrier} segment"
            found.append(
                f"{what} {feeder}'s {direction} is at {share} % of its capacity "
                f"({loaded:,} of {capacity:,} Wh)"
            )
    return "; ".join(found) or None


def _market_price(made: dict[str, Any]) -> bool:
    """Whether a contract's price counts in its slot's median for the contracts after it: not
    when vetoed, nor a flexibility contract's."""
    return not made.get("vetoed") and made.get("kind") != FLEXIBILITY


RULES = ("size", "price", "defaults", "feeder_load")


def _tripped(
    contract: dict[str, Any],
    state: State,
    limits: dict[str, int],
    middle: tuple[int, str],
    later: Later,
) -> list[dict[str, str]]:
    details = {
        "size": size(contract, limits),
        "price": price(contract, limits, *middle),
        "defaults": defaults(contract, state),
        "feeder_load": feeder_load(contract, state, limits, later),
    }
    return [
        {"rule": name, "detail": detail} for name in RULES if (detail := details[name]) is not None
    ]


def evaluate(
    contract: dict[str, Any],
    state: State,
    limits: dict[str, int],
    recent: Recent | None = None,
) -> list[dict[str, str]]:
    """The rules ``contract`` trips, in the order of :data:`RULES`:
    ``[{"rule": name, "detail": why}]`` (empty: nothing to review). Reads the slot's other
    contracts; for a block's new contracts, :func:`evaluate_made` reads them once for all."""
    slot, carrier = contract["slot"], carrier_of(contract)
    index, count = contract["index"], state.get(contracts_key(slot, carrier), 0)
    so_far = _slot_contracts(state, slot, range(index), carrier)
    later = _slot_contracts(state, slot, range(index + 1, count), carrier)
    prices = [made["price"] for made in so_far if _market_price(made)] + [contract["price"]]
    middle = reference(state, slot, len(prices), median(prices), carrier, recent)
    return _tripped(contract, state, limits, middle, _later_load(state, later))


def _remembered(recent: Recent) -> Recent:
    answers: dict[tuple[int, str], int | None] = {}

    def remembered(slot: int, carrier: str) -> int | None:
        if (slot, carrier) not in answers:
            answers[slot, carrier] = recent(slot, carrier)
        return answers[slot, carrier]

    return remembered


def evaluate_made(
    made: Sequence[dict[str, Any]],
    state: State,
    limits: dict[str, int],
    recent: Recent | None = None,
) -> dict[str, list[dict[str, str]]]:
    """:func:`evaluate` for the contracts one block made (the latest of their slots, with the
    state after that block), by id. Per slot, the earlier contracts' prices are read once and
    the median is kept up to date as the block's contracts join it, in time priority: a block
    costs O(the slot's contracts), not that for each of its own."""
    if recent is not None:
        recent = _remembered(recent)  # asked at most once per slot and carrier of the block
    by_slot: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for contract in made:
        by_slot.setdefault((contract["slot"], carrier_of(contract)), []).append(contract)
    tripped: dict[str, list[dict[str, str]]] = {}
    for (slot, carrier), new in by_slot.items():
        new.sort(key=lambda contract: contract["index"])
        before = _slot_contracts(state, slot, range(new[0]["index"]), carrier)
        prices = sorted(m["price"] for m in before if _market_price(m))
        middles = {}
        for contract in new:
            bisect.insort(prices, contract["price"])
            middles[contract["id"]] = reference(
                state, slot, len(prices), _sorted_median(prices), carrier, recent
            )
            if not _market_price(contract):
                prices.remove(contract["price"])  # it counts for itself, not for those after
        later: Later = {}  # the load of the block's contracts after the one at hand
        for contract in reversed(new):
            tripped[contract["id"]] = _tripped(
                contract, state, limits, middles[contract["id"]], dict(later)
            )
            _add_load(state, later, contract)
    return tripped
