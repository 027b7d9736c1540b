"""The residual: what each household buys from and sells to the supplier of last resort.

No Django import. Part of ``market.slot.settle`` (``market.chain.settlement``): after a slot's
contracts settle, every household with a reading recorded in the slot settles the rest of its
energy with the supplier of last resort (the issuer account, the grid operator, which publishes
the tariffs: ``market.chain.tariff``). Deterministic, integers only, with the market's one
rounding rule (``market.chain.pricing``: every division rounds down). ``docs/market.md``
("The grid behind the market") is the same reference with worked examples.

The rules
=========

The supplier of last resort settles each carrier the market trades and has a tariff for, on its
own: electricity's residual first, with electricity's tariff (``market/tariffs``), then heat's,
with heat's (``market/tariffs/heat``), and nothing of one carrier counts in the other's. For
each carrier with a tariff in force for the slot, for each household whose meters of that
carrier recorded a reading in the slot (the meters' slot index, ``meters.chain.schema``:
``meter/inslot/<slot>``; a meter's carrier is its kind's, ``meter_carrier``), in the order of
their addresses, with the band of the carrier's tariff in force for the slot
(``tariff.band_of``):

1. **Metered.** ``import_wh`` and ``export_wh``: the sums over every meter of the carrier of
   the household and every interval of the slot (a missing interval, or a ``missing`` quality,
   counts 0; a heat meter never counts in electricity's residual, nor an electricity meter in
   heat's).
2. **P2P.** ``p2p_in_wh``: the energy its contracts of the carrier and the slot delivered to
   it, as the contracts just settled (``delivered_wh``); ``p2p_out_wh``: what its own contracts
   of the carrier delivered (a flexibility contract is a reduction, not a delivery: it never
   counts).
3. **Residual energy.** ``grid_import_wh = max(0, import_wh - p2p_in_wh)`` is bought from the
   supplier; ``grid_export_wh = export_wh - p2p_out_wh`` (never negative: a seller's delivery is
   its export allocated to its contracts) is sold to it. Energy bought P2P beyond what the
   household imported was still bought: its contract paid for it.
4. **Money.** ``import_cost = value(grid_import_wh, retail)``, ``import_fee =
   value(grid_import_wh, network_fee)``, ``feed_in_paid = value(grid_export_wh, feed_in)``.
5. **Payment, arrears first.** What the household can pay is its free balance (balance less its
   locked margins, after the slot's contracts settled) plus ``feed_in_paid``. From it, first
   its earlier arrears (``arrears_paid``), then ``import_cost + import_fee``; what it cannot
   pay is added to its arrears (``arrears_added``, state ``market/arrears/<address>``). A
   balance never goes negative and never falls below the margins it locks. Arrears are one
   debt to one supplier, whichever carrier's residual added them: heat's residual pays first
   what electricity's, just before it, left owed, and the other way round in the next slot.
6. **The supplier** receives what was paid and pays ``feed_in_paid``. Should its balance not
   cover the feed-in it owes, it issues the difference (it is the issuer: a payout it owes in
   real money), which ``ledger/supply`` counts; so ``sum of balances == ledger/supply`` holds
   after every slot, as after every other transaction.

Each household's result is the event ``market.residual_settled`` (:class:`schema.Residual`;
another carrier's carries ``"carrier"``, ``"heat"``); the slot's totals are in
``market.slot_settled``: electricity's in ``residual``, heat's in ``heat.residual``. With no
tariff of a carrier in force for the slot nothing of that carrier is settled with the supplier
(electricity's ``residual`` is null; heat's totals have no ``residual``): that carrier then runs
P2P only. Either way the slot's index leaves the state, and later readings of the slot are late.

Arrears are also paid first from a top-up: the ledger's hook ``ledger.topped_up``, after a
``credit.issue`` to the household, pays ``min(arrears, free balance)`` to the supplier (event
``market.arrears_paid``).

It costs O(meters with readings in the slot x intervals in a slot), never a scan of the state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ledger.application import Context, balance, issuer
from ledger.state import State
from market.chain.options import ELECTRICITY
from market.chain.pricing import value
from market.chain.schema import (
    ARREARS_PAID,
    RESIDUAL_SETTLED,
    Residual,
    ResidualSummary,
    arrears,
    arrears_save,
    free_balance,
    with_carrier,
)
from market.chain.tariff import band_of, in_force
from meters.chain import schema as meters
from meters.chain.metering import slot_flows, slot_read_in_full

# The residual's fields the slot's summary sums (with the same names).
_SUMMED = (
    "grid_import_wh",
    "grid_export_wh",
    "import_cost",
    "import_fee",
    "feed_in_paid",
    "arrears_paid",
    "arrears_added",
)


def metered(
    state: State, address: str, slot: int, slot_ms: int, carrier: str = ELECTRICITY
) -> tuple[int, int]:
    """Wh the household's meters of ``carrier`` imported and exported in the slot, by their
    recorded readings.

    A missing interval and a ``missing`` quality count 0. O(the household's meters x intervals
    in a slot).
    """
    imported = exported = 0
    for meter_id in meters.meters_of(state, address):
        registered = meters.meter(state, meter_id)
        assert registered is not None  # the owner index lists registered meters only
        if meters.meter_carrier(registered["kind"]) == carrier:
            flows = slot_flows(state, registered, slot, slot_ms)
            imported += flows[0]
            exported += flows[1]
    return imported, exported


def metered_in_full(
    state: State, address: str, slot: int, slot_ms: int, carrier: str = ELECTRICITY
) -> bool:
    """Whether the household has meters of ``carrier`` and each read every interval of the slot
    (``meters.chain.metering.slot_read_in_full``): what a reduction against a baseline needs,
    since a missing interval counts 0 in :func:`metered`."""
    found = False
    for meter_id in meters.meters_of(state, address):
        registered = meters.meter(state, meter_id)
        assert registered is not None  # the owner index lists registered meters only
        if meters.meter_carrier(registered["kind"]) == carrier:
            if not slot_read_in_full(state, registered, slot, slot_ms):
                return False
            found = True
    return found


def _pay_supplier(state: State, supplier: str, delta: int) -> int:
    """Add ``delta`` to the supplier's balance, issuing what it lacks; what was issued."""
    total = balance(state, supplier) + delta
    issued = max(0, -total)
    if issued:
        state.set("ledger/supply", state.get("ledger/supply") + issued)
    state.set(f"bal/{supplier}", total + issued)
    return issued


