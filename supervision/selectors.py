"""Reads of supervision's read models, each scoped by who asks.

Regulators and administrators see the review queue; regulators, the grid operator and
administrators see the whole audit log, the market's statistics, the feeders' loading and the
alerts. A household sees the acts that touched it (its contracts, its account) and those that
concern everyone trading where it trades (the whole market, the grid, its feeder), and its own
notifications. Topology, suspensions and the grid's declared state are public to every
signed-in account: they are why trading may stop. A selector asked by a role it does not serve
raises ``PermissionDenied``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.utils import timezone

from gridplatform.accounts.models import Identity, Role, User
from ledger.models import ProjectionCursor, TransactionRecord
from market.chain.options import BPS, ELECTRICITY, UNITS
from market.models import Contract, MarketAccount
from market.selectors import address_of
from market.selectors import options as market_options
from supervision.chain import grid
from supervision.models import (
    AlertAcknowledgement,
    Feeder,
    FeederLoad,
    GridDeclaration,
    Notification,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)
from supervision.projection import (
    ACCOUNT_ACTS,
    CONTRACT_ACTS,
    review_limits,
)
from supervision.review import median

SUSPEND = "supervision.trading.suspend"
RESUME = "supervision.trading.resume"
DECLARE = "grid.state.declare"

WATCHERS = (Role.REGULATOR, Role.GRID_OPERATOR, Role.ADMIN)
# The desks (``Desk``'s values), and who works at each (acknowledges its alerts): an
# administrator opens both consoles.
OPERATOR_DESK = "operator"
REGULATOR_DESK = "regulator"
DESK_ROLES: dict[str, tuple[object, ...]] = {
    OPERATOR_DESK: (Role.GRID_OPERATOR, Role.ADMIN),
    REGULATOR_DESK: (Role.REGULATOR, Role.ADMIN),
}
# The desk a user acknowledges for when it does not say (the API): its own console's.
HOME_DESK = {Role.GRID_OPERATOR: OPERATOR_DESK, Role.REGULATOR: REGULATOR_DESK}


@dataclass(frozen=True)
class SellerShare:
    seller: str
    name: str  # the seller's name on the site, "" if it has none here
    energy_wh: int
    share_bps: int  # of the slot's volume


@dataclass(frozen=True)
class SlotStatistics:
    """One slot's contracts of one carrier: each carrier's volume is in Wh of its own unit, so
    a slot with electricity and heat contracts has a row for each, never one total."""

    slot: datetime
    contracts: int
    volume_wh: int
    median_price: int  # minor units per kWh, over the contracts (not weighted)
    shares: list[SellerShare]  # largest first
    alert: bool  # a seller holds more than SUPERVISION_REVIEW["seller_share_bps"]
    carrier: str = ELECTRICITY


@dataclass(frozen=True)
class FeederLoading:
    feeder: str
    slot: datetime
    export_wh: int
    import_wh: int
    export_capacity_wh: int
    import_capacity_wh: int
    export_pct: int  # rounded down; 100 when a feeder of no capacity carries anything
    import_pct: int
    alert: bool  # either way at SUPERVISION_REVIEW["feeder_load_bps"] or more
    carrier: str = ELECTRICITY  # a heat segment's loads and capacities are in Wh thermal


@dataclass(frozen=True)
class Alert:
    """Something that needs attention now, one per kind and subject (see :func:`alerts`).

    ``key`` names the subject and stays the same while the alert lasts; ``fingerprint`` says
    how it stands (for the slot alerts ``"<slots>:<level>"``, for the others the occurrence:
    the suspension's transaction, the state declared and since when): it changes when the
    alert changes. An acknowledgement covers it as it stood (:func:`alert_inbox`).
    """

    kind: str  # suspension, grid_state, feeder_load, seller_share
    key: str  # suspension:<scope>, grid_state:<scope>, feeder_load:<feeder>:<direction>, ...
    text: str
    slot: datetime | None  # the earliest upcoming slot it concerns
    feeder: str
    fingerprint: str
    slots: int = 0  # how many upcoming slots it concerns; 0: it is not about slots
    last_slot: datetime | None = None  # the latest of them
    level: int = 0  # the peak load or share in 10 % steps (9: 90-99 %); a state's: 1 or 2


@dataclass(frozen=True)
class InboxAlert:
    alert: Alert
    acknowledgement: AlertAcknowledgement | None  # the one that covers it; None: open


@dataclass(frozen=True)
class AlertInbox:
    """A desk's alerts in the order of :func:`alerts`: those open (never acknowledged there, or
    re-opened) and those acknowledged."""

    desk: str
    items: list[InboxAlert]

    @property
    def open(self) -> list[InboxAlert]:
        return [item for item in self.items if item.acknowledgement is None]

    @property
    def acknowledged(self) -> list[InboxAlert]:
        return [item for item in self.items if item.acknowledgement is not None]


@dataclass(frozen=True)
class TradingStop:
    code: str  # the validators' refusal code: market_suspended, account_restricted, ...
    reason: str
    scope: str  # market, account, grid or feeder:<name>
    until: datetime | None


def _require(user: User, *roles: object) -> None:
    if not user.is_authenticated or user.role not in roles:
        raise PermissionDenied("Your role does not give access to this.")


def _feeder_of(address: str) -> str:
    feeder: str | None = (
        MarketAccount.objects.filter(address=address).values_list("feeder", flat=True).first()
    )
    return feeder or ""


def networks_of(address: str) -> list[str]:
    """The names the household at ``address`` is on: its feeder and, where it has one, its
    segment of the heating network; a stop of either (``feeder:<name>``) touches it."""
    row = MarketAccount.objects.filter(address=address).values_list("feeder", "heat_segment")
    return [name for name in (row.first() or ()) if name]


def feeder_of(*, user: User) -> str:
    """The feeder the grid operator assigned to ``user`` on the ledger (``grid.feeder.assign``),
    "" when none is yet (``settings.METERS_FEEDER_OF``)."""
    address = address_of(user)
    return _feeder_of(address) if address else ""


# --- review and the audit log --------------------------------------------------------------------


def review_queue(*, user: User, status: str | None = "pending") -> QuerySet[ReviewItem]:
    """Contracts that tripped a review rule, oldest first; ``status`` None: every one."""
    _require(user, Role.REGULATOR, Role.ADMIN)
    items = ReviewItem.objects.select_related("contract")
    return items.filter(status=status) if status else items.all()


def acts(*, user: User) -> QuerySet[SupervisoryAct]:
    """The audit log, newest first: all of it for those who watch the market, what touched them
    for households."""
    if user.is_authenticated and user.role == Role.HOUSEHOLD:
        return acts_touching(user=user)
    _require(user, *WATCHERS)
    return SupervisoryAct.objects.all()


# The grid operator's acts that the ledger records as plain transactions (no supervision event):
# the regulators' audit log shows them beside the supervisory acts (which include its feeder
# publications and grid state declarations, ``SupervisoryAct``). Every type the registry lets
# the grid operator send is either here, a supervisory act, or in ``OPERATOR_RELAYS``; a test
# (tests/supervision/test_operator_acts.py) holds the registry to that, so a new type cannot
# be left out of the log unnoticed.
OPERATOR_LEDGER_ACTS = (
    "account.register",  # a household put on the ledger
    "grid.feeder.assign",
    "credit.issue",  # a top-up
    "meter.register",
    "market.tariff.publish",
    "market.requirement.post",  # a flexibility requirement
    "market.requirement.accept",  # an answer to one, accepted: a flexibility contract
    "market.storage.register",
)
# What the grid operator sends but does not decide: a meter's own signed readings, relayed as
# they arrive (thousands an hour, and personal data: ``meters.selectors.PRIVATE_TX_TYPES``).
# They are in the explorer and on the meters' pages, not in the audit log.
OPERATOR_RELAYS = ("meter.readings",)


def operator_acts(
    *, user: User, limit: int, after: int | None = None, through: int | None = None
) -> list[SupervisoryAct]:
    """The newest ``limit`` of the grid operator's acts recorded as plain transactions
    (:data:`OPERATOR_LEDGER_ACTS`) that committed, newest first, as rows of the audit log
    (unsaved ``SupervisoryAct``s: they come from the committed transactions,
    ``ledger.models.TransactionRecord``); only those in blocks above ``after`` and up to
    ``through`` when given. For those who watch the market."""
    _require(user, *WATCHERS)
    records = TransactionRecord.objects.filter(type__in=OPERATOR_LEDGER_ACTS, result="ok")
    if after is not None:
        records = records.filter(block_id__gt=after)
    if through is not None:
        records = records.filter(block_id__lte=through)
    rows = []
    for record in records.select_related("block").order_by("-block_id", "-position")[:limit]:
        payload = record.body.get("payload", {})
        named = payload.get("address") or payload.get("to") or payload.get("owner")
        rows.append(
            SupervisoryAct(
                tx=record.tx_id,
                type=record.type,
                actor=record.sender,
                actor_role=Role.GRID_OPERATOR,
                payload=payload,
                address=str(named or ""),
                height=record.block_id,
                at=record.block.timestamp,
            )
        )
    return rows


def projected_height() -> int:
    """The height of the last block the site projected (-1: none yet). Every read model is
    written with it in one transaction, so what the read models hold is exactly the blocks up to
    it: a list read up to it and then from it on misses nothing and repeats nothing."""
    height = ProjectionCursor.objects.filter(pk=1).values_list("height", flat=True).first()
    return -1 if height is None else int(height)


def audit_log(
    *, user: User, limit: int, after: int | None = None
) -> tuple[list[SupervisoryAct], int]:
    """The audit log as the regulator console shows it: the supervisory acts and the grid
    operator's acts (:func:`operator_acts`) merged, newest first (by block, and within a block
    by the order they executed in), at most ``limit``; and the height they were read through.
    With ``after`` (a height an earlier read went through), only the acts of the blocks since:
    what a page that shows the log up to ``after`` lacks."""
    through = projected_height()
    supervisory = acts(user=user).filter(height__lte=through)
    if after is not None:
        supervisory = supervisory.filter(height__gt=after)
    found = [
        *supervisory.order_by("-height", "tx")[:limit],
        *operator_acts(user=user, limit=limit, after=after, through=through),
    ]
    order = positions(tx_ids=[act.tx for act in found])
    found.sort(key=lambda act: (act.height, order.get(act.tx, 0)), reverse=True)
    return found[:limit], through


# The act forms' pickers: the first this many on the page, and this many per search as the
# regulator types (``supervision.views.account_picks``): the picker costs the same for 30
# households as for 10,000.
PICKS_SHOWN = 50
# What a picker's or a list's search may be: printable text, at most this long.
SEARCH_MAX = 100


def _households_named(text: str) -> QuerySet[Identity]:
    """The identities of the households whose name or email contains ``text``, or whose address
    starts with it."""
    return Identity.objects.filter(user__role=Role.HOUSEHOLD).filter(
        Q(user__name__icontains=text)
        | Q(user__email__icontains=text)
        | Q(address__startswith=text.lower())
    )


def household_picks(*, user: User, search: str = "") -> list[tuple[str, str]]:
    """(address, name) of the first ``PICKS_SHOWN`` households with an identity, by name,
    whose name or email contains ``search`` or whose address starts with it: the regulator's
    picker."""
    _require(user, Role.REGULATOR)
    text = search.strip()
    found = _households_named(text) if text else Identity.objects.filter(user__role=Role.HOUSEHOLD)
    rows = found.order_by("user__name", "address").values_list("address", "user__name")
    return [(str(address), str(name)) for address, name in rows[:PICKS_SHOWN]]


def _undelivered(now: datetime | None = None) -> QuerySet[Contract]:
    """The contracts whose delivery has not started, soonest first: those an act may still
    change (a contract whose slot has started stands)."""
    return Contract.objects.filter(slot__gt=now or timezone.now()).order_by("slot", "index")


def _contracts_matching(contracts: QuerySet[Contract], text: str) -> QuerySet[Contract]:
    """Those of ``contracts`` whose id starts with ``text``, or with a party whose name or email
    contains it or whose address starts with it."""
    parties = _households_named(text).values("address")
    return contracts.filter(
        Q(id__startswith=text)
        | Q(seller__startswith=text.lower())
        | Q(buyer__startswith=text.lower())
        | Q(seller__in=parties)
        | Q(buyer__in=parties)
    )


def contract_picks(*, user: User, search: str = "") -> list[Contract]:
    """The first ``PICKS_SHOWN`` contracts whose delivery has not started, not vetoed, soonest
    first, matching ``search`` (its id's start, a party's name, email or address's start): the
    regulator's picker for a veto or a curtailment."""
    _require(user, Role.REGULATOR)
    contracts = _undelivered().filter(vetoed=False)
    text = search.strip()
    if text:
        contracts = _contracts_matching(contracts, text)
    return list(contracts[:PICKS_SHOWN])


CONTRACTS_PER_PAGE = 25


def contract_page(*, user: User, search: str = "", page: int | str | None = 1) -> Page[Contract]:
    """The contracts of the open and upcoming slots (delivery not started, vetoed ones
    included), nearest slot first, matching ``search`` like :func:`contract_picks`,
    ``CONTRACTS_PER_PAGE`` a page: searched and paged in the database, so a page costs the same
    however many contracts the community makes. For regulators and admins."""
    _require(user, Role.REGULATOR, Role.ADMIN)
    contracts = _undelivered()
    text = search.strip()
    if text:
        contracts = _contracts_matching(contracts, text)
    return Paginator(contracts, CONTRACTS_PER_PAGE).get_page(page)


def actionable(contract: Contract, *, now: datetime | None = None) -> bool:
    """Whether a regulator may still veto or curtail ``contract``: not vetoed, its delivery not
    started (the validators decide; this only spares a page a form it cannot use)."""
    return not contract.vetoed and contract.slot > (now or timezone.now())


def positions(*, tx_ids: list[str]) -> dict[str, int]:
    """Each committed transaction's position in its block."""
    rows = TransactionRecord.objects.filter(tx_id__in=tx_ids).values_list("tx_id", "position")
    return {tx_id: int(position) for tx_id, position in rows}


def acts_naming(*, address: str, contracts: list[str]) -> QuerySet[SupervisoryAct]:
    """The supervisory acts on the account at ``address`` or on any of ``contracts``, newest
    first (for the consoles' page of one household)."""
    return SupervisoryAct.objects.filter(Q(address=address) | Q(contract__in=contracts))


def acts_touching(*, user: User) -> QuerySet[SupervisoryAct]:
    """The acts a household is shown, newest first: on its contracts or its account (those whose
    ``affected`` names it), and the suspensions, resumptions and declarations of the whole
    market or grid and of its feeder and heat segment, with their publications.

    ``affected`` is derived from the contract or the address an act names, so it is matched
    through those columns: plain SQL on every database, no JSON lookup.
    """
    _require(user, Role.HOUSEHOLD)
    address = address_of(user)
    if address is None:
        return SupervisoryAct.objects.none()
    theirs = Contract.objects.filter(Q(seller=address) | Q(buyer=address)).values("id")
    touching = (
        Q(type__in=CONTRACT_ACTS, contract__in=theirs)
        | Q(type__in=ACCOUNT_ACTS, address=address)
        | Q(type__in=(SUSPEND, RESUME), scope="market")
        | Q(type=DECLARE, scope="grid")
    )
    for name in networks_of(address):
        touching |= Q(scope=f"feeder:{name}")
    return SupervisoryAct.objects.filter(touching)


def notifications(*, user: User) -> QuerySet[Notification]:
    """A household's notifications, newest first."""
    _require(user, Role.HOUSEHOLD)
    return Notification.objects.filter(address=address_of(user) or "-")


def unread_count(*, user: User) -> int:
    """How many of a household's notifications it has not read."""
    count: int = notifications(user=user).filter(read=False).count()
    return count


# --- statistics, loading, alerts -----------------------------------------------------------------


def _names(addresses: Iterable[str]) -> dict[str, str]:
    rows = Identity.objects.filter(address__in=set(addresses)).values_list("address", "user__name")
    return dict(rows)


def _statistics(
    rows: Iterable[tuple[datetime, str, str, int, int]], threshold_bps: int
) -> list[SlotStatistics]:
    """Per slot (newest first) and carrier (electricity first) from (slot, carrier, seller,
    energy_wh, price) of standing contracts."""
    by_slot: dict[tuple[datetime, str], list[tuple[str, int, int]]] = defaultdict(list)
    for slot, carrier, seller, energy_wh, price in rows:
        by_slot[slot, carrier].append((seller, energy_wh, price))
    names = _names(seller for made in by_slot.values() for seller, _, _ in made)
    result = []
    order = sorted(by_slot, key=lambda key: (-key[0].timestamp(), key[1] != ELECTRICITY, key[1]))
    for slot, carrier in order:
        made = by_slot[slot, carrier]
        volume = sum(energy for _, energy, _ in made)
        sold: dict[str, int] = defaultdict(int)
        for seller, energy, _ in made:
            sold[seller] += energy
        shares = [
            SellerShare(
                seller=seller,
                name=names.get(seller, ""),
                energy_wh=energy,
                share_bps=energy * BPS // volume if volume else 0,
            )
            for seller, energy in sorted(sold.items(), key=lambda item: (-item[1], item[0]))
        ]
        result.append(
            SlotStatistics(
                slot=slot,
                contracts=len(made),
                volume_wh=volume,
                median_price=median([price for _, _, price in made]),
                shares=shares,
                alert=any(share.share_bps > threshold_bps for share in shares),
                carrier=carrier,
            )
        )
    return result


def slot_statistics(*, user: User, limit: int = 24) -> list[SlotStatistics]:
    """The latest ``limit`` slots with contracts (vetoed ones left out), newest first."""
    _require(user, *WATCHERS)
    standing = Contract.objects.filter(vetoed=False)
    slots = list(standing.order_by("-slot").values_list("slot", flat=True).distinct()[:limit])
    rows = standing.filter(slot__in=slots).values_list(
        "slot", "carrier", "seller", "energy_wh", "price"
    )
    return _statistics(rows, review_limits()["seller_share_bps"])


def _pct(load_wh: int, capacity_wh: int) -> int:
    if capacity_wh:
        return load_wh * 100 // capacity_wh
    return 100 if load_wh else 0


def _loaded(load_wh: int, capacity_wh: int, threshold_bps: int) -> bool:
    return load_wh > 0 and load_wh * BPS >= threshold_bps * capacity_wh


def _loading(feeder: Feeder, slot: datetime, load: FeederLoad | None) -> FeederLoading:
    slot_ms = market_options().carrier(feeder.carrier).slot_ms  # heat's slots may be longer
    export_cap = grid.capacity_wh(feeder.export_limit_w, slot_ms)
    import_cap = grid.capacity_wh(feeder.import_limit_w, slot_ms)
    export_wh = load.export_wh if load else 0
    import_wh = load.import_wh if load else 0
    threshold = review_limits()["feeder_load_bps"]
    return FeederLoading(
        carrier=feeder.carrier,
        feeder=feeder.name,
        slot=slot,
        export_wh=export_wh,
        import_wh=import_wh,
        export_capacity_wh=export_cap,
        import_capacity_wh=import_cap,
        export_pct=_pct(export_wh, export_cap),
        import_pct=_pct(import_wh, import_cap),
        alert=_loaded(export_wh, export_cap, threshold)
        or _loaded(import_wh, import_cap, threshold),
    )


def feeder_loading(*, user: User, limit_slots: int = 12) -> list[FeederLoading]:
    """Each published feeder in each of the latest ``limit_slots`` slots that load any of them
    (newest slot first, then by feeder), with its capacity for a slot."""
    _require(user, *WATCHERS)
    feeders = list(Feeder.objects.all())
    names = [feeder.name for feeder in feeders]
    loads = FeederLoad.objects.filter(feeder__in=names)
    slots = list(loads.order_by("-slot").values_list("slot", flat=True).distinct()[:limit_slots])
    found = {(row.feeder, row.slot): row for row in loads.filter(slot__in=slots)}
    return [
        _loading(feeder, slot, found.get((feeder.name, slot)))
        for slot in slots
        for feeder in feeders
    ]


def _state_words(state: str) -> str:
    return state.replace("_", " ")


def _suspension_alerts(now: datetime) -> list[Alert]:
    found = []
    for suspension in suspensions_in_force(now=now):
        market = suspension.scope == "market"
        where = "the whole market" if market else suspension.scope
        found.append(
            Alert(
                kind="suspension",
                key=f"suspension:{suspension.scope}",
                text=f"Trading is suspended on {where}: {suspension.reason}",
                slot=None,
                feeder="" if market else suspension.scope.removeprefix("feeder:"),
                fingerprint=suspension.tx,
            )
        )
    return found


STATE_LEVELS = {"high_load": 1, "unstable": 2}


def _declaration_alerts() -> list[Alert]:
    found = []
    declared = grid_declaration()
    if declared is not None:
        found.append(
            Alert(
                kind="grid_state",
                key="grid_state:grid",
                text=f"The grid is declared {_state_words(declared.state)}: {declared.reason}",
                slot=None,
                feeder="",
                fingerprint=f"{declared.state}:{declared.tx}",
                level=STATE_LEVELS.get(declared.state, 0),
            )
        )
    for feeder in Feeder.objects.exclude(state="normal"):
        since = feeder.state_since.isoformat() if feeder.state_since else ""
        found.append(
            Alert(
                kind="grid_state",
                key=f"grid_state:feeder:{feeder.name}",
                text=(
                    f"Feeder {feeder.name} is declared {_state_words(feeder.state)}: "
                    f"{feeder.state_reason}"
                ),
                slot=None,
                feeder=feeder.name,
                fingerprint=f"{feeder.state}:{since}",
                level=STATE_LEVELS.get(feeder.state, 0),
            )
        )
    return found


def _bps_text(bps: int) -> str:
    """Basis points as a percentage's number, exactly: 8000 -> "80", 4512 -> "45.12"."""
    whole, rest = divmod(bps, 100)
    return f"{whole}" if not rest else f"{whole}.{rest:02d}"


@dataclass(frozen=True)
class _Hot:
    """One slot of a slot alert: how high it went there, and the figures to say so."""

    slot: datetime
    pct: int
    amount_wh: int
    of_wh: int


def _grouped(
    *,
    kind: str,
    key: str,
    feeder: str,
    hot: list[_Hot],
    one: str,
    many: str,
) -> Alert:
    """One alert for a subject over the upcoming slots ``hot`` (earliest first): ``one`` is its
    text for a single slot, ``many`` for more (both formatted with ``slots`` and the peak's
    ``pct``, ``amount`` and ``of``); the peak is the highest, the earliest of equals."""
    peak = max(hot, key=lambda row: row.pct)  # max keeps the first of equals: the earliest
    words = {
        "slots": len(hot),
        "pct": peak.pct,
        "amount": f"{peak.amount_wh:,}",
        "of": f"{peak.of_wh:,}",
    }
    level = peak.pct // 10
    return Alert(
        kind=kind,
        key=key,
        text=(one if len(hot) == 1 else many).format(**words),
        slot=hot[0].slot,
        feeder=feeder,
        fingerprint=f"{len(hot)}:{level}",
        slots=len(hot),
        last_slot=hot[-1].slot,
        level=level,
    )


def _load_alerts(not_ended: datetime) -> list[Alert]:
    """One alert per feeder and direction loaded to the review threshold in any upcoming
    slot."""
    threshold = review_limits()["feeder_load_bps"]
    feeders = {feeder.name: feeder for feeder in Feeder.objects.all()}
    loads = FeederLoad.objects.filter(feeder__in=list(feeders), slot__gt=not_ended)
    hot: dict[tuple[str, str], list[_Hot]] = defaultdict(list)
    for load in loads.order_by("slot", "feeder"):
        loading = _loading(feeders[load.feeder], load.slot, load)
        for direction, pct, wh, capacity in (
            ("export", loading.export_pct, loading.export_wh, loading.export_capacity_wh),
            ("import", loading.import_pct, loading.import_wh, loading.import_capacity_wh),
        ):
            if _loaded(wh, capacity, threshold):
                hot[(load.feeder, direction)].append(_Hot(load.slot, pct, wh, capacity))
    at_least = _bps_text(threshold)
    found = [
        _grouped(
            kind="feeder_load",
            key=f"feeder_load:{feeder}:{direction}",
            feeder=feeder,
            hot=rows,
            one=f"{network_part(carrier)} {feeder}: {direction} at {{pct}} % of its "
            f"capacity ({{amount}} of {{of}} {_wh(carrier)})",
            many=f"{network_part(carrier)} {feeder}: {direction} at {at_least} % of its "
            f"capacity or more in {{slots}} upcoming slots, at most {{pct}} % ({{amount}} of "
            f"{{of}} {_wh(carrier)})",
        )
        for (feeder, direction), rows in hot.items()
        for carrier in [feeders[feeder].carrier]
    ]
    return sorted(found, key=lambda alert: (alert.slot, alert.key))


def network_part(carrier: str) -> str:
    """What a published name is, in words: "Feeder", or "Heat segment" (a segment of the
    carrier's network)."""
    return "Feeder" if carrier == ELECTRICITY else f"{carrier.capitalize()} segment"


def _of(carrier: str) -> str:
    """Whose volume an alert is about: "" for electricity, "heat " for heat."""
    return "" if carrier == ELECTRICITY else f"{carrier} "


def _wh(carrier: str) -> str:
    """The unit of a carrier's Wh in an alert's words: "Wh", "Wh thermal"."""
    return "W" + UNITS[carrier].removeprefix("kW")


def _share_alerts(not_ended: datetime) -> list[Alert]:
    """One alert per seller above the share threshold in any upcoming slot."""
    threshold = review_limits()["seller_share_bps"]
    rows = Contract.objects.filter(vetoed=False, slot__gt=not_ended).values_list(
        "slot", "carrier", "seller", "energy_wh", "price"
    )
    # Per seller and carrier: a share of heat's volume is not one of electricity's.
    hot: dict[tuple[str, str], list[_Hot]] = defaultdict(list)
    names: dict[str, str] = {}
    for stats in reversed(_statistics(rows, threshold)):  # earliest slot first
        for share in stats.shares:
            if share.share_bps > threshold:
                names[share.seller] = share.name or share.seller
                hot[share.seller, stats.carrier].append(
                    _Hot(stats.slot, share.share_bps // 100, share.energy_wh, stats.volume_wh)
                )
    above = _bps_text(threshold)
    found = [
        _grouped(
            kind="seller_share",
            key=f"seller_share:{seller}" + ("" if carrier == ELECTRICITY else f":{carrier}"),
            feeder="",
            hot=slots,
            one=f"{names[seller]} sells {{pct}} % of the slot's {_of(carrier)}volume "
            f"({{amount}} of {{of}} {_wh(carrier)})",
            many=f"{names[seller]} sells more than {above} % of the {_of(carrier)}volume in "
            f"{{slots}} upcoming slots, at most {{pct}} % ({{amount}} of {{of}} {_wh(carrier)})",
        )
        for (seller, carrier), slots in hot.items()
    ]
    return sorted(found, key=lambda alert: (alert.slot, alert.key))


def alerts(*, user: User, now: datetime | None = None) -> list[Alert]:
    """What needs attention now, one alert per kind and subject: suspensions in force, the grid
    or feeders declared not normal, then, over the slots not yet ended (by earliest slot), each
    feeder and direction loaded to the review threshold and each seller above the share
    threshold, however many slots it is in."""
    _require(user, *WATCHERS)
    now = now or timezone.now()
    not_ended = now - timedelta(milliseconds=market_options().slot_ms)  # later starts: not ended
    return [
        *_suspension_alerts(now),
        *_declaration_alerts(),
        *_load_alerts(not_ended),
        *_share_alerts(not_ended),
    ]


def desk_for(*, user: User, desk: str | None = None) -> str:
    """The desk ``user`` acknowledges for: ``desk`` if it works there, else its own console's
    (an administrator's: the grid operator's). ``PermissionDenied`` for a desk not its own."""
    chosen = desk or HOME_DESK.get(user.role, OPERATOR_DESK)
    if chosen not in DESK_ROLES:
        raise PermissionDenied("There is no such desk.")
    _require(user, *DESK_ROLES[chosen])
    return chosen


def covers(acknowledgement: AlertAcknowledgement, alert: Alert) -> bool:
    """Whether ``acknowledgement`` still covers ``alert``: it re-opens when it got worse or is a
    new occurrence.

    An alert about slots is covered while it is in no more slots and no higher a level than
    acknowledged, and its earliest slot is one of those acknowledged or before (once every slot
    acknowledged has ended, slots still above the threshold are news; so is an alert that
    cleared and came back later). Slots that end make it smaller, which keeps it covered. Any
    other alert is covered only by its own fingerprint: a new suspension or declaration is a
    new occurrence.
    """
    if alert.slots == 0:
        return acknowledgement.fingerprint == alert.fingerprint
    return (
        acknowledgement.last_slot is not None
        and alert.slot is not None
        and alert.slots <= acknowledgement.slots
        and alert.level <= acknowledgement.level
        and alert.slot <= acknowledgement.last_slot
    )


def alert_inbox(*, user: User, desk: str, now: datetime | None = None) -> AlertInbox:
    """The alerts of ``desk`` (:data:`DESK_ROLES` may read it) split into open and acknowledged:
    an alert is acknowledged when the desk's latest acknowledgement of its key
    :func:`covers` it."""
    desk = desk_for(user=user, desk=desk)
    current = alerts(user=user, now=now)
    latest: dict[str, AlertAcknowledgement] = {}
    rows = AlertAcknowledgement.objects.filter(desk=desk, key__in=[a.key for a in current])
    for row in rows.select_related("by").order_by("-at", "-id"):
        latest.setdefault(row.key, row)
    items = []
    for alert in current:
        acknowledgement = latest.get(alert.key)
        covered = acknowledgement is not None and covers(acknowledgement, alert)
        items.append(InboxAlert(alert, acknowledgement if covered else None))
    return AlertInbox(desk=desk, items=items)


def open_alert_count(*, user: User, desk: str, now: datetime | None = None) -> int:
    """How many of ``desk``'s alerts are open (not acknowledged, or re-opened)."""
    return len(alert_inbox(user=user, desk=desk, now=now).open)


# --- what any signed-in account may read ---------------------------------------------------------


def suspensions_in_force(*, now: datetime | None = None) -> QuerySet[Suspension]:
    """Suspensions that stop trading now (one whose end has passed has lapsed)."""
    now = now or timezone.now()
    return Suspension.objects.filter(Q(until__isnull=True) | Q(until__gt=now)).order_by("scope")


def topology(*, carrier: str | None = None) -> QuerySet[Feeder]:
    """The published feeders (and heat segments), by name, with their limits and declared state;
    only ``carrier``'s network's when given."""
    published = Feeder.objects.all()
    return published if carrier is None else published.filter(carrier=carrier)


def grid_declaration() -> GridDeclaration | None:
    """The grid operator's declaration for the whole grid; None: normal."""
    declared: GridDeclaration | None = GridDeclaration.objects.first()
    return declared


def trading_stop(*, address: str, now: datetime | None = None) -> TradingStop | None:
    """What would refuse an order or offer from the household at ``address`` now, checked in
    the validators' order (``market.chain.terms.qualify``); None if none of these does.

    Read from the read models, so a block behind at most; the validators decide.
    """
    in_force = suspensions_in_force(now=now)
    market = in_force.filter(scope="market").first()
    if market is not None:
        return TradingStop("market_suspended", market.reason, "market", market.until)
    restriction = Restriction.objects.filter(address=address).first()
    if restriction is not None:
        return TradingStop("account_restricted", restriction.reason, "account", None)
    feeder = _feeder_of(address)
    suspended = in_force.filter(scope=f"feeder:{feeder}").first() if feeder else None
    if suspended is not None:
        return TradingStop("feeder_suspended", suspended.reason, suspended.scope, suspended.until)
    declared = grid_declaration()
    if declared is not None:
        return TradingStop(f"grid_{declared.state}", declared.reason, "grid", None)
    mine = Feeder.objects.filter(name=feeder).exclude(state="normal").first() if feeder else None
    if mine is not None:
        return TradingStop(f"grid_{mine.state}", mine.state_reason, f"feeder:{feeder}", None)
    return None
