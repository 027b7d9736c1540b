"""Reads of the market's read models, each scoped by who asks.

The order books (price levels, their energy and order counts) and the open slots are public to
every signed-in account: a market shows its book. An account's own orders, offers, contracts and
money are its own; offers are seen by the buyer they name or, when open to anyone, by everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Substr
from django.utils import timezone
from django.utils.module_loading import import_string

from gridplatform.accounts.models import TRADING_ROLES, Identity, Role, User
from ledger import config, projection
from ledger.models import LedgerAccount, StateEntry
from market.chain.options import ELECTRICITY, Options
from market.models import (
    Contract,
    MarketAccount,
    Offer,
    OfferStatus,
    Order,
    OrderStatus,
    SettlementLine,
    Side,
    Tariff,
)


@dataclass(frozen=True)
class Money:
    balance: int
    locked: int

    @property
    def free(self) -> int:
        return self.balance - self.locked


@dataclass(frozen=True)
class Level:
    price: int
    energy_wh: int
    orders: int


@dataclass(frozen=True)
class Book:
    slot: datetime
    bids: list[Level]  # best (highest) first
    asks: list[Level]  # best (lowest) first
    carrier: str = ELECTRICITY


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    gate_closure: datetime
    best_bid: int | None
    best_ask: int | None


def address_of(user: User) -> str | None:
    if not user.is_authenticated:
        return None
    address: str | None = (
        Identity.objects.filter(user=user).values_list("address", flat=True).first()
    )
    return address


def options() -> Options:
    genesis = config.load_genesis()
    return Options.from_genesis(dict(genesis.options) if genesis else {})


class TradingStop(Protocol):
    """What would refuse a household's orders now, as far as the market reads it: the
    validators' refusal code (``market_suspended``, ``account_restricted``, ...), the reason the
    act or declaration gave, and when it ends (None: until lifted). The pages hand it on whole to
    the provider's own template."""

    @property
    def code(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def until(self) -> datetime | None: ...


class TradingStopProvider(Protocol):
    def __call__(self, *, address: str) -> TradingStop | None: ...


def trading_stop(*, address: str) -> TradingStop | None:
    """What would refuse an order or offer from the household at ``address`` now; None if
    nothing the provider knows of would.

    Supervision stops trading and sits above the market, so the market does not import it: the
    provider is the callable ``settings.MARKET_TRADING_STOP`` names, looked up at each call.
    """
    provider: TradingStopProvider = import_string(settings.MARKET_TRADING_STOP)
    return provider(address=address)


def money(*, user: User) -> Money | None:
    """``user``'s balance, locked margin and free balance (None: not on the ledger)."""
    address = address_of(user)
    if address is None:
        return None
    rows = LedgerAccount.objects.filter(address=address).values_list("balance", flat=True)
    balance = rows.first()
    if balance is None:
        return None
    locked = MarketAccount.objects.filter(address=address).values_list("locked", flat=True)
    return Money(balance=balance, locked=locked.first() or 0)


def order_list(*, user: User) -> QuerySet[Order]:
    """``user``'s orders, newest first."""
    return Order.objects.filter(owner=address_of(user) or "-")


def contract_list(*, user: User) -> QuerySet[Contract]:
    """Contracts ``user`` is a party to, newest first."""
    address = address_of(user) or "-"
    return Contract.objects.filter(Q(seller=address) | Q(buyer=address))


def offer_list(*, user: User) -> QuerySet[Offer]:
    """Offers ``user`` may see: its own (any status) and the open ones made to it or to anyone."""
    address = address_of(user) or "-"
    visible = Q(owner=address) | (Q(status=OfferStatus.OPEN) & (Q(buyer="") | Q(buyer=address)))
    return Offer.objects.filter(visible) if address != "-" else Offer.objects.none()


def offers_to_accept(*, user: User, now: datetime | None = None) -> QuerySet[Offer]:
    """Open offers ``user`` may accept (not its own), in slots still open for trading."""
    address = address_of(user) or "-"
    gate = options().gate_closure_ms
    earliest = (now or timezone.now()) + timedelta(milliseconds=gate)
    return (
        offer_list(user=user)
        .filter(status=OfferStatus.OPEN, slot__gt=earliest)
        .exclude(owner=address)
    )


def slot_list(*, now: datetime | None = None, carrier: str = ELECTRICITY) -> list[Slot]:
    """The slots open for trading now (gate not closed, within the horizon), earliest first,
    with the best bid and ask of each in ``carrier``'s book. Each slot is the carrier's own
    (``market.heat.slot_ms``: heat's may be hourly beside 15-minute electricity)."""
    o = options().carrier(carrier)
    now_ms = projection.ms_of_datetime(now or timezone.now())
    # Open while now < start - gate closure and start - now <= horizon (market.chain.contract).
    first = (now_ms + o.gate_closure_ms) // o.slot_ms * o.slot_ms + o.slot_ms
    starts = range(first, now_ms + o.horizon_ms + 1, o.slot_ms)
    if not starts:
        return []
    best = (
        Order.objects.filter(
            status=OrderStatus.OPEN,
            carrier=carrier,
            slot__gte=projection.datetime_of_ms(starts[0]),
            slot__lte=projection.datetime_of_ms(starts[-1]),
        )
        .values("slot", "side")
        .annotate(high=Max("price"), low=Min("price"))
    )
    bids = {row["slot"]: row["high"] for row in best if row["side"] == Side.BUY}
    asks = {row["slot"]: row["low"] for row in best if row["side"] == Side.SELL}
    slots = []
    for start_ms in starts:
        start = projection.datetime_of_ms(start_ms)
        slots.append(
            Slot(
                start=start,
                end=projection.datetime_of_ms(start_ms + o.slot_ms),
                gate_closure=projection.datetime_of_ms(start_ms - o.gate_closure_ms),
                best_bid=bids.get(start),
                best_ask=asks.get(start),
            )
        )
    return slots


def book(*, slot: datetime, carrier: str = ELECTRICITY) -> Book:
    """The order book of ``slot`` and ``carrier``: its open orders' price levels (no owners).
    Each carrier has its own book (``market.chain.book``): an electricity order never meets a
    heat order."""
    levels = (
        Order.objects.filter(status=OrderStatus.OPEN, slot=slot, carrier=carrier)
        .values("side", "price")
        .annotate(energy=Sum("remaining_wh"), orders=Count("id"))
    )
    bids = sorted(
        (Level(r["price"], r["energy"], r["orders"]) for r in levels if r["side"] == Side.BUY),
        key=lambda level: -level.price,
    )
    asks = sorted(
        (Level(r["price"], r["energy"], r["orders"]) for r in levels if r["side"] == Side.SELL),
        key=lambda level: level.price,
    )
    return Book(slot=slot, bids=bids, asks=asks, carrier=carrier)


# --- statements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """One settled contract from one party's side. Money in minor units, signed: + received,
    - paid. ``energy_amount``: the delivered energy at the contract price; ``network_fee``: the
    buyer's fee; ``penalty``: for undelivered energy, paid by the seller to the buyer."""

    slot: datetime
    slot_end: datetime
    contract: str
    carrier: str  # its energy is in Wh of this carrier's unit (market.chain.options.UNITS)
    role: str  # "seller" or "buyer"
    contract_tx: str  # the transaction that made the contract
    counterparty: str
    contracted_wh: int
    delivered_wh: int
    price: int
    energy_amount: int
    network_fee: int
    penalty: int

    @property
    def net(self) -> int:
        return self.energy_amount + self.network_fee + self.penalty


def statement(
    *,
    user: User,
    slot: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[StatementLine]:
    """``user``'s settled contracts (of ``slot``, of the slots from ``start`` to before ``end``,
    or every slot), newest slot first."""
    address = address_of(user) or "-"
    rows = SettlementLine.objects.filter(Q(seller=address) | Q(buyer=address)).select_related(
        "contract"
    )
    if slot is not None:
        rows = rows.filter(slot=slot)
    if start is not None:
        rows = rows.filter(slot__gte=start)
    if end is not None:
        rows = rows.filter(slot__lt=end)
    o = options()  # each carrier's slot length: heat's may be longer (market.heat.slot_ms)
    slot_length = {c: timedelta(milliseconds=o.carrier(c).slot_ms) for c in o.carriers}
    lines = []
    for row in rows.order_by("-slot", "contract_id"):
        selling = row.seller == address
        lines.append(
            StatementLine(
                slot=row.slot,
                slot_end=row.slot + slot_length.get(row.carrier, slot_length[ELECTRICITY]),
                contract=row.contract_id,
                carrier=row.carrier,
                role="seller" if selling else "buyer",
                contract_tx=row.contract.tx,
                counterparty=row.buyer if selling else row.seller,
                contracted_wh=row.energy_wh,
                delivered_wh=row.delivered_wh,
                price=row.contract.price,
                energy_amount=row.paid if selling else -row.paid,
                network_fee=0 if selling else -row.fee,
                penalty=-row.penalty if selling else row.penalty,
            )
        )
    return lines


@dataclass(frozen=True)
class HouseholdMoney:
    """A household on the operator console: its ledger balance and the margins locked of it."""

    user: User
    address: str
    registered: bool
    balance: int | None
    locked: int | None  # None: not on the ledger
    feeder: str = ""  # "" none assigned yet
    pending: bool = False  # its registration waits for a block
    heat_segment: str = ""  # its segment of the heating network; "" none

    @property
    def approved(self) -> bool:
        """On the ledger with a feeder (it may trade once it has credits), or approved and about
        to be (its registration waits for a block)."""
        return bool(self.registered and self.feeder) or self.pending

    @property
    def free(self) -> int | None:
        return None if self.balance is None or self.locked is None else self.balance - self.locked


HOUSEHOLDS_PER_PAGE = 50
HOUSEHOLD_SORTS = {
    "name": ("name", "id"),
    "-balance": ("-ledger_balance", "name", "id"),
    "balance": ("ledger_balance", "name", "id"),
    "-joined": ("-date_joined", "id"),
}
HOUSEHOLD_STATES = ("waiting", "trading", "defaults")


@dataclass(frozen=True)
class HouseholdPage:
    """One page of the operator console's households, as searched, filtered and sorted."""

    rows: list[HouseholdMoney]
    page: Page[User]
    total: int  # every household, whatever the search and filters
    waiting: int  # households waiting for approval, of all (not only this page)


def _households_with_money(user: User) -> QuerySet[User]:
    """The households and storage providers (with an identity) the grid operator and admins
    see, each with its ledger balance, locked margin and feeder from the read models; none for
    anyone else."""
    households = User.objects.filter(role__in=TRADING_ROLES, identity__isnull=False)
    if not user.is_authenticated or user.role not in (Role.GRID_OPERATOR, Role.ADMIN):
        households = households.none()
    address = OuterRef("identity__address")
    return households.select_related("identity").annotate(
        ledger_balance=Subquery(
            LedgerAccount.objects.filter(address=address).values("balance")[:1]
        ),
        market_locked=Subquery(MarketAccount.objects.filter(address=address).values("locked")[:1]),
        market_feeder=Subquery(MarketAccount.objects.filter(address=address).values("feeder")[:1]),
        market_heat_segment=Subquery(
            MarketAccount.objects.filter(address=address).values("heat_segment")[:1]
        ),
    )


def _household_money(household: Any, pending: set[str]) -> HouseholdMoney:
    registered = household.ledger_balance is not None
    return HouseholdMoney(
        user=household,
        address=household.identity.address,
        registered=registered,
        balance=household.ledger_balance,
        locked=(household.market_locked or 0) if registered else None,
        feeder=household.market_feeder or "",
        pending=household.identity.address in pending,
        heat_segment=household.market_heat_segment or "",
    )


def _approved(pending: set[str]) -> Q:
    """On the ledger with a feeder, or approved with its registration waiting for a block."""
    return Q(ledger_balance__isnull=False, market_feeder__gt="") | Q(identity__address__in=pending)


@dataclass(frozen=True)
class HouseholdCounts:
    total: int  # every household
    waiting: int  # of them, waiting for approval


def household_counts(*, user: User, pending: set[str] | None = None) -> HouseholdCounts:
    """How many households there are and how many wait for approval (for the grid operator
    and admins; 0 and 0 for anyone else); ``pending``: the registrations waiting for a block,
    if the caller has read them already."""
    households = _households_with_money(user)
    pending = _registrations_pending() if pending is None else pending
    waiting = households.exclude(_approved(pending)).count()
    return HouseholdCounts(total=households.count(), waiting=waiting)


def household_row(*, user: User, household_id: int) -> HouseholdMoney | None:
    """One household's row of the operator console (what a live update re-fetches); None if it
    is not one the asking user sees."""
    found = _households_with_money(user).filter(pk=household_id).first()
    return None if found is None else _household_money(found, _registrations_pending())


def household_page(
    *,
    user: User,
    search: str = "",
    feeder: str = "",
    state: str = "",
    kind: str = "",
    sort: str = "name",
    page: int | str | None = 1,
) -> HouseholdPage:
    """The households matching ``search`` (name, email, connection point, or the start of the
    address), on ``feeder``, in ``state`` ("waiting" for approval; "trading": on the ledger with
    a feeder; "defaults": with unsettled defaults on the ledger), of ``kind`` (prosumer,
    consumer, storage owner), sorted by ``sort`` (``HOUSEHOLD_SORTS``), ``HOUSEHOLDS_PER_PAGE``
    a page; the filtering, sorting and paging happen in the database, so a page costs the same
    for 30 households as for 10,000. For the grid operator (and admins) only; none for anyone
    else."""
    households = _households_with_money(user)
    pending = _registrations_pending()
    approved = _approved(pending)
    counts = household_counts(user=user, pending=pending)
    text = search.strip()
    if text:
        households = households.filter(
            Q(name__icontains=text)
            | Q(email__icontains=text)
            | Q(connection_point__icontains=text)
            | Q(identity__address__startswith=text.lower())
        )
    if feeder:
        households = households.filter(market_feeder=feeder)
    if state == "waiting":
        households = households.exclude(approved)
    elif state == "trading":
        households = households.filter(ledger_balance__isnull=False, market_feeder__gt="")
    elif state == "defaults":
        households = households.filter(identity__address__in=_defaulting())
    if kind:
        households = households.filter(household_kind=kind)
    households = households.order_by(*HOUSEHOLD_SORTS.get(sort, HOUSEHOLD_SORTS["name"]))
    shown = Paginator(households, HOUSEHOLDS_PER_PAGE).get_page(page)
    rows = [_household_money(h, pending) for h in shown]
    return HouseholdPage(rows=rows, page=shown, total=counts.total, waiting=counts.waiting)


def energy_traded(*, since: datetime, carrier: str = ELECTRICITY) -> int:
    """Wh of ``carrier`` of the contracts (not vetoed) made from ``since`` on: what the
    community traded with itself."""
    made = Contract.objects.filter(made_at__gte=since, vetoed=False, carrier=carrier)
    total = made.aggregate(wh=Sum("energy_wh"))
    return int(total["wh"] or 0)


def _defaulting() -> QuerySet[StateEntry]:
    """The addresses with unsettled defaults, from the site's replica of the ledger state
    (``market/defaults/<address>``, whose ``unsettled`` a settlement with a shortfall raises
    and a regulator's ``supervision.defaults.reset`` clears)."""
    prefix = "market/defaults/"
    rows = StateEntry.objects.filter(key__startswith=prefix, value__unsettled__gt=0)
    return rows.annotate(address=Substr("key", len(prefix) + 1)).values("address")


def _registrations_pending() -> set[str]:
    """The addresses whose ledger registration the site sent and no block brought yet."""
    from ledger.models import SubmittedTransaction

    rows = SubmittedTransaction.objects.filter(body__type="account.register").values_list(
        "body__payload__address", flat=True
    )
    return {str(address) for address in rows}


def tariff_list(*, carrier: str | None = None) -> QuerySet[Tariff]:
    """The supplier's tariffs, newest first (public: every household pays them); of one
    carrier, or of every carrier when ``carrier`` is None."""
    tariffs = Tariff.objects.all()
    return tariffs if carrier is None else tariffs.filter(carrier=carrier)


def tariff_in_force(*, at: datetime, carrier: str = ELECTRICITY) -> Tariff | None:
    """The tariff of ``carrier`` of the slot starting at ``at``: the last one of the carrier
    from then or before."""
    found: Tariff | None = (
        Tariff.objects.filter(carrier=carrier, from_slot__lte=at).order_by("-from_slot").first()
    )
    return found


def neighbour_labels(*, addresses: list[str]) -> dict[str, str]:
    """How a household's pages name its counterparties: the display name a counterparty chose
    to show (Settings), with its feeder; else "a neighbour on <its feeder>" (or "a neighbour"
    before it has one). Addresses are pseudonyms on the ledger; the pages do not show them, nor
    who is behind them unless it chose to say."""
    wanted = set(addresses)
    feeders = dict(
        MarketAccount.objects.filter(address__in=wanted).values_list("address", "feeder")
    )
    names = dict(
        Identity.objects.filter(address__in=wanted)
        .exclude(user__display_name="")
        .values_list("address", "user__display_name")
    )
    labels = {}
    for address in addresses:
        where = f"a neighbour on {feeders[address]}" if feeders.get(address) else "a neighbour"
        labels[address] = f"{names[address]} ({where})" if address in names else where
    return labels
