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

It answers two of the market's hooks: ``market.network`` (``network.GRID``) and
``market.slot_settled`` (``grid.slot_settled``: a settled slot's loads leave the state). Every
type emits events (``schema``: Events).
"""

from __future__ import annotations

from ledger.application import GRID_OPERATOR, REGULATOR, Registry
from market.chain.network import NETWORK
from market.chain.settlement import SLOT_SETTLED_HOOK
from supervision.chain import acts, grid
from supervision.chain.network import GRID

# The transaction types' names, for the site (services, projection) to name them by.
FEEDER_ASSIGN = "grid.feeder.assign"
FEEDER_PUBLISH = "grid.feeder.publish"
STATE_DECLARE = "grid.state.declare"
VETO = "supervision.contract.veto"
CURTAIL = "supervision.contract.curtail"
CLEAR = "supervision.review.clear"
SUSPEND = "supervision.trading.suspend"
RESUME = "supervision.trading.resume"
RESTRICT = "supervision.account.restrict"
REINSTATE = "supervision.account.reinstate"
DEFAULTS_RESET = "supervision.defaults.reset"

TYPES = {
    FEEDER_ASSIGN: (GRID_OPERATOR, grid.feeder_assign),
    FEEDER_PUBLISH: (GRID_OPERATOR, grid.feeder_publish),
    STATE_DECLARE: (GRID_OPERATOR, grid.state_declare),
    VETO: (REGULATOR, acts.contract_veto),
    CURTAIL: (REGULATOR, acts.contract_curtail),
    CLEAR: (REGULATOR, acts.review_clear),
    SUSPEND: (REGULATOR, acts.trading_suspend),
    RESUME: (REGULATOR, acts.trading_resume),
    RESTRICT: (REGULATOR, acts.account_restrict),
    REINSTATE: (REGULATOR, acts.account_reinstate),
    DEFAULTS_RESET: (REGULATOR, acts.defaults_reset),
}


def register(registry: Registry) -> Registry:
    """Add the grid operator's and the regulators' types, provide the market's network, and
    remove a slot's feeder loads when it settles."""
    for name, (sender, handler) in TYPES.items():
        registry.register(name, senders={sender}, handler=handler)
    registry.hook(NETWORK, GRID)
    registry.hook(SLOT_SETTLED_HOOK, grid.slot_settled)
    return registry
