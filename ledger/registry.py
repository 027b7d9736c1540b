"""Every transaction type the validators execute, gathered in one registry.

Later applications (market, meters, supervision) add their types here, so that a validator,
``ledger verify`` and a replay all execute with the same rules.
"""

from __future__ import annotations

from ledger.application import Registry, register_ledger_types
from market.contract import register_market_types
from meters.ledger import register_meter_types
from supervision.acts import register_supervision_types


def build_registry() -> Registry:
    # The market also guards credit.transfer and credit.redeem: they may not spend margins.
    registry = register_market_types(register_ledger_types(Registry()))
    return register_supervision_types(register_meter_types(registry))
