"""A household's statement as CSV: one row per settled contract, from its side.

Times are ISO 8601 with their UTC offset; the header names every unit; money is integer minor
units (cents), signed (+ received, - paid). A text cell a spreadsheet would read as a formula
(starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with ``'``:
nothing in a statement is a formula. Numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

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
        ]
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()
