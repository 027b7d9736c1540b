"""The market's read models against the chain (``ledger.read_model_audit``; named in
``settings.LEDGER_READ_MODEL_AUDITS``).

Against the state at the audited height (``market.chain.schema``):

* ``MarketAccount.locked`` and ``.arrears`` against ``market/locked/<address>`` and
  ``market/arrears/<address>`` (absent: 0); a row for an
  address that is no account on the chain is a row the chain does not have. (Its ``feeder`` is
  supervision's to audit, as it is supervision's to project.)
* ``Order`` and ``Offer``: every ``market/order/<id>`` / ``market/offer/<id>`` has its row,
  ``open``, with the record's owner, slot, carrier, price, energy, remainder, margin and block
  (an offer's buyer, an order's side); a row whose key is gone is not ``open`` and locks nothing.
  Every order and offer a contract names (``seller_tx``, and ``buyer_tx`` but for an offer's
  acceptance) has its row.
* ``Contract``: every ``market/contract/<id>`` (a contract of a slot not settled yet) and its
  row, field by field.

Against the events of the blocks up to the audited height, for the history that left the state
when its slot settled (the blocks with a successful ``market.slot.settle``, found through the
site's transaction index, so the audit reads one block per settled slot, not the chain):

* ``SlotSettlement`` and ``SettlementLine``: every ``market.slot_settled`` and
  ``market.contract_settled`` event and every row, field by field;
* ``GridSettlement``: every ``market.residual_settled`` event (a household's line of a carrier
  with the supplier of last resort) and every row, field by field, carrier included;
* ``Contract`` rows of settled slots: each has a settlement line, or was vetoed; any other row
  is one the chain does not have.

* ``Tariff``: every tariff of ``market/tariffs`` (and ``market/tariffs/<carrier>``) and its row
  (carrier, bands, transaction, block).

Not yet: how a closed order or offer closed (``filled`` / ``cancelled`` / ``expired``, its
remainder, ``closed_height``), and closed ones no contract names.
"""

from __future__ import annotations

from typing import Any

from ledger import application
from ledger.models import BlockRecord, TransactionRecord
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.read_model_audit import Comparison, Difference
from ledger.state import State
from market.chain import schema, tariff
from market.chain.options import ELECTRICITY
from market.models import (
    Carrier,
    Contract,
    GridSettlement,
    MarketAccount,
    Offer,
    OfferStatus,
    Order,
    OrderStatus,
    SettlementLine,
    SlotSettlement,
    Tariff,
)
from market.projection import (
    CONTRACT_FIELDS,
    RESIDUAL_FIELDS,
    SETTLEMENT_LINE_FIELDS,
    other_carriers,
)

CHUNK = 2_000
CLOSED = "closed"  # the chain's word for an order or offer whose key is gone


def audit(*, height: int, state: State) -> list[Difference]:
    found = Comparison(height)
    _accounts(found, state)
    summaries, results, residuals = _settled(height)
    contracts = _contracts(found, state, results)
    _orders(found, state, contracts)
    _offers(found, state, contracts)
    _settlements(found, summaries, results)
    _residuals(found, residuals)
    _tariffs(found, state)
    return found.differences


def _tariff_key(carrier: str, from_slot: int) -> str:
    """A tariff's key in the comparison: electricity's ``<from_slot>``, another carrier's
    ``<carrier>/<from_slot>``."""
    return str(from_slot) if carrier == ELECTRICITY else f"{carrier}/{from_slot}"


