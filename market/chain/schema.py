"""The market's namespace on the ledger: every state key it owns and the records stored there.

No Django import. The market (``market.chain``) is the only writer of these keys, and other code
(supervision's acts, the site's projection, tests) reads and writes them through the functions
here and in the market's own modules, never by spelling a key. Records are JSON objects in
state; the ``TypedDict`` classes below say exactly which fields each has (``NotRequired``: only
present in some). ``docs/market.md`` is the same reference with examples.

==========================================  ===================================================
key                                         record
==========================================  ===================================================
``market/locked/<address>``                 int, minor units of the balance locked as margins
                                            (orders, offers, contracts); absent = 0
``market/order/<id>``                       :class:`Order` (id: the transaction that placed it)
``market/level/<slot>/<side>/<price>``      a price level: :class:`Queue` of order ids in time
``market/level/<slot>/<side>/<price>/<n>``  order, entry n (``market.chain.book``)
``market/book/<slot>/<side>/<d>/<prefix>``  the price index of a side's levels
``market/open/<slot>/<address>``            :class:`OpenOrders`: the account's resting orders
``market/offer/<id>``                       :class:`Offer`
``market/offers/<slot>``                    the slot's offers in time order, a :class:`Queue`
``market/offers/<slot>/<seq>``              like a price level's
``market/contracts/<slot>``                 int, the number of contracts made for the slot
``market/contract/<slot>-<n>``              :class:`Contract` number n of the slot
``market/requirement/<id>``                 :class:`Requirement` of a network operator
``market/requirements/<slot>``              the slot's requirements in time order, a
                                            :class:`Queue` (entries ``/<seq>``)
``market/answer/<id>``                      :class:`Answer` of a household to a requirement
``market/answers/<requirement>``            its answers in time order, a :class:`Queue`
``market/baseline/<carrier>/<address>``     :class:`Baseline` of a household enrolled to
                                            answer requirements (``market.chain.flexibility``)
``market/defaults/<address>``               :class:`Defaults`
``market/arrears/<address>``                int, minor units the household owes the supplier
                                            of last resort beyond what it could pay; absent = 0
                                            (``market.chain.residual``)
``market/tariffs``                          the supplier's tariffs by ``from_slot``
                                            (``market.chain.tariff``: written by
                                            ``market.tariff.publish``, which also drops those
                                            superseded more than ``KEEP_MS`` ago)
``market/tariffs/<carrier>``                another carrier's tariffs, the same way
                                            (``market/tariffs/heat``)
==========================================  ===================================================

Each carrier other than electricity has the same families with ``<carrier>/<slot>`` for
``<slot>`` (``market/level/heat/<slot>/...``, ``market/contracts/heat/<slot>``) and contract ids
``<carrier>-<slot>-<n>``; its records carry ``"carrier"`` (below, "Carriers").

The state holds only what execution still needs: open orders and offers, margins, and the
contracts of slots not yet settled. Settlement deletes a slot's contracts and their count; what
happened stays in the blocks as events (below): ``market.contract_made`` with the contract as it
was made, ``market.contract_settled`` with its result, ``market.slot_settled`` with the summary,
``market.auction_cleared`` with a call auction's result. ``docs/market.md`` ("The life of each
key") says which transaction creates, reads and removes each family.

Events (``context.emit``; ``data`` fields):

==============================  ================================================================
``market.order_placed``         ``{"id", "owner", "slot", "side", "price", "energy_wh"}``
``market.order_closed``         ``{"id", "status", "remaining_wh"}``: ``status`` ``filled``,
                                ``cancelled`` (by its owner, or a regulator's restriction) or
                                ``expired`` (its slot was cleared)
``market.offer_posted``         ``{"id", "owner", "slot", "price", "energy_wh", "buyer"}``
``market.offer_closed``         ``{"id", "status", "remaining_wh"}``: ``taken``, ``withdrawn``
                                (by its owner, or a restriction) or ``expired``
``market.contract_made``        :class:`Contract`, as stored when made
``market.auction_cleared``      :class:`Auction`
``market.contract_settled``     :class:`SettlementResult` with ``"slot"``
``market.slot_settled``         :class:`Settlement`
``market.tariff_published``     ``market.chain.tariff.Tariff``
``market.residual_settled``     :class:`Residual`: one household's energy with the supplier in
                                a settled slot (``market.chain.residual``)
``market.arrears_paid``         ``{"account", "paid", "arrears", "tx"}``: a top-up paid arrears
==============================  ================================================================
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from ledger.application import balance
from ledger.state import State
from market.chain.options import ELECTRICITY

TARIFFS_KEY = "market/tariffs"
LOCKED_PREFIX = "market/locked/"
ORDER_PREFIX = "market/order/"
OFFER_PREFIX = "market/offer/"
CONTRACT_PREFIX = "market/contract/"
REQUIREMENT_PREFIX = "market/requirement/"
ANSWER_PREFIX = "market/answer/"

# Events, and the statuses an order or offer closes with.
ORDER_PLACED = "market.order_placed"
ORDER_CLOSED = "market.order_closed"
OFFER_POSTED = "market.offer_posted"
OFFER_CLOSED = "market.offer_closed"
CONTRACT_MADE = "market.contract_made"
AUCTION_CLEARED = "market.auction_cleared"
CONTRACT_SETTLED = "market.contract_settled"
SLOT_SETTLED = "market.slot_settled"
RESIDUAL_SETTLED = "market.residual_settled"
ARREARS_PAID = "market.arrears_paid"
REQUIREMENT_POSTED = "market.requirement_posted"
REQUIREMENT_CLOSED = "market.requirement_closed"
ANSWER_POSTED = "market.answer_posted"
ANSWER_CLOSED = "market.answer_closed"
FLEXIBILITY_ENROLLED = "market.flexibility_enrolled"
FILLED, CANCELLED, EXPIRED = "filled", "cancelled", "expired"
TAKEN, WITHDRAWN = "taken", "withdrawn"


# --- carriers ----------------------------------------------------------------------------------
#
# Electricity keeps the keys and records it always had. Every other carrier's books, open-order
# records, offers and contract counts sit under ``<carrier>/<slot>`` where electricity's sit under
# ``<slot>`` (``market/level/heat/<slot>/<side>/<price>``...), its contracts are numbered
# ``heat-<slot>-<n>``, and its orders, offers and contracts carry ``"carrier": "heat"``; a record
# without ``carrier`` is electricity's. So no electricity key, record or state root changed when
# carriers came, and nothing of one carrier can be found under another's keys.


def carrier_of(record: dict[str, Any] | Any) -> str:
    """The carrier of an order, offer, contract or settlement result."""
    carrier: str = record.get("carrier", ELECTRICITY)
    return carrier


def with_carrier(record: dict[str, Any], carrier: str) -> dict[str, Any]:
    """``record`` marked with ``carrier`` (unmarked for electricity)."""
    return record if carrier == ELECTRICITY else record | {"carrier": carrier}


def _book(slot: int, carrier: str) -> str:
    return str(slot) if carrier == ELECTRICITY else f"{carrier}/{slot}"


def tariffs_key(carrier: str = ELECTRICITY) -> str:
    """The supplier's tariffs of ``carrier`` (``market.chain.tariff``)."""
    return TARIFFS_KEY if carrier == ELECTRICITY else f"{TARIFFS_KEY}/{carrier}"


