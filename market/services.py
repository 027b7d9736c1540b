"""The site's market actions: each signs one market transaction and sends it to the validators.

The contract logic (``market.chain.contract``) runs in the validators; the site only signs (with the
user's custodial key), rehearses the transaction on its replica of the committed state so that a
refusal comes back at once with the validators' code (``ledger.services.transaction_rehearse``),
and submits. What happens is known when the block commits: the read models then show it.
Raises ``ledger.services.TransactionRejected`` with a stable code (docs/market.md).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q

from gridplatform.accounts.models import TRADING_ROLES, Identity, Role, User
from ledger.crypto import Transaction, is_lower_hex
from ledger.models import SubmittedTransaction
from ledger.projection import ms_of_datetime
from ledger.services import TransactionRejected, transaction_sign_and_submit
from market.chain.options import ELECTRICITY
from market.errors import MESSAGES as MESSAGES  # also market.rules' and market.views'
from market.errors import NO_SEGMENT
from market.models import Contract, Offer, OfferStatus, Order, OrderStatus, SlotSettlement
from market.selectors import options as market_options
from market.selectors import trading_stop
from meters import selectors as meters_selectors

log = logging.getLogger(__name__)

# Refusals a supervisor's act or the grid operator's declaration causes: their message says why.
STOPPED = frozenset(
    {
        "market_suspended",
        "account_restricted",
        "feeder_suspended",
        "grid_high_load",
        "grid_unstable",
    }
)


def submit(user: User, type: str, payload: dict[str, Any]) -> Transaction:
    try:
        return transaction_sign_and_submit(user=user, type=type, payload=payload, rehearse=True)
    except TransactionRejected as error:
        raise worded(error, user, payload.get("carrier", ELECTRICITY)) from None


def worded(
    error: TransactionRejected, user: User | None = None, carrier: str = ELECTRICITY
) -> TransactionRejected:
    """A rehearsal's refusal in the market's words: a stop with the reason its act gave; a heat
    order's ``no_feeder`` as the missing segment of the heating network it is."""
    if error.code in STOPPED and user is not None:
        return TransactionRejected(error.code, _message(user, error.code))
    if error.code == "no_feeder" and carrier != ELECTRICITY:
        return TransactionRejected(error.code, NO_SEGMENT)
    return error


def _message(user: User, code: str) -> str:
    """The plain words for ``code``; for a stop, with the reason the act gave."""
    if code in STOPPED:
        stop = trading_stop(address=_address(user))
        if stop is not None and stop.code == code and stop.reason:
            until = f" (until {stop.until:%Y-%m-%d %H:%M} UTC)" if stop.until else ""
            return f"{MESSAGES[code]} Reason: {stop.reason}{until}"
    return MESSAGES[code]


def _address(user: User) -> str:
    identity = Identity.objects.filter(user=user).first()
    if identity is None:
        raise TransactionRejected("no_identity")
    address: str = identity.address
    return address


def whole(value: object, code: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransactionRejected(code, MESSAGES[code])
    return value


def slot_ms(slot: object) -> int:
    if not isinstance(slot, datetime) or slot.tzinfo is None:
        raise TransactionRejected("bad_slot", MESSAGES["bad_slot"])
    return ms_of_datetime(slot)


def with_carrier(payload: dict[str, Any], carrier: object) -> dict[str, Any]:
    """``payload`` for ``carrier``: one the market trades (``bad_carrier`` at once otherwise,
    nothing signed), named only when it is not electricity, so that an electricity order is
    the transaction it always was."""
    if not isinstance(carrier, str) or carrier not in market_options().carriers:
        raise TransactionRejected("bad_carrier", MESSAGES["bad_carrier"])
    return payload if carrier == ELECTRICITY else payload | {"carrier": carrier}


def order_place(
    *,
    user: User,
    slot: datetime,
    side: str,
    energy_wh: int,
    price: int,
    carrier: str = ELECTRICITY,
) -> Transaction:
    """A limit order for ``slot`` (its start): ``side`` buy or sell, energy in Wh, price in minor
    units per kWh, of ``carrier`` (kWh thermal for heat). Locks its margin when its block
    commits."""
    if user.role not in TRADING_ROLES:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])
    payload = {
        "slot": slot_ms(slot),
        "side": side,
        "energy_wh": whole(energy_wh, "bad_energy"),
        "price": whole(price, "bad_price"),
    }
    return submit(user, "market.order.place", with_carrier(payload, carrier))