def residual_settle(
    state: State,
    slot: int,
    slot_ms: int,
    p2p_in: Mapping[str, int],
    p2p_out: Mapping[str, int],
    context: Context,
    *,
    meter_ids: list[str],
    measured: Mapping[str, tuple[int, int]] | None = None,
    carrier: str = ELECTRICITY,
) -> ResidualSummary | None:
    """Settle the slot's residual of ``carrier`` (module docstring); None when no tariff of the
    carrier is in force.

    ``meter_ids``: the meters with readings in the slot (``meters.slot_meters_take``, taken once
    for every carrier); ``p2p_in`` / ``p2p_out``: Wh delivered to / by each account through the
    slot's contracts of the carrier; ``measured``: the (import, export) of :func:`metered` of the
    carrier the contracts' settlement already read (its sellers'), not read again. Called by
    ``market.slot.settle`` after the contracts settled, balances and margins written, once per
    carrier, electricity first.
    """
    known = measured or {}
    tariff = in_force(state, slot, carrier)
    if tariff is None:
        return None
    band = band_of(tariff, slot)
    supplier = issuer(state)
    registered = [meters.meter(state, meter_id) for meter_id in meter_ids]
    owners = sorted(
        {
            meter["owner"]
            for meter in registered
            if meter is not None and meters.meter_carrier(meter["kind"]) == carrier
        }
    )
    totals: Counter[str] = Counter()
    supplier_delta = 0
    for address in owners:
        import_wh, export_wh = known.get(address) or metered(state, address, slot, slot_ms, carrier)
        grid_import = max(0, import_wh - p2p_in.get(address, 0))
        grid_export = max(0, export_wh - p2p_out.get(address, 0))
        cost = value(grid_import, band["retail"])
        fee = value(grid_import, band["network_fee"])
        feed_in = value(grid_export, band["feed_in"])
        owed = arrears(state, address)
        available = max(0, free_balance(state, address)) + feed_in
        arrears_paid = min(owed, available)
        paid_now = min(cost + fee, available - arrears_paid)
        added = cost + fee - paid_now
        left = owed - arrears_paid + added
        arrears_save(state, address, left)
        state.set(f"bal/{address}", balance(state, address) + feed_in - arrears_paid - paid_now)
        supplier_delta += arrears_paid + paid_now - feed_in
        result: Residual = {
            "slot": slot,
            "account": address,
            "import_wh": import_wh,
            "export_wh": export_wh,
            "p2p_in_wh": p2p_in.get(address, 0),
            "p2p_out_wh": p2p_out.get(address, 0),
            "grid_import_wh": grid_import,
            "grid_export_wh": grid_export,
            "retail": band["retail"],
            "feed_in": band["feed_in"],
            "network_fee": band["network_fee"],
            "import_cost": cost,
            "import_fee": fee,
            "feed_in_paid": feed_in,
            "arrears_paid": arrears_paid,
            "arrears_added": added,
            "arrears": left,
        }
        context.emit(RESIDUAL_SETTLED, with_carrier(dict(result), carrier))
        totals.update({name: result[name] for name in _SUMMED})  # type: ignore[literal-required]
    issued = _pay_supplier(state, supplier, supplier_delta)
    summary: ResidualSummary = {
        "households": len(owners),
        **{name: totals[name] for name in _SUMMED},  # type: ignore[typeddict-item]
        "issued": issued,
    }
    return summary


def arrears_from_top_up(state: State, address: str, context: Context) -> None:
    """The ledger's ``ledger.topped_up`` hook: a household's arrears are paid first from a
    top-up, as far as its free balance goes."""
    owed = arrears(state, address)
    if not owed:
        return
    paid = min(owed, max(0, free_balance(state, address)))
    if not paid:
        return
    arrears_save(state, address, owed - paid)
    state.set(f"bal/{address}", balance(state, address) - paid)
    _pay_supplier(state, issuer(state), paid)
    context.emit(
        ARREARS_PAID,
        {"account": address, "paid": paid, "arrears": owed - paid, "tx": context.tx_id},
    )