def _tariffs(found: Comparison, state: State) -> None:
    """``Tariff`` rows against ``market/tariffs`` (and each other carrier's list), field by
    field. A row older than the oldest tariff of its carrier the state keeps is one the state
    pruned (it stays in the blocks), not a stray."""
    chain: dict[str, tariff.Tariff] = {}
    oldest: dict[str, int] = {}
    for carrier in Carrier.values:
        kept_list = tariff.tariffs(state, carrier)
        for one in kept_list:
            chain[_tariff_key(carrier, one["from_slot"])] = one
        if kept_list:
            oldest[carrier] = kept_list[0]["from_slot"]
    seen = set()
    for row in Tariff.objects.all():
        from_slot = ms_of_datetime(row.from_slot)
        key = _tariff_key(row.carrier, from_slot)
        if row.carrier in oldest and from_slot < oldest[row.carrier]:
            continue
        seen.add(key)
        kept = chain.get(key)
        if kept is None:
            found.stray(Tariff, key)
            continue
        names = ("bands", "tx", "height")
        found.fields(
            Tariff,
            key,
            {name: kept[name] for name in names},  # type: ignore[literal-required]
            {name: getattr(row, name) for name in names},
        )
    for key in sorted(set(chain) - seen):
        found.missing(Tariff, key)


Settled = tuple[dict[int, dict[str, Any]], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]


def _settled(height: int) -> Settled:
    """The settlement events of the chain up to ``height``: summaries by slot, each with the
    block's height; per-contract results by contract id, each with its summary's; and each
    household's residual by ``<slot>/<account>``, with its block's height."""
    summaries: dict[int, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    residuals: dict[str, dict[str, Any]] = {}
    heights = sorted(
        set(
            TransactionRecord.objects.filter(
                type="market.slot.settle", result="ok", block__height__lte=height
            ).values_list("block__height", flat=True)
        )
    )
    bodies = BlockRecord.objects.filter(height__in=heights).order_by("height")
    for block_height, body in bodies.values_list("height", "body").iterator(CHUNK):
        lines: list[dict[str, Any]] = []
        for event in body.get("events", []):
            data = event["data"]
            if event["type"] == schema.RESIDUAL_SETTLED:
                key = _residual_key(data["slot"], data["account"], schema.carrier_of(data))
                residuals[key] = data | {"height": block_height}
            elif event["type"] == schema.SLOT_SETTLED:
                summaries[data["slot"]] = data
                for line in lines:
                    results[line["contract"]] = line | {"summary": data}
                lines = []
            elif event["type"] == schema.CONTRACT_SETTLED:
                lines.append(data)
    return summaries, results, residuals


def _suffixes(state: State, prefix: str) -> list[str]:
    return [key[len(prefix) :] for key in state.keys(prefix)]


def _accounts(found: Comparison, state: State) -> None:
    locked = {a: schema.locked(state, a) for a in _suffixes(state, schema.LOCKED_PREFIX)}
    arrears = {a: schema.arrears(state, a) for a in _suffixes(state, schema.arrears_key(""))}
    seen = set()
    rows = MarketAccount.objects.values_list("address", "locked", "arrears")
    for address, site_locked, site_arrears in rows.iterator(CHUNK):
        seen.add(address)
        if application.account(state, address) is None:
            found.stray(MarketAccount, address)
            continue
        found.fields(
            MarketAccount,
            address,
            {"locked": locked.get(address, 0), "arrears": arrears.get(address, 0)},
            {"locked": site_locked, "arrears": site_arrears},
        )
    for address in sorted((set(locked) | set(arrears)) - seen):
        found.missing(MarketAccount, address)


# --- contracts -----------------------------------------------------------------------------------


def _contracts(
    found: Comparison, state: State, results: dict[str, dict[str, Any]]
) -> dict[str, schema.Contract]:
    """Compare the contracts of slots not settled yet with the state, and check that the rows
    of settled ones are the settled contracts (or vetoed); return the chain's live ones."""
    chain: dict[str, schema.Contract] = {}
    for contract_id in _suffixes(state, schema.CONTRACT_PREFIX):
        made = schema.contract(state, contract_id)
        assert made is not None
        chain[contract_id] = made
    columns = (*CONTRACT_FIELDS, "carrier", "slot", "made_at", "grid", "vetoed", "acts")
    seen = set()
    settled_slots = {result["slot"] for result in results.values()}
    for row in Contract.objects.values("id", *columns).iterator(CHUNK):
        seen.add(row["id"])
        made = chain.get(row["id"])
        if made is None:
            settled = results.get(row["id"])
            if settled is not None:
                expected = {name: settled[name] for name in ("seller", "buyer")}
                found.fields(Contract, row["id"], expected, row)
            elif ms_of_datetime(row["slot"]) not in settled_slots or not row["vetoed"]:
                found.stray(Contract, row["id"])
            continue
        record: dict[str, Any] = dict(made)
        expected = {name: record[name] for name in CONTRACT_FIELDS}
        expected |= {
            "carrier": schema.carrier_of(made),
            "slot": datetime_of_ms(made["slot"]),
            "made_at": datetime_of_ms(made["timestamp_ms"]),
            "grid": made.get("grid"),
            "vetoed": bool(made.get("vetoed")),
            "acts": made.get("acts", []),
        }
        found.fields(Contract, row["id"], expected, row)
    for contract_id in sorted(set(chain) - seen):
        found.missing(Contract, contract_id)
    return chain


# --- orders and offers ---------------------------------------------------------------------------

COLUMNS = ("owner", "slot", "price", "energy_wh", "remaining_wh", "locked", "height")


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start : start + 500] for start in range(0, len(ids), 500)]


