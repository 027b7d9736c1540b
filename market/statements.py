"""A household's statement as CSV: one row per settled contract, from its side.

Times are ISO 8601 with their UTC offset; the header names every unit; money is integer minor units
(cents), signed (+ received, - paid). Energy is in Wh of the line's ``carrier`` (the last column:
``electricity``, or ``heat`` in Wh thermal), and its price per kWh of it. A text cell a spreadsheet
would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
prefixed with ``'``: nothing in a statement is a formula. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from gridplatform.money import text_from_minor
from market.chain.options import ELECTRICITY
from market.flows import Traded
from market.forms import energy_text, price_text
from market.models import GridSettlement
from market.selectors import StatementLine

HEADER = (
    "slot_start",
    "slot_end",
    "contract",
    "role",
    "counterparty",
    "contracted_energy_Wh",
    "delivered_energy_Wh",
    "price_minor_units_per_kWh",
    "energy_amount_minor_units",
    "network_fee_minor_units",
    "penalty_minor_units",
    "net_minor_units",
    "carrier",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> object:
    """A text cell safe to open in a spreadsheet (numbers pass as they are)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def statement_csv(lines: Iterable[StatementLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for line in lines:
        row: list[object] = [
            line.slot.isoformat(),
            line.slot_end.isoformat(),
            line.contract,
            line.role,
            line.counterparty,
            line.contracted_wh,
            line.delivered_wh,
            line.price,
            line.energy_amount,
            line.network_fee,
            line.penalty,
            line.net,
            line.carrier,
        ]
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()


def penalty_explained(line: StatementLine) -> str:
    """A line's penalty in words ("" when there is none), from the side of its party."""
    if not line.penalty:
        return ""
    missing = energy_text(line.contracted_wh - line.delivered_wh, line.carrier)
    amount = text_from_minor(abs(line.penalty))
    delivered = energy_text(line.delivered_wh, line.carrier)
    contracted = energy_text(line.contracted_wh, line.carrier)
    if line.role == "seller":
        return (
            f"Your meters measured {delivered} delivered of the {contracted} you sold: for "
            f"the {missing} missing you paid the buyer {amount} from your deposit (the "
            f"contract's penalty on its value at {price_text(line.price, line.carrier)})."
        )
    return (
        f"The seller delivered {delivered} of the {contracted} you bought: for the "
        f"{missing} missing, {amount} of its deposit came to you."
    )


@dataclass(kw_only=True)
class CarrierTotals(Traded):
    """A statement's lines of one carrier, added up: energy in Wh of its unit (``Traded``,
    never added to another carrier's), money in minor units, signed (+ received, - paid)."""

    carrier: str
    lines: int = 0
    net: int = 0


def carrier_totals(lines: Iterable[StatementLine]) -> list[CarrierTotals]:
    """The lines' totals per carrier, electricity first (the statement's "side by side")."""
    found: dict[str, CarrierTotals] = {}
    for line in lines:
        totals = found.setdefault(line.carrier, CarrierTotals(carrier=line.carrier))
        totals.lines += 1
        totals.net += line.net
        if line.role == "seller":
            totals.sold_wh += line.contracted_wh
            totals.sold_delivered_wh += line.delivered_wh
        else:
            totals.bought_wh += line.contracted_wh
            totals.bought_delivered_wh += line.delivered_wh
    return sorted(found.values(), key=lambda t: (t.carrier != ELECTRICITY, t.carrier))


@dataclass(kw_only=True)
class SupplierTotals:
    """A household's residual lines of one carrier with the supplier of last resort
    (``GridSettlement``), added up: energy in Wh of the carrier's unit, money in minor units
    (``net`` signed: + received, - paid). Each carrier's were settled at its own tariff."""

    carrier: str
    slots: int = 0
    grid_import_wh: int = 0
    import_cost: int = 0
    import_fee: int = 0
    grid_export_wh: int = 0
    feed_in_paid: int = 0
    arrears_added: int = 0

    @property
    def net(self) -> int:
        return self.feed_in_paid - self.import_cost - self.import_fee


def supplier_totals(*, address: str | None) -> list[SupplierTotals]:
    """The household's lines with the supplier per carrier, electricity first; none for an
    account without an address."""
    if address is None:
        return []
    found: dict[str, SupplierTotals] = {}
    for line in GridSettlement.objects.filter(account=address).order_by():
        totals = found.setdefault(line.carrier, SupplierTotals(carrier=line.carrier))
        totals.slots += 1
        totals.grid_import_wh += line.grid_import_wh
        totals.import_cost += line.import_cost
        totals.import_fee += line.import_fee
        totals.grid_export_wh += line.grid_export_wh
        totals.feed_in_paid += line.feed_in_paid
        totals.arrears_added += line.arrears_added
    return sorted(found.values(), key=lambda t: (t.carrier != ELECTRICITY, t.carrier))