def contract_id(slot: int, index: int, carrier: str = ELECTRICITY) -> str:
    return f"{slot}-{index}" if carrier == ELECTRICITY else f"{carrier}-{slot}-{index}"


# --- keys --------------------------------------------------------------------------------------


def locked_key(address: str) -> str:
    return LOCKED_PREFIX + address


def order_key(order_id: str) -> str:
    return ORDER_PREFIX + order_id


def level_key(slot: int, side: str, price: int, carrier: str = ELECTRICITY) -> str:
    return f"market/level/{_book(slot, carrier)}/{side}/{price}"


def book_index_prefix(slot: int, side: str, carrier: str = ELECTRICITY) -> str:
    return f"market/book/{_book(slot, carrier)}/{side}/"


def open_key(slot: int, address: str, carrier: str = ELECTRICITY) -> str:
    return f"market/open/{_book(slot, carrier)}/{address}"


def offer_key(offer_id: str) -> str:
    return OFFER_PREFIX + offer_id


def offers_key(slot: int, carrier: str = ELECTRICITY) -> str:
    return f"market/offers/{_book(slot, carrier)}"


def contract_key(contract_id: str) -> str:
    return CONTRACT_PREFIX + contract_id


def contracts_key(slot: int, carrier: str = ELECTRICITY) -> str:
    return f"market/contracts/{_book(slot, carrier)}"


def requirement_key(requirement_id: str) -> str:
    return REQUIREMENT_PREFIX + requirement_id


