"""Settlement: after a slot ends and its meter data has had time to arrive, its contracts pay.

No Django import. ``market.slot.settle`` is a deterministic function of the state and the block
(``context.timestamp_ms`` is the only time), in integers, with the market's one rounding rule
(``market.chain.pricing``: every division rounds down). ``docs/market.md`` ("Settlement") is the
same reference with worked examples.

The rules
=========

A slot settles once, with ``market.slot.settle`` ``{"slot": int}``, which any account may send
(the grid operator's site sends it on a timer), when the block time is at least the slot's end
plus ``market.settlement_delay_ms`` and the slot has been cleared (``market.slot.clear``: no
order or offer of the slot is left, so no contract can be made for it afterwards).

1. **Measured export.** A seller's export in the slot is the sum of ``export_wh`` of the
   readings (``meters.chain.schema.reading``) of every meter the seller owns, for every interval
   in the slot. A missing reading, or one of quality ``missing``, counts as 0. Readings that
   arrive once the slot is settled are late: the meters never record them in the state
   (``meters.chain.metering``), so nothing is ever settled twice.
2. **Time priority.** The export is allocated to the seller's contracts of the slot in the order
   they were made (``index``): ``delivered = min(export left, energy_wh)``.
3. **Payment.** For each contract, from the buyer's escrow: ``paid = value(delivered, price)``
   to the seller and ``fee = value(delivered, network_fee)`` to the grid operator (the issuer
   account). Two roundings down never exceed one, so ``paid + fee <= escrow``.
4. **Penalty.** For undelivered energy the seller pays the buyer, from its deposit,
   ``penalty = min(deposit, share(value(undelivered, price), penalty_bps))`` (the contract's
   ``penalty_bps``). The cap only binds when ``penalty_bps`` exceeds the deposit's rate (or the
   seller's ask was below the contract price).
5. **Release.** The whole escrow and deposit are unlocked; what was not paid stays with its
   owner. A contract a regulator vetoed (``supervision.chain.acts``) is passed over: its margins
   were released by the veto and it has no result. A curtailed one settles for its curtailed energy
   and margins.
6. **History leaves the state.** The slot's contracts (``market/contract/<slot>-<n>``) and their
   count are deleted; each contract's result is the event ``market.contract_settled`` and the
   summary ``market.slot_settled`` (``market.chain.schema``, Events), with the contracts as
   ``market.contract_made`` recorded them when made, all in the blocks. Last (after 7 and 8)
   every function hooked at :data:`SLOT_SETTLED_HOOK` is called as ``fn(state, slot,
   contracts, context)`` (the slot's contract records, vetoed ones included): supervision
   removes the slot's grid loads.
7. **Defaults.** Every contract with undelivered energy adds one to the seller's record
   ``market/defaults/<seller>``: ``unsettled`` (read by the qualification audit against
   ``market.max_unsettled_defaults``) counts shortfalls not yet cleared; nothing here clears
   it: a regulator's act (supervision) resets it. ``shortfalls`` and ``shortfall_wh`` count
   every shortfall ever and are never reset.
8. **The residual** (``market.chain.residual``): after the contracts, every household with a
   reading recorded in the slot settles with the supplier of last resort what its contracts did
   not cover: metered import beyond its delivered P2P energy at the tariff's retail price (and
   network fee), metered export beyond what its contracts delivered at the feed-in price;
   arrears where its free balance cannot pay. Per carrier with a tariff in force: electricity's
   first, then heat's, each with its own meters, contracts and tariff.

Settlement moves credits between balances (``bal/``) and unlocks margins; ``ledger/supply``
changes only when the supplier issues feed-in its balance does not cover (``residual``). It costs
O(contracts of the slot + readings of the meters with readings in the slot):
a seller's meters are found through ``meter/owner/<address>`` and their readings by key, never by
scanning state.

Events and state keys
=====================

=============================  =================================================================
``market.slot_settled``        event, the summary: ``{"slot", "contracts", "energy_wh",
                               "delivered_wh", "paid", "fees", "penalties", "escrow_released",
                               "deposit_released", "shortfalls", "residual", "tx", "height",
                               "timestamp_ms"}`` (``residual``: the totals with the supplier,
                               ``market.chain.schema.ResidualSummary``, null without a tariff);
                               another carrier's totals under its name (``"heat": {"contracts",
                               "energy_wh", ..., "residual"}``) when its contracts settled or its
                               residual did (``residual`` only with a tariff of it in force)
``market.contract_settled``    event, one per contract settled: ``{"slot", "contract", "seller",
                               "buyer", "energy_wh", "export_wh", "delivered_wh", "paid", "fee",
                               "penalty", "escrow_released", "deposit_released"}``
                               (``export_wh``: the seller's measured export in the slot;
                               ``*_released``: what went back to the party's free balance)
``market/defaults/<address>``  state: ``{"unsettled", "shortfalls", "shortfall_wh", "last_slot"}``
=============================  =================================================================

A carrier whose slots are longer than the market's (``market.heat.slot_ms``, e.g. hourly heat
beside 15-minute electricity) settles each of its slots with the market slot that ends where it
ends (:meth:`~market.chain.options.Options.ending_with`): ``market.slot.settle`` for 10:45
settles electricity's 10:45 and heat's 10:00-11:00, both due at the same time. The heat slot's
contracts are measured over all of its meter intervals (the meters keep them until it settles:
``market.chain.slot_closed``), must be cleared, and count against ``nothing_to_settle``; their
``market.contract_settled`` name the heat slot, and the summary's heat totals carry its start as
``"slot"`` when it differs from the settled market slot. Its residual with the supplier (a
tariff of the carrier in force) is settled then too, over the whole slot, for every household
whose meters of the carrier read in any of its market slots: each market slot settled before its
end keeps those meters' ids under ``market/residual-meters/<carrier>/<start>`` (the market
slot's own index leaves the state as it settles), and the last takes them.

Refusals, in this order: ``bad_payload``, ``bad_slot`` (not an integer >= 0),
``slot_misaligned``, ``slot_not_ended``, ``settlement_not_due`` (ended less than
``market.settlement_delay_ms`` ago), ``slot_not_cleared`` (orders or offers of the slot are left:
send ``market.slot.clear`` first), ``nothing_to_settle`` (no contracts and no recorded reading:
none were made or recorded, or the slot is settled already and they left the state).
"""

