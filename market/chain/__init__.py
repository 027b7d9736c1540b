"""The market on the ledger: everything the validators execute for trading and settlement.

No Django import, no Celery, no site module: only the ledger's deterministic core and the meters'
chain package below it. Modules:

==================  ===========================================================================
``schema``          the market's state keys and records (the only place that spells a key)
``options``         the market's genesis options
``pricing``         money from energy and prices: the one rounding rule
``book``            the order book's price levels and price index
``auction``         the uniform clearing price of a call auction
``network``         what the market asks of the grid and its supervisors (the
                    ``market.network`` hook, provided by ``supervision.chain``)
``contract``        orders, matching, bilateral offers and contracts, the end of trading
``settlement``      a slot's contracts settled against its sellers' meters
==================  ===========================================================================

:func:`register` adds the market's transaction types to a registry that already holds the
ledger's and the meters', and hooks the market into both: the ledger's spend guard (a
``credit.transfer`` or ``credit.redeem`` may spend the free balance only, never a margin) and the
meters' question whether a slot has settled (a reading for a settled slot is late).
"""

from __future__ import annotations

from ledger.application import ANY_ROLE, HOUSEHOLD, SPEND_GUARDS, Registry, TxFailed
from ledger.state import State
from market.chain import contract, settlement
from market.chain.schema import free_balance
from market.chain.schema import settlement as settled
from meters.chain.metering import SLOT_SETTLED

# The transaction types' names, for the site (services, projection) to name them by.
ORDER_PLACE = "market.order.place"
ORDER_CANCEL = "market.order.cancel"
OFFER_POST = "market.offer.post"
OFFER_ACCEPT = "market.offer.accept"
OFFER_WITHDRAW = "market.offer.withdraw"
SLOT_CLEAR = "market.slot.clear"
SLOT_SETTLE = "market.slot.settle"

TYPES = {
    ORDER_PLACE: (HOUSEHOLD, contract.order_place),
    ORDER_CANCEL: (HOUSEHOLD, contract.order_cancel),
    OFFER_POST: (HOUSEHOLD, contract.offer_post),
    OFFER_ACCEPT: (HOUSEHOLD, contract.offer_accept),
    OFFER_WITHDRAW: (HOUSEHOLD, contract.offer_withdraw),
    SLOT_CLEAR: (ANY_ROLE, contract.slot_clear),
    SLOT_SETTLE: (ANY_ROLE, settlement.slot_settle),
}


def spend_free_balance_only(state: State, address: str) -> None:
    """The ledger's spend guard: after a ``credit.*`` spent it, the balance must still cover
    what the account has locked as margins."""
    if free_balance(state, address) < 0:
        raise TxFailed("insufficient_free_balance", "that money is locked as margins")


def slot_settled(state: State, slot: int) -> bool:
    """The meters' hook: whether the market has settled ``slot`` (a later reading is late)."""
    return settled(state, slot) is not None


def register(registry: Registry) -> Registry:
    """Add the market's types and hooks to ``registry`` (the ledger's and the meters' first)."""
    for name, (sender, handler) in TYPES.items():
        registry.register(name, senders={sender}, handler=handler)
    registry.hook(SPEND_GUARDS, spend_free_balance_only)
    registry.hook(SLOT_SETTLED, slot_settled)
    return registry
