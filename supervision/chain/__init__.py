"""The grid and its supervisors on the ledger: topology, the security check, regulators' acts.

No Django import, no Celery, no site module: only the ledger's deterministic core and the
market's chain package below it. The top of the stack (``docs/architecture.md``):

=============  ==============================================================================
``schema``     its state keys (``grid/...``, ``supervision/...``) and records
``grid``       the grid operator's types (feeders, limits, declarations) and the security check
``network``    the answer to the market's ``market.network`` hook: who may trade, how much a
               match may carry
``acts``       the regulators' types: veto, curtail, clear, suspend, resume, restrict,
               reinstate, reset defaults
=============  ==============================================================================
"""

from __future__ import annotations

from ledger.application import GRID_OPERATOR, REGULATOR, Registry
from market.chain.network import NETWORK
from supervision.chain import acts, grid
from supervision.chain.network import GRID

TYPES = {
    "grid.feeder.assign": (GRID_OPERATOR, grid.feeder_assign),
    "grid.feeder.publish": (GRID_OPERATOR, grid.feeder_publish),
    "grid.state.declare": (GRID_OPERATOR, grid.state_declare),
    "supervision.contract.veto": (REGULATOR, acts.contract_veto),
    "supervision.contract.curtail": (REGULATOR, acts.contract_curtail),
    "supervision.review.clear": (REGULATOR, acts.review_clear),
    "supervision.trading.suspend": (REGULATOR, acts.trading_suspend),
    "supervision.trading.resume": (REGULATOR, acts.trading_resume),
    "supervision.account.restrict": (REGULATOR, acts.account_restrict),
    "supervision.account.reinstate": (REGULATOR, acts.account_reinstate),
    "supervision.defaults.reset": (REGULATOR, acts.defaults_reset),
}


def register(registry: Registry) -> Registry:
    """Add the grid operator's and the regulators' types, and provide the market's network."""
    for name, (sender, handler) in TYPES.items():
        registry.register(name, senders={sender}, handler=handler)
    registry.hook(NETWORK, GRID)
    return registry