def requirements_key(slot: int, carrier: str = ELECTRICITY) -> str:
    """The queue of a carrier's requirements for a slot, in time order."""
    return f"market/requirements/{_book(slot, carrier)}"


def answer_key(answer_id: str) -> str:
    return ANSWER_PREFIX + answer_id


def answers_key(requirement_id: str) -> str:
    """The queue of a requirement's answers, in time order."""
    return f"market/answers/{requirement_id}"


def baseline_key(address: str, carrier: str = ELECTRICITY) -> str:
    return f"market/baseline/{carrier}/{address}"


def defaults_key(address: str) -> str:
    return f"market/defaults/{address}"


def arrears_key(address: str) -> str:
    return f"market/arrears/{address}"


# --- records -----------------------------------------------------------------------------------


class Queue(TypedDict):
    """A queue of ids in time order (a price level, a slot's offers); entries at ``<key>/<n>``."""

    head: int
    next: int
    count: int


class Order(TypedDict):
    id: str  # the transaction that placed it
    owner: str
    slot: int
    side: str  # "buy" | "sell"
    price: int  # minor units per kWh
    energy_wh: int
    remaining_wh: int
    locked: int  # the margin the remainder still locks
    height: int
    seq: NotRequired[int]  # its entry in its price level, once it rests
    carrier: NotRequired[str]  # absent: electricity
    placed_by: NotRequired[str]  # a retailer that placed it for the owner (market.chain.retail)


class OpenOrders(TypedDict):
    side: str
    count: int


class Offer(TypedDict):
    id: str
    owner: str  # the seller
    slot: int
    price: int
    energy_wh: int
    remaining_wh: int
    locked: int  # the deposit the remainder still locks
    buyer: str  # "" : anyone
    height: int
    seq: NotRequired[int]
    carrier: NotRequired[str]


class ContractGrid(TypedDict):
    """Why the grid security check tailored a contract."""

    requested_wh: int
    constraint: str  # "export:<feeder>" | "import:<feeder>"
    cut_wh: int


# The published feeders a contract counts in (supervision's grid load): "export" (the seller's)
# and "import" (the buyer's), each only when published. Functional form: "import" is a keyword.
ContractFeeders = TypedDict("ContractFeeders", {"export": str, "import": str}, total=False)


class Act(TypedDict):
    """A supervisory act on a contract (``supervision.chain.acts``)."""

    act: str  # "veto" | "curtail" | "clear"
    reason: str
    energy_wh_before: int
    energy_wh: int
    escrow_released: int
    deposit_released: int
    by: str
    tx: str
    height: int
    timestamp_ms: int


class Contract(TypedDict):
    id: str  # "<slot>-<index>"
    kind: str  # "order" | "auction" | "offer" | "flexibility"
    slot: int
    index: int
    seller: str
    buyer: str
    energy_wh: int
    price: int
    network_fee: int
    penalty_bps: int
    escrow: int  # the buyer's margin locked for it
    deposit: int  # the seller's
    seller_tx: str
    buyer_tx: str
    tx: str  # the transaction that made the match
    height: int
    timestamp_ms: int
    grid: NotRequired[ContractGrid]
    feeders: NotRequired[ContractFeeders]
    vetoed: NotRequired[bool]
    acts: NotRequired[list[Act]]
    carrier: NotRequired[str]  # absent: electricity
    # A flexibility contract's (kind "flexibility"): the requirement it answers, the flow it
    # reduces, the feeder, and the seller's baseline for that flow in the slot when accepted.
    requirement: NotRequired[str]
    direction: NotRequired[str]
    feeder: NotRequired[str]
    baseline_wh: NotRequired[int]


class Auction(TypedDict):
    slot: int
    price: int  # 0 when nothing cleared
    volume_wh: int
    contracts: int


class ResidualSummary(TypedDict):
    """A slot's totals with the supplier: ``market.slot_settled``'s ``residual``."""

    households: int
    grid_import_wh: int
    grid_export_wh: int
    import_cost: int
    import_fee: int
    feed_in_paid: int
    arrears_paid: int
    arrears_added: int
    issued: int  # what the supplier issued to pay feed-in its balance did not cover


class Settlement(TypedDict):
    slot: int
    contracts: int
    energy_wh: int
    delivered_wh: int
    paid: int
    fees: int
    penalties: int
    escrow_released: int
    deposit_released: int
    shortfalls: int
    residual: ResidualSummary | None  # None: no tariff was in force for the slot
    tx: str
    height: int
    timestamp_ms: int


