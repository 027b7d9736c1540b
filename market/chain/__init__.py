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
``terms``           checks shared by orders, offers and requirements (slots, bounds, carriers,
                    the qualification audit, margins)
``contract``        orders, matching, bilateral offers and contracts, the end of trading
``retail``          energy sellers (retailers) trading for households within their grants
``storage``         energy storage providers: trading within the store's state of charge
``flexibility``     the network operators' requirements, households' answers, flexibility
                    contracts and the baselines they are measured against
``settlement``      a slot's contracts settled against its sellers' meters
``tariff``          the supplier of last resort's tariffs (retail, feed-in, network fee)
``residual``        each household's energy beyond its contracts, settled with the supplier;
                    arrears
==================  ===========================================================================

:func:`register` adds the market's transaction types to a registry that already holds the
ledger's and the meters', and hooks the market into both: the ledger's spend guard (a
``credit.transfer`` or ``credit.redeem`` may spend the free balance only, never a margin), the
ledger's top-up hook (a household's arrears to the supplier are paid first from a top-up) and the
meters' question whether a slot is closed (its readings leave the state; later ones are late).
"""

from __future__ import annotations

from ledger.application import (
    ANY_ROLE,
    GRID_OPERATOR,
    HOUSEHOLD,
    RETAILER,
    SPEND_GUARDS,
    TOPPED_UP,
    TRADERS,
    Registry,
    TxFailed,
)
from ledger.state import State
from market.chain import contract, flexibility, residual, retail, settlement, storage, tariff
from market.chain.options import market_options
from market.chain.schema import contracts_key, free_balance
from meters.chain import schema as meters
from meters.chain.metering import SLOT_CLOSED

# The transaction types' names, for the site (services, projection) to name them by.
ORDER_PLACE = "market.order.place"
ORDER_CANCEL = "market.order.cancel"
OFFER_POST = "market.offer.post"
OFFER_ACCEPT = "market.offer.accept"
OFFER_WITHDRAW = "market.offer.withdraw"
SLOT_CLEAR = "market.slot.clear"
FLEXIBILITY_ENROLL = "market.flexibility.enroll"
REQUIREMENT_POST = "market.requirement.post"
REQUIREMENT_ANSWER = "market.requirement.answer"
REQUIREMENT_ACCEPT = "market.requirement.accept"
STORAGE_REGISTER = "market.storage.register"
GRANT = "market.grant"
GRANT_REVOKE = "market.grant.revoke"
SLOT_SETTLE = "market.slot.settle"
TARIFF_PUBLISH = "market.tariff.publish"

# Who may send each type. Households and storage providers trade for themselves (TRADERS); a
# retailer places and cancels orders for the households that granted it (market.chain.retail);
# the handlers check the rest of each role's rights (docs/ledger.md has the table).
OPERATOR = frozenset({GRID_OPERATOR})
ANYONE = frozenset({ANY_ROLE})
TYPES = {
    ORDER_PLACE: (TRADERS | {RETAILER}, contract.order_place),
    ORDER_CANCEL: (TRADERS | {RETAILER}, contract.order_cancel),
    OFFER_POST: (TRADERS, contract.offer_post),
    OFFER_ACCEPT: (TRADERS, contract.offer_accept),
    OFFER_WITHDRAW: (TRADERS, contract.offer_withdraw),
    SLOT_CLEAR: (ANYONE, contract.slot_clear),
    FLEXIBILITY_ENROLL: (TRADERS, flexibility.enroll),
    REQUIREMENT_POST: (OPERATOR, flexibility.requirement_post),
    REQUIREMENT_ANSWER: (TRADERS, flexibility.answer_post),
    REQUIREMENT_ACCEPT: (OPERATOR, flexibility.answer_accept),
    STORAGE_REGISTER: (OPERATOR, storage.register),
    GRANT: (frozenset({HOUSEHOLD}), retail.grant),
    GRANT_REVOKE: (frozenset({HOUSEHOLD}), retail.revoke),
    SLOT_SETTLE: (ANYONE, settlement.slot_settle),
    TARIFF_PUBLISH: (OPERATOR, tariff.tariff_publish),
}


def spend_free_balance_only(state: State, address: str) -> None:
    """The ledger's spend guard: after a ``credit.*`` spent it, the balance must still cover
    what the account has locked as margins."""
    if free_balance(state, address) < 0:
        raise TxFailed("insufficient_free_balance", "that money is locked as margins")


def slot_closed(state: State, slot: int, now: int) -> bool:
    """The meters' hook: whether no settlement can ever need the readings of the meters' slot
    starting at ``slot`` (block time ``now``): no meter's reading is indexed under the delivery
    slot holding it (none was made or recorded, or it has settled), and each carrier's slot
    holding it (heat's may be longer, ``market.heat.slot_ms``) has ended at least
    ``market.settlement_delay_ms`` ago, is cleared (no order or offer left, so no contract can
    be made for it any more) and waits for no settlement: it holds no contract."""
    options = market_options(state)
    start = slot - slot % options.slot_ms
    if meters.slot_has_readings(state, start):
        return False
    for carrier in options.carriers:  # each carrier's slot holding it (heat's may be longer)
        own = options.carrier(carrier).slot_ms
        held = slot - slot % own
        if (
            now < held + own + options.settlement_delay_ms
            or state.get(contracts_key(held, carrier)) is not None
            or contract.has_open_trading(state, held, carrier)
        ):
            return False
    return True


def register(registry: Registry) -> Registry:
    """Add the market's types and hooks to ``registry`` (the ledger's and the meters' first)."""
    for name, (senders, handler) in TYPES.items():
        registry.register(name, senders=senders, handler=handler)
    registry.hook(SPEND_GUARDS, spend_free_balance_only)
    registry.hook(SLOT_CLOSED, slot_closed)
    registry.hook(TOPPED_UP, residual.arrears_from_top_up)
    return registry