def is_id(value: object) -> bool:
    return isinstance(value, str) and is_lower_hex(value, 64)


def order_cancel(*, user: User, order_id: str) -> Transaction:
    """Cancel the unmatched remainder of one of ``user``'s open orders."""
    owner = _address(user)
    mine = Order.objects.filter(owner=owner, status=OrderStatus.OPEN)
    if not is_id(order_id) or not mine.filter(id=order_id).exists():
        raise TransactionRejected("unknown_order", MESSAGES["unknown_order"])
    return submit(user, "market.order.cancel", {"order": order_id})


def offer_post(
    *,
    user: User,
    slot: datetime,
    energy_wh: int,
    price: int,
    buyer: str = "",
    carrier: str = ELECTRICITY,
) -> Transaction:
    """A bilateral offer to sell ``carrier``: to the account at ``buyer``, or to anyone
    (``""``)."""
    if user.role not in TRADING_ROLES:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])
    if not isinstance(buyer, str):  # never "anyone" by mistake: that is the empty string
        raise TransactionRejected("bad_address", MESSAGES["bad_address"])
    payload = {
        "slot": slot_ms(slot),
        "energy_wh": whole(energy_wh, "bad_energy"),
        "price": whole(price, "bad_price"),
        "buyer": buyer,
    }
    return submit(user, "market.offer.post", with_carrier(payload, carrier))


def offer_accept(*, user: User, offer_id: str, energy_wh: int) -> Transaction:
    """Take ``energy_wh`` of an open offer made to anyone or to ``user``, at its price."""
    if user.role not in TRADING_ROLES:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])
    # Only offers made to anyone or to this user exist for it (one made to another buyer is
    # "unknown" here, as in the API, rather than "not offered to you").
    address = _address(user)
    visible = Offer.objects.filter(Q(buyer="") | Q(buyer=address) | Q(owner=address))
    if not is_id(offer_id) or not visible.filter(id=offer_id, status=OfferStatus.OPEN).exists():
        raise TransactionRejected("unknown_offer", MESSAGES["unknown_offer"])
    payload = {"offer": offer_id, "energy_wh": whole(energy_wh, "bad_energy")}
    return submit(user, "market.offer.accept", payload)


def offer_withdraw(*, user: User, offer_id: str) -> Transaction:
    """Withdraw the rest of one of ``user``'s open offers."""
    owner = _address(user)
    mine = Offer.objects.filter(owner=owner, status=OfferStatus.OPEN)
    if not is_id(offer_id) or not mine.filter(id=offer_id).exists():
        raise TransactionRejected("unknown_offer", MESSAGES["unknown_offer"])
    return submit(user, "market.offer.withdraw", {"offer": offer_id})


# --- the grid operator's market work ----------------------------------------------------------


def tariff_publish(
    *,
    operator: User,
    from_slot: datetime,
    bands: list[dict[str, int]],
    carrier: str = ELECTRICITY,
) -> Transaction:
    """The grid operator, supplier of last resort, publishes its tariff of ``carrier`` from
    ``from_slot`` on (``market.tariff.publish``; ``market.chain.tariff``): per time-of-use band
    the retail and feed-in prices and the network fee, minor units per kWh of the carrier's
    unit. Rehearsed, so a refusal (``bad_carrier``, ``tariff_in_past``, ``bad_bands``,
    ``bad_price``, ``slot_misaligned``) comes back at once. Electricity's payload carries no
    ``carrier``, as before carriers."""
    if operator.role != Role.GRID_OPERATOR:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])
    payload: dict[str, Any] = {"from_slot": ms_of_datetime(from_slot), "bands": bands}
    if carrier != ELECTRICITY:
        payload["carrier"] = carrier
    return submit(operator, "market.tariff.publish", payload)