def _open_rows(
    found: Comparison, state: State, model: type[Order] | type[Offer], prefix: str, extra: str
) -> set[str]:
    """Open rows against the keys (``extra``: the side of an order, the buyer of an offer):
    each key's row, open, field by field; each open row's key; nothing locked by a closed one.
    Returns the ids the chain has open."""
    status = OrderStatus.OPEN if model is Order else OfferStatus.OPEN
    records: dict[str, dict[str, Any]] = {
        i: state.get(prefix + i) for i in _suffixes(state, prefix)
    }

    def compare(row: dict[str, Any]) -> None:
        record = records[row["id"]]
        expected = {name: record[name] for name in (*COLUMNS, extra)}
        expected |= {
            "slot": datetime_of_ms(record["slot"]),
            "carrier": schema.carrier_of(record),
            "status": status,
        }
        found.fields(model, row["id"], expected, row)

    columns = ("id", *COLUMNS, "carrier", extra, "status")
    seen = set()
    for row in model.objects.filter(status=status).order_by("id").values(*columns).iterator(CHUNK):
        seen.add(row["id"])
        if row["id"] in records:
            compare(row)
        else:  # open on the site, gone from the chain
            found.fields(model, row["id"], {"status": CLOSED}, {"status": status})
    # The chain's open ones that are not open on the site (none, unless a row was changed).
    rest = sorted(set(records) - seen)
    rows: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(rest):
        rows |= {row["id"]: row for row in model.objects.filter(id__in=chunk).values(*columns)}
    for row_id in rest:
        if row_id in rows:
            compare(rows[row_id])
        else:
            found.missing(model, row_id)
    closed = model.objects.exclude(status=status).exclude(locked=0).order_by("id")
    for row_id, locked in closed.values_list("id", "locked").iterator(CHUNK):
        if row_id not in records:  # else compared with its key above
            found.fields(model, row_id, {"locked": 0}, {"locked": locked})
    return set(records)


def _named(found: Comparison, model: type[Order] | type[Offer], named: dict[str, str]) -> None:
    """Every order or offer a contract names (id -> its owner) has its row, of that owner."""
    owners = {}
    for row_id, owner in model.objects.values_list("id", "owner").iterator(CHUNK):
        if row_id in named:
            owners[row_id] = owner
    for row_id, owner in sorted(named.items()):
        if row_id not in owners:
            found.missing(model, row_id)
        else:
            found.fields(model, row_id, {"owner": owner}, {"owner": owners[row_id]})


def _orders(found: Comparison, state: State, contracts: dict[str, schema.Contract]) -> None:
    open_ids = _open_rows(found, state, Order, schema.ORDER_PREFIX, "side")
    named: dict[str, str] = {}
    for made in contracts.values():
        if made["kind"] != "offer":
            named[made["seller_tx"]] = made["seller"]
            named[made["buyer_tx"]] = made["buyer"]
    # An open order's row was compared above: here those whose key is gone.
    _named(found, Order, {i: owner for i, owner in named.items() if i not in open_ids})


