"""The site's actions of energy sellers: a household grants, changes and revokes a retailer's
right to trade for it; a retailer places orders for its customers and cancels them
(``market.chain.retail``).

Each action signs one transaction with the user's custodial key, rehearses it on the site's
replica of the committed state (so that the validators' refusal comes back at once, with its
code) and submits it, through the market's signing helpers (``market.services``). Raises
``ledger.services.TransactionRejected`` with a stable code (docs/retail.md). Payloads leave
``carrier`` out for electricity.
"""

from __future__ import annotations

from datetime import datetime

from gridplatform.accounts.models import Identity, Role, User
from ledger.crypto import Transaction
from ledger.identity import IdentityError, validate_address
from ledger.models import LedgerAccount
from ledger.services import TransactionRejected
from market import chain as market_chain
from market import services as market_services
from market.chain.options import ELECTRICITY
from market.models import OrderStatus
from retail import selectors
from retail.errors import MESSAGES


def _household(user: User, role: object = Role.HOUSEHOLD) -> None:
    if user.role != role:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])


def retailer_address(text: str) -> str:
    """The account a household names as its retailer: an address (checked: a mistyped one is
    ``bad_address``; the validators check its role), or the email of a retailer account on the
    ledger (else ``unknown_retailer``)."""
    text = text.strip()
    if "@" not in text:
        try:
            return validate_address(text.lower())
        except IdentityError:
            raise TransactionRejected("bad_address", MESSAGES["bad_address"]) from None
    found = (
        Identity.objects.filter(user__email__iexact=text, user__role=Role.RETAILER)
        .values_list("address", flat=True)
        .first()
    )
    if found is None or not LedgerAccount.objects.filter(address=found).exists():
        raise TransactionRejected("unknown_retailer", MESSAGES["unknown_retailer"])
    return str(found)


def grant_give(
    *,
    user: User,
    retailer: str,
    max_energy_wh: int,
    max_price: int,
    min_price: int,
    carrier: str = ELECTRICITY,
) -> Transaction:
    """The household lets ``retailer`` (its email or address) place orders for it in
    ``carrier``, each at most ``max_energy_wh``, buying at most ``max_price`` and selling at
    least ``min_price`` (minor units per kWh): ``market.grant``; given again, the limits change.
    Refusals: ``bad_address``, ``unknown_retailer``, then the validators' (``own_grant``,
    ``not_retailer``, ``bad_grant_limit``, ``unknown_account``, ``bad_carrier``)."""
    _household(user)
    payload = {
        "retailer": retailer_address(retailer),
        "max_energy_wh": market_services.whole(max_energy_wh, "bad_grant_limit"),
        "max_price": market_services.whole(max_price, "bad_grant_limit"),
        "min_price": market_services.whole(min_price, "bad_grant_limit"),
    }
    return market_services.submit(
        user, market_chain.GRANT, market_services.with_carrier(payload, carrier)
    )


def grant_revoke(*, user: User, retailer: str, carrier: str = ELECTRICITY) -> Transaction:
    """The household ends its grant to the retailer at ``retailer`` (an address) in
    ``carrier``: later orders for it are refused; its resting ones stay (``market.grant.revoke``).
    Refusals: ``unknown_grant``."""
    _household(user)
    if not selectors.grant_list(user=user).filter(retailer=retailer, carrier=carrier).exists():
        raise TransactionRejected("unknown_grant", MESSAGES["unknown_grant"])
    return market_services.submit(
        user,
        market_chain.GRANT_REVOKE,
        market_services.with_carrier({"retailer": retailer}, carrier),
    )


def order_place_for(
    *,
    retailer: User,
    household: str,
    slot: datetime,
    side: str,
    energy_wh: int,
    price: int,
    carrier: str = ELECTRICITY,
) -> Transaction:
    """The retailer places a limit order for the household at ``household`` (its address): the
    order is the household's (its margin, contracts, feeder) and records who placed it
    (``market.order.place`` with ``for``). A household that has no grant to the retailer in
    the read models is ``not_a_customer``; then the validators' refusals (``no_grant``,
    ``exceeds_grant``, ``price_outside_grant``, the slot's, the household's qualification and
    free balance). Only a retailer account places them (``not_allowed``)."""
    _household(retailer, Role.RETAILER)
    if not selectors.customer_list(user=retailer).filter(household=household).exists():
        raise TransactionRejected("not_a_customer", MESSAGES["not_a_customer"])
    payload = {
        "slot": market_services.slot_ms(slot),
        "side": side,
        "energy_wh": market_services.whole(energy_wh, "bad_energy"),
        "price": market_services.whole(price, "bad_price"),
        "for": household,
    }
    return market_services.submit(
        retailer, market_chain.ORDER_PLACE, market_services.with_carrier(payload, carrier)
    )


def order_cancel_for(*, retailer: User, order_id: str) -> Transaction:
    """The retailer cancels the unmatched rest of an open order it placed for a customer
    (``market.order.cancel``: its placer may). Refusals: ``unknown_order``, then the
    validators' (``slot_past``, ``slot_closed``)."""
    _household(retailer, Role.RETAILER)
    placed = selectors.placed_orders(user=retailer).filter(order__status=OrderStatus.OPEN)
    if not market_services.is_id(order_id) or not placed.filter(order_id=order_id).exists():
        raise TransactionRejected("unknown_order", MESSAGES["unknown_order"])
    return market_services.submit(retailer, market_chain.ORDER_CANCEL, {"order": order_id})