from __future__ import annotations

from collections import Counter

from ledger.application import Context, TxFailed, balance, issuer, payload_fields
from ledger.crypto import Transaction
from ledger.state import State
from market.chain import storage
from market.chain.contract import has_open_trading
from market.chain.flexibility import DIRECTIONS, FLEXIBILITY, baselines_update
from market.chain.options import ELECTRICITY, Options, market_options
from market.chain.pricing import share, value
from market.chain.residual import metered, metered_in_full, residual_settle
from market.chain.schema import (
    CONTRACT_SETTLED,
    SLOT_SETTLED,
    Contract,
    ResidualSummary,
    SettlementResult,
    add_locked,
    carrier_of,
    contract_id,
    contract_key,
    contracts_key,
    defaults_key,
)
from market.chain.tariff import in_force
from meters.chain import schema as meters

# The hook point called at the end of a settlement: fn(state, slot, contracts, context).
SLOT_SETTLED_HOOK = "market.slot_settled"


def _check_due(
    state: State, slot: int, now: int, options: Options
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The number of contracts of each carrier's slot that ends with ``slot``, and that slot's
    ``(start, slot_ms)``, if they may settle at block time ``now``."""
    spans = {carrier: (start, own) for carrier, start, own in options.ending_with(slot)}
    if slot % options.slot_ms:
        raise TxFailed("slot_misaligned", "a slot starts at a multiple of market.slot_ms")
    end = slot + options.slot_ms
    if now < end:
        raise TxFailed("slot_not_ended")
    if now < end + options.settlement_delay_ms:
        raise TxFailed("settlement_not_due", "meter data has until market.settlement_delay_ms")
    if any(has_open_trading(state, start, carrier) for carrier, (start, _) in spans.items()):
        raise TxFailed("slot_not_cleared", "orders or offers of the slot are left: clear it")
    counts = {
        carrier: state.get(contracts_key(start, carrier), 0)
        for carrier, (start, _) in spans.items()
    }
    if not any(counts.values()) and not meters.slot_has_readings(state, slot):
        raise TxFailed("nothing_to_settle")
    return counts, spans


_SUMMED = (
    "energy_wh",
    "delivered_wh",
    "paid",
    "fees",
    "penalties",
    "escrow_released",
    "deposit_released",
    "shortfalls",
)


def slot_settle(state: State, tx: Transaction, context: Context) -> None:
    """``market.slot.settle``: settle every contract of a slot against its sellers' meters.

    Any account may send it. Preconditions are the refusals in the module docstring; once it
    succeeds the slot's contracts are gone (it never settles again: ``nothing_to_settle``) and
    readings for it are late.
    """
    (slot,) = payload_fields(tx, "slot")
    if type(slot) is not int or slot < 0:
        raise TxFailed("bad_slot")
    options = market_options(state)
    counts, spans = _check_due(state, slot, context.timestamp_ms, options)
    operator = issuer(state)

    # Each (carrier, seller)'s metered (import, export) by its meters of the carrier, read at its
    # first contract of the carrier; and what of its export (direction "") or of its reduction
    # against a baseline (direction "import" or "export") its earlier contracts left.
    flows: dict[tuple[str, str], tuple[int, int]] = {}
    left: dict[tuple[str, str, str], int] = {}
    # Each carrier's (import, export) of its sellers, and the Wh its contracts delivered to each
    # buyer and by each seller, for the carrier's residual.
    measured = {carrier: dict[str, tuple[int, int]]() for carrier in options.carriers}
    credits: Counter[str] = Counter()  # balance changes, written once per account at the end
    unlocks: Counter[str] = Counter()
    shortfalls: Counter[str] = Counter()
    shortfall_wh: Counter[str] = Counter()
    p2p_in = {carrier: Counter[str]() for carrier in options.carriers}
    p2p_out = {carrier: Counter[str]() for carrier in options.carriers}
    summaries = {carrier: Counter[str]() for carrier in options.carriers}
    contracts: list[Contract] = []
    numbered = [(carrier, n) for carrier in spans for n in range(counts[carrier])]
    for carrier, index in numbered:
        start, own = spans[carrier]  # the carrier's slot ending with this one
        made = state.get(contract_key(contract_id(start, index, carrier)))
        contracts.append(made)
        state.delete(contract_key(made["id"]))
        if made.get("vetoed"):
            continue  # a regulator vetoed it: its margins went back then, and it never settles
        summary = summaries[carrier]
        summary["contracts"] += 1
        seller, buyer = made["seller"], made["buyer"]
        energy, price = made["energy_wh"], made["price"]
        if (carrier, seller) not in flows:
            flows[carrier, seller] = metered(state, seller, start, own, carrier)
            measured[carrier][seller] = flows[carrier, seller]
        flexible = made["kind"] == FLEXIBILITY
        if flexible:  # a reduction against the baseline (market.chain.flexibility)
            pool = (carrier, seller, made["direction"])
            flow = flows[carrier, seller][DIRECTIONS.index(made["direction"])]
            if pool not in left:  # nothing is reduced that no meter saw: every interval read
                read = metered_in_full(state, seller, start, own, carrier)
                left[pool] = max(0, made["baseline_wh"] - flow) if read else 0
        else:
            pool = (carrier, seller, "")
            if pool not in left:
                left[pool] = flows[carrier, seller][1]
        delivered = min(left[pool], energy)
        left[pool] -= delivered
        if not flexible:
            p2p_in[carrier][buyer] += delivered
            p2p_out[carrier][seller] += delivered
        undelivered = energy - delivered
        paid = value(delivered, price)
        fee = value(delivered, made["network_fee"])
        penalty = min(made["deposit"], share(value(undelivered, price), made["penalty_bps"]))
        # The rounding rule keeps both inside their margins (market.chain.pricing).
        assert paid + fee <= made["escrow"]
        credits[buyer] += penalty - paid - fee
        credits[seller] += paid - penalty
        credits[operator] += fee
        unlocks[buyer] += made["escrow"]
        unlocks[seller] += made["deposit"]
        if undelivered:
            shortfalls[seller] += 1
            shortfall_wh[seller] += undelivered
        result: SettlementResult = {
            "slot": start,
            "contract": made["id"],
            "seller": seller,
            "buyer": buyer,
            "energy_wh": energy,
            "export_wh": flows[carrier, seller][1],
            "delivered_wh": delivered,
            "paid": paid,
            "fee": fee,
            "penalty": penalty,
            "escrow_released": made["escrow"] - paid - fee,
            "deposit_released": made["deposit"] - penalty,
        }
        if carrier != ELECTRICITY:
            result["carrier"] = carrier
        if flexible:
            result["measured_wh"] = flow
            result["baseline_wh"] = made["baseline_wh"]
        context.emit(CONTRACT_SETTLED, result)
        summary.update(
            energy_wh=energy,
            delivered_wh=delivered,
            paid=paid,
            fees=fee,
            penalties=penalty,
            escrow_released=result["escrow_released"],
            deposit_released=result["deposit_released"],
            shortfalls=1 if undelivered else 0,
        )

    for address, delta in credits.items():
        if delta:
            state.set(f"bal/{address}", balance(state, address) + delta)
    for address, amount in unlocks.items():
        add_locked(state, address, -amount)
    for seller, n in shortfalls.items():
        record = state.get(defaults_key(seller), {})
        state.set(
            defaults_key(seller),
            record
            | {
                "unsettled": record.get("unsettled", 0) + n,
                "shortfalls": record.get("shortfalls", 0) + n,
                "shortfall_wh": record.get("shortfall_wh", 0) + shortfall_wh[seller],
                "last_slot": slot,
            },
        )
    for carrier, (start, _) in spans.items():
        state.delete(contracts_key(start, carrier))
    with_readings = meters.slot_meters(state, slot)
    baselines_update(state, slot, options.slot_ms, with_readings, spans=spans)
    parties = [
        (made[party], carrier_of(made), made["slot"])
        for made in contracts
        for party in ("seller", "buyer")
    ]
    storage.slot_settled(state, slot, options.slot_ms, parties, with_readings, context)
    meter_ids = meters.slot_meters_take(state, slot)
    residuals: dict[str, ResidualSummary | None] = {}
    for carrier in options.carriers:
        if carrier not in spans:  # its longer slot goes on: keep its meters for when it ends
            _residual_meters_keep(state, carrier, slot, options, meter_ids)
            residuals[carrier] = None
            continue
        start, own = spans[carrier]
        ids = (
            meter_ids if start == slot else _residual_meters_take(state, carrier, start) + meter_ids
        )
        residuals[carrier] = residual_settle(
            state,
            start,
            own,
            p2p_in[carrier],
            p2p_out[carrier],
            context,
            meter_ids=ids,
            measured=measured[carrier],
            carrier=carrier,
        )
    settled = summaries[ELECTRICITY]
    summary_event: dict[str, object] = {
        "slot": slot,
        "contracts": settled["contracts"],
        **{name: settled[name] for name in _SUMMED},
        "residual": residuals[ELECTRICITY],
        "tx": context.tx_id,
        "height": context.height,
        "timestamp_ms": context.timestamp_ms,
    }
    for carrier in options.carriers[1:]:  # another carrier's totals, never added to these
        if counts.get(carrier) or residuals[carrier] is not None:
            other = summaries[carrier]
            totals: dict[str, object] = {
                "contracts": other["contracts"],
                **{name: other[name] for name in _SUMMED},
            }
            if spans[carrier][0] != slot:  # a longer slot than the market's: its own start
                totals["slot"] = spans[carrier][0]
            if residuals[carrier] is not None:  # only with a tariff of the carrier in force
                totals["residual"] = residuals[carrier]
            summary_event[carrier] = totals
    context.emit(SLOT_SETTLED, summary_event)
    for settled_hook in context.hooks.get(SLOT_SETTLED_HOOK, ()):
        settled_hook(state, slot, contracts, context)


def _residual_meters_key(carrier: str, start: int) -> str:
    return f"market/residual-meters/{carrier}/{start}"


def _residual_meters_keep(
    state: State, carrier: str, slot: int, options: Options, meter_ids: list[str]
) -> None:
    """Keep the ids of ``carrier``'s meters among ``meter_ids`` (those that read in the market
    slot ``slot``, settled now) for the residual of the carrier's longer slot holding it, when a
    tariff of the carrier is in force for it (none: nothing to settle with the supplier)."""
    own = options.carrier(carrier).slot_ms
    start = slot - slot % own
    if in_force(state, start, carrier) is None:
        return
    key = _residual_meters_key(carrier, start)
    kept: list[str] = list(state.get(key, []))
    known = set(kept)
    for meter_id in meter_ids:
        found = meters.meter(state, meter_id)
        if found is not None and meters.meter_carrier(found["kind"]) == carrier:
            if meter_id not in known:
                known.add(meter_id)
                kept.append(meter_id)
    if kept:
        state.set(key, kept)


def _residual_meters_take(state: State, carrier: str, start: int) -> list[str]:
    """The meter ids kept for the carrier's slot starting at ``start``; the key leaves the state."""
    key = _residual_meters_key(carrier, start)
    kept: list[str] = state.get(key, [])
    if kept:
        state.delete(key)
    return kept