def _offers(found: Comparison, state: State, contracts: dict[str, schema.Contract]) -> None:
    open_ids = _open_rows(found, state, Offer, schema.OFFER_PREFIX, "buyer")
    # An offer's contract names the offer (seller_tx) and its acceptance, which has no row.
    named = {
        made["seller_tx"]: made["seller"]
        for made in contracts.values()
        if made["kind"] == "offer" and made["seller_tx"] not in open_ids
    }
    _named(found, Offer, named)


# --- settlements ---------------------------------------------------------------------------------

SUMMARY_FIELDS = (
    "contracts",
    "energy_wh",
    "delivered_wh",
    "paid",
    "fees",
    "penalties",
    "shortfalls",
    "residual",
    "tx",
    "height",
)
LINE_FIELDS = SETTLEMENT_LINE_FIELDS


def _settlements(
    found: Comparison, summaries: dict[int, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> None:
    seen_slots = set()
    columns = ("slot", *SUMMARY_FIELDS, "carriers", "settled_at")
    for row in SlotSettlement.objects.values(*columns).iterator(CHUNK):
        slot = row["slot"]
        slot_ms = ms_of_datetime(slot)
        seen_slots.add(slot_ms)
        summary = summaries.get(slot_ms)
        if summary is None:
            found.stray(SlotSettlement, str(slot_ms))
            continue
        record = dict(summary)
        expected = {name: record[name] for name in SUMMARY_FIELDS}
        expected["settled_at"] = datetime_of_ms(summary["timestamp_ms"])
        expected["carriers"] = other_carriers(summary)
        found.fields(SlotSettlement, str(slot_ms), expected, row)
    for slot_ms in sorted(set(summaries) - seen_slots):
        found.missing(SlotSettlement, str(slot_ms))

    seen_lines = set()
    line_columns = ("contract_id", "slot", "carrier", *LINE_FIELDS, "height", "settled_at")
    for row in SettlementLine.objects.values(*line_columns).iterator(CHUNK):
        contract_id = row["contract_id"]
        seen_lines.add(contract_id)
        result = results.get(contract_id)
        if result is None:
            found.stray(SettlementLine, contract_id)
            continue
        slot_ms = result["slot"]
        summary = result["summary"]  # a slot's lines and summary are written in one block
        line: dict[str, Any] = dict(result)
        expected = {name: line[name] for name in LINE_FIELDS}
        expected |= {
            "slot": datetime_of_ms(slot_ms),
            "carrier": schema.carrier_of(result),
            "height": summary["height"],
            "settled_at": datetime_of_ms(summary["timestamp_ms"]),
        }
        found.fields(SettlementLine, contract_id, expected, row)
    for contract_id in sorted(set(results) - seen_lines):
        found.missing(SettlementLine, contract_id)


def _residual_key(slot: int, account: str, carrier: str) -> str:
    """A residual line's key: electricity's ``<slot>/<account>``, another carrier's
    ``<slot>/<account>/<carrier>``."""
    key = f"{slot}/{account}"
    return key if carrier == ELECTRICITY else f"{key}/{carrier}"


def _residuals(found: Comparison, residuals: dict[str, dict[str, Any]]) -> None:
    """``GridSettlement`` rows against the ``market.residual_settled`` events, field by field."""
    seen = set()
    columns = ("slot", "carrier", *RESIDUAL_FIELDS, "height")
    for row in GridSettlement.objects.values(*columns).iterator(CHUNK):
        key = _residual_key(ms_of_datetime(row["slot"]), row["account"], row.pop("carrier"))
        seen.add(key)
        event = residuals.get(key)
        if event is None:
            found.stray(GridSettlement, key)
            continue
        expected = {name: event[name] for name in (*RESIDUAL_FIELDS, "height")}
        expected["slot"] = datetime_of_ms(event["slot"])
        found.fields(GridSettlement, key, expected, row)
    for key in sorted(set(residuals) - seen):
        found.missing(GridSettlement, key)