class SettlementResult(TypedDict):
    slot: int
    contract: str
    seller: str
    buyer: str
    energy_wh: int
    export_wh: int  # the seller's measured export in the slot
    delivered_wh: int
    paid: int
    fee: int
    penalty: int
    escrow_released: int
    deposit_released: int
    carrier: NotRequired[str]
    # A flexibility contract's: the seller's metered flow in the direction, and its baseline.
    measured_wh: NotRequired[int]
    baseline_wh: NotRequired[int]


class Residual(TypedDict):
    """How one household settled with the supplier of last resort in a slot. Energy in Wh,
    prices in minor units per kWh (the tariff band's), money in minor units."""

    slot: int
    account: str
    import_wh: int  # metered, all the household's meters
    export_wh: int
    p2p_in_wh: int  # delivered to it by its contracts of the slot
    p2p_out_wh: int  # delivered by it through its contracts of the slot
    grid_import_wh: int  # max(0, import_wh - p2p_in_wh): bought from the supplier
    grid_export_wh: int  # export_wh - p2p_out_wh: sold to the supplier
    retail: int
    feed_in: int
    network_fee: int
    import_cost: int  # value(grid_import_wh, retail)
    import_fee: int  # value(grid_import_wh, network_fee)
    feed_in_paid: int  # value(grid_export_wh, feed_in), credited
    arrears_paid: int  # earlier arrears paid now
    arrears_added: int  # what of import_cost + import_fee it could not pay
    arrears: int  # owed to the supplier after the slot
    carrier: NotRequired[str]  # absent: electricity


class Requirement(TypedDict):
    """A network operator's requirement for a slot (``market.chain.flexibility``)."""

    id: str  # the transaction that posted it
    owner: str  # the grid operator
    slot: int
    feeder: str  # the feeder, or the heating network's segment, it is for
    direction: str  # "import" | "export": the metered flow to reduce
    energy_wh: int  # at most this much reduction
    price: int  # paying at most this, minor units per kWh
    remaining_wh: int  # not yet accepted
    locked: int  # the budget the remainder still locks: value(remaining_wh, price)
    height: int
    seq: NotRequired[int]
    carrier: NotRequired[str]


class Answer(TypedDict):
    """A household's answer to a requirement: a reduction it offers, at its price."""

    id: str
    owner: str
    requirement: str
    slot: int
    energy_wh: int
    price: int
    remaining_wh: int
    locked: int  # its deposit for the remainder
    height: int
    seq: NotRequired[int]
    carrier: NotRequired[str]


class Baseline(TypedDict):
    """An enrolled household's metered flows (``market.chain.flexibility``, "The baseline"):
    ``[import_wh, export_wh, count]`` by slot of the day (``"<n>"``, the slot's index in its
    day) and over its latest settled slots."""

    slots: dict[str, list[int]]
    recent: NotRequired[list[int]]


class Defaults(TypedDict):
    unsettled: int  # shortfalls not yet cleared by a regulator
    shortfalls: int
    shortfall_wh: int
    last_slot: int


# --- the owner's accessors ---------------------------------------------------------------------


def locked(state: State, address: str) -> int:
    value: int = state.get(locked_key(address), 0)
    return value


def free_balance(state: State, address: str) -> int:
    return balance(state, address) - locked(state, address)


def add_locked(state: State, address: str, delta: int) -> None:
    """Change the account's locked amount by ``delta`` (settlement and supervisory acts unlock
    through it too)."""
    if delta:
        total = locked(state, address) + delta
        if total:
            state.set(locked_key(address), total)
        else:
            state.delete(locked_key(address))


def contract(state: State, contract_id: str) -> Contract | None:
    made: Contract | None = state.get(contract_key(contract_id))
    return made


def contract_save(state: State, made: Contract | dict[str, Any]) -> None:
    state.set(contract_key(made["id"]), made)


def arrears(state: State, address: str) -> int:
    value: int = state.get(arrears_key(address), 0)
    return value


def arrears_save(state: State, address: str, amount: int) -> None:
    if amount:
        state.set(arrears_key(address), amount)
    else:
        state.delete(arrears_key(address))


def defaults(state: State, address: str) -> Defaults | None:
    record: Defaults | None = state.get(defaults_key(address))
    return record


def defaults_save(state: State, address: str, record: Defaults | dict[str, Any]) -> None:
    state.set(defaults_key(address), record)