def feeder_assign(
    *, operator: User, household: User, feeder: str, carrier: str = ELECTRICITY
) -> Transaction:
    """The grid operator records which feeder a household's connection is on (a household
    without one cannot trade), or with ``carrier`` heat which segment of the heating network
    (without one it cannot trade heat): ``grid.feeder.assign``, signed with the operator's key.
    Refusals: ``not_allowed``, ``not_household``, ``bad_carrier``, ``bad_feeder``,
    ``carrier_mismatch`` (the name is published for the other carrier's network)."""
    if operator.role != Role.GRID_OPERATOR:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])
    if household.role not in TRADING_ROLES:
        raise TransactionRejected("not_household", MESSAGES["not_household"])
    payload = {"address": _address(household), "feeder": feeder}
    return submit(operator, "grid.feeder.assign", with_carrier(payload, carrier))


def slots_due_for_clearing(*, now: datetime) -> list[datetime]:
    """Slots whose gate has closed while orders or offers of theirs are still open."""
    gate = timedelta(milliseconds=market_options().gate_closure_ms)
    open_orders = Order.objects.filter(status=OrderStatus.OPEN, slot__lte=now + gate)
    open_offers = Offer.objects.filter(status=OfferStatus.OPEN, slot__lte=now + gate)
    slots = set(open_orders.values_list("slot", flat=True))
    slots.update(open_offers.values_list("slot", flat=True))
    return sorted(slots)


def for_each_slot(operator: User, type_: str, slots: list[datetime]) -> list[Transaction]:
    """Send ``type_`` for each slot, signed by the grid operator, unless one is pending; a
    slot the rehearsal refuses (e.g. done in a block the site has not seen yet) waits."""
    sent = []
    for slot in slots:
        start_ms = ms_of_datetime(slot)
        pending = SubmittedTransaction.objects.filter(
            body__type=type_, body__payload__slot=start_ms
        )
        if pending.exists():
            continue
        try:
            sent.append(submit(operator, type_, {"slot": start_ms}))
        except TransactionRejected as error:
            log.warning("%s of slot %s not sent: %s", type_, slot, error.code)
    return sent


def slots_clear(*, operator: User, now: datetime) -> list[Transaction]:
    """End trading for every slot past its gate that still has open orders or offers: runs the
    call auction where the market has one, and releases what is left (``market.slot.clear``,
    signed by the grid operator). A slot whose clearing is already pending is skipped."""
    return for_each_slot(operator, "market.slot.clear", slots_due_for_clearing(now=now))


def slots_due_for_settlement(*, now: datetime) -> list[datetime]:
    """Slots ended at least the settlement delay ago and not settled yet, with contracts or with
    recorded readings (which settle with the supplier of last resort). A carrier's slot longer
    than the market's (``market.heat.slot_ms``) settles with its last market slot: that one is
    named for its contracts."""
    o = market_options()
    due_by = now - timedelta(milliseconds=o.slot_ms + o.settlement_delay_ms)
    slots: set[datetime] = set()
    for carrier in o.carriers:
        last = timedelta(milliseconds=o.carrier(carrier).slot_ms - o.slot_ms)
        made = Contract.objects.filter(carrier=carrier, slot__lte=due_by - last)
        slots.update(start + last for start in made.values_list("slot", flat=True))
    slots -= set(SlotSettlement.objects.filter(slot__in=slots).values_list("slot", flat=True))
    slots |= set(meters_selectors.slots_with_readings(ended_by=due_by))
    return sorted(slots)


def slots_settle(*, operator: User, now: datetime) -> list[Transaction]:
    """Settle every slot that is due (``market.slot.settle``, signed by the grid operator; any
    account may send it). A slot whose settlement is pending is skipped; one the validators
    would refuse now (e.g. ``slot_not_cleared`` while its clearing is pending) waits."""
    return for_each_slot(operator, "market.slot.settle", slots_due_for_settlement(now=now))
