"""The ledger's application interface, and the ledger's own transaction types.

No Django import. Like CometBFT's ABCI, this separates what the validators agree on (blocks of
transactions) from what the transactions mean. An application (the market, the meters,
supervision) registers transaction types in a ``Registry``: a name, the roles allowed to send it,
and a deterministic handler ``handler(state, tx, context)`` that reads and writes ``State`` and
raises ``TxFailed(code)`` to refuse. Handlers take time from ``context.timestamp_ms`` (block
time), never from a clock; they do no I/O, use no randomness and no floats.

Execution of one transaction, in this order (``check`` gives the same codes at admission):

1. ``unknown_sender``: no account at the sender's address;
2. ``wrong_chain``: the transaction names another network;
3. ``bad_signature``: not signed by the account's *current* key (a rotated key replaces the old);
4. ``bad_nonce``: the nonce is not the account's next one;
5. the nonce is consumed from here on, even if the transaction then fails;
6. ``unknown_type`` / ``not_allowed``: no such type, or the sender's role may not send it;
7. the handler runs; if it raises ``TxFailed``, every change it made is undone.

The result of each transaction is ``"ok"`` or its error code, recorded in the block.

Events: a handler says what happened with ``context.emit(type, data)`` (a contract made, a
reading recorded, a slot settled...): ``type`` names the event like a transaction type
(``market.contract_made``), ``data`` is a canonical JSON object. The block records them in order
as ``{"tx": <index of the transaction in the block>, "type", "data"}`` and its header commits to
them (``events_root``, ``ledger.blocks``); a transaction that fails leaves no event. Read models
follow the chain through its events: history that has left the live state (a settled slot's
readings, contracts and results) stays in the blocks, with what their events say of it.

Applications extend the ledger through named *hooks* as well as types: ``registry.hook(point,
fn)`` adds ``fn`` at ``point`` and every handler finds them in ``context.hooks[point]``, in
registration order. The ledger offers one itself, :data:`SPEND_GUARDS`: each guard is called as
``guard(state, address)`` after a ``credit.transfer`` or ``credit.redeem`` spent ``address``'s
balance, and raises ``TxFailed`` to refuse it (the market keeps margins from being spent this
way), and :data:`TOPPED_UP`: each is called as ``fn(state, address, context)`` after a
``credit.issue`` credited ``address`` (the market pays a household's arrears to the supplier
from it first). An application may offer hooks of its own to the applications above it in the
same way.

Ledger state keys: ``acct/<address>`` = ``{"public_key", "role", "nonce"}``, ``bal/<address>`` =
integer credits in minor units, ``ledger/supply`` = credits in circulation,
``ledger/genesis`` = ``{"chain", "issuer", "validators", "options"}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ledger.crypto import Transaction, check_canonical, copy_json, is_name
from ledger.identity import (
    BadSignature,
    IdentityError,
    address_from_public_key,
    public_key_bytes,
    validate_address,
    verify,
)
from ledger.state import State

ANY_ROLE = "*"

# Roles on the ledger. The grid operator (also the issuer of credits) and the regulators are
# listed in genesis. Households, energy storage providers and energy sellers (retailers) are
# participants: genesis may list some (``members``), the grid operator registers the others
# (``account.register``). What each role may send is in its types' registry entries
# (docs/ledger.md has the table); what a participant's role allows beyond that the applications
# check (a storage provider trades within its store, a retailer for households only).
HOUSEHOLD = "household"
STORAGE_PROVIDER = "storage_provider"
RETAILER = "retailer"
GRID_OPERATOR = "grid_operator"
REGULATOR = "regulator"
ROLES = frozenset({HOUSEHOLD, STORAGE_PROVIDER, RETAILER, GRID_OPERATOR, REGULATOR})
REGISTRABLE_ROLES = frozenset({HOUSEHOLD, STORAGE_PROVIDER, RETAILER})
# The participants that trade energy for themselves (own meters, feeders, orders, offers).
TRADERS = frozenset({HOUSEHOLD, STORAGE_PROVIDER})


class TxFailed(Exception):
    """A handler refuses a transaction; ``code`` is stable and recorded in the block."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


# The ledger's own hook: called as guard(state, address) after a credit.* type spent the
# address's balance; a guard raises TxFailed to refuse the spending.
SPEND_GUARDS = "ledger.spend_guards"
TOPPED_UP = "ledger.topped_up"

Hooks = Mapping[str, tuple[Any, ...]]
NO_HOOKS: Hooks = MappingProxyType({})
# An event as a handler emits it ({"type", "data"}); in a block each also names its
# transaction's index ({"tx", "type", "data"}).
Event = dict[str, Any]


@dataclass(frozen=True)
class Context:
    chain: str
    height: int
    timestamp_ms: int
    tx_id: str
    sender_role: str
    # What the registry's applications hooked in, by point (Registry.hook).
    hooks: Hooks = field(default_factory=lambda: NO_HOOKS, compare=False, hash=False)
    # The events the transaction's handler emitted so far, in order (``emit``).
    events: list[Event] = field(default_factory=list, compare=False, hash=False)

    def emit(self, type_: str, data: Mapping[str, Any]) -> None:
        """Record that something happened: an event of ``type_`` with ``data`` (canonical JSON).

        Kept in the block only if the transaction succeeds."""
        if not is_name(type_):
            raise ValueError(f"an event type is a name like a transaction type, not {type_!r}")
        check_canonical(data)
        # A copy: a handler may go on changing the record it reported.
        event: Event = {"type": type_, "data": copy_json(dict(data))}
        self.events.append(event)


Handler = Callable[[State, Transaction, Context], None]


@dataclass(frozen=True)
class TxType:
    name: str
    senders: frozenset[str]
    handler: Handler

    def allows(self, role: str) -> bool:
        return ANY_ROLE in self.senders or role in self.senders


@dataclass
class Registry:
    types: dict[str, TxType] = field(default_factory=dict)
    hooks: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def register(self, name: str, *, senders: Iterable[str], handler: Handler) -> None:
        if name in self.types:
            raise ValueError(f"transaction type {name!r} is registered twice")
        self.types[name] = TxType(name=name, senders=frozenset(senders), handler=handler)

    def hook(self, point: str, fn: Any) -> None:
        """Add ``fn`` at the hook ``point`` (after those added before it)."""
        self.hooks[point] = (*self.hooks.get(point, ()), fn)

    def get(self, name: str) -> TxType | None:
        return self.types.get(name)


def account(state: State, address: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = state.get(f"acct/{address}")
    return value


def balance(state: State, address: str) -> int:
    value: int = state.get(f"bal/{address}", 0)
    return value


@functools.lru_cache(maxsize=65_536)
def _signature_valid(public_key: str, message: bytes, signature: str) -> bool:
    """Ed25519 verification, remembered: a validator checks each transaction at admission, when
    it checks the proposed block and when it commits it. A pure function, so caching it changes
    no result; only valid and invalid answers for the same inputs are reused."""
    try:
        verify(public_key, message, signature)
    except BadSignature:
        return False
    return True


def check(
    state: State,
    registry: Registry,
    tx: Transaction,
    *,
    chain: str,
    expected_nonce: int | None = None,
) -> str | None:
    """The first reason ``tx`` cannot execute now, as an error code; None if it can.

    ``expected_nonce`` overrides the account's committed nonce (admission passes the next nonce
    after the sender's transactions already waiting in the pool).
    """
    acct = account(state, tx.sender)
    if acct is None:
        return "unknown_sender"
    if tx.chain != chain:
        return "wrong_chain"
    if not _signature_valid(acct["public_key"], tx.signing_bytes(), tx.signature):
        return "bad_signature"
    nonce = acct["nonce"] if expected_nonce is None else expected_nonce
    if tx.nonce != nonce:
        return "bad_nonce"
    tx_type = registry.get(tx.type)
    if tx_type is None:
        return "unknown_type"
    if not tx_type.allows(acct["role"]):
        return "not_allowed"
    return None


def execute(
    state: State,
    registry: Registry,
    transactions: Sequence[Transaction],
    *,
    chain: str,
    height: int,
    timestamp_ms: int,
    keep_journal: bool = False,
    events: list[Event] | None = None,
) -> list[str]:
    """Execute a block's transactions in order on ``state``; return each one's result.

    With ``keep_journal`` the changes can still be undone with ``state.rollback_to`` (a
    validator executes a proposed block tentatively to check it, then rolls back). With
    ``events``, the block's events are appended to it, each naming its transaction's index.
    """
    results = []
    for index, tx in enumerate(transactions):
        emitted: list[Event] = []
        results.append(_execute_one(state, registry, tx, chain, height, timestamp_ms, emitted))
        if events is not None:
            events.extend({"tx": index, **event} for event in emitted)
    if not keep_journal:
        state.clear_journal()
    return results


def _execute_one(
    state: State,
    registry: Registry,
    tx: Transaction,
    chain: str,
    height: int,
    timestamp_ms: int,
    emitted: list[Event],
) -> str:
    acct = account(state, tx.sender)
    refused = check(state, registry, tx, chain=chain)
    if refused in ("unknown_sender", "wrong_chain", "bad_signature", "bad_nonce") or acct is None:
        return refused or "unknown_sender"
    state.set(f"acct/{tx.sender}", acct | {"nonce": acct["nonce"] + 1})
    if refused is not None:
        return refused
    tx_type = registry.get(tx.type)
    assert tx_type is not None  # check() returned None, so the type exists
    context = Context(
        chain=chain,
        height=height,
        timestamp_ms=timestamp_ms,
        tx_id=tx.id,
        sender_role=acct["role"],
        hooks=registry.hooks,
    )
    savepoint = state.savepoint()
    try:
        tx_type.handler(state, tx, context)
    except TxFailed as failure:
        state.rollback_to(savepoint)
        return failure.code
    emitted.extend(context.events)
    return "ok"


def execute_certified(
    state: State,
    registry: Registry,
    transactions: Sequence[Transaction],
    *,
    chain: str,
    height: int,
    timestamp_ms: int,
    results: Sequence[str],
    events: Sequence[Event],
    state_root: str,
) -> bool:
    """Execute a certified block on ``state``; whether it gave the recorded results, events and
    root.

    For a block a quorum certified, False means this copy of the state or code is wrong.
    """
    emitted: list[Event] = []
    executed = execute(
        state,
        registry,
        transactions,
        chain=chain,
        height=height,
        timestamp_ms=timestamp_ms,
        events=emitted,
    )
    return executed == list(results) and emitted == list(events) and state.root() == state_root


# --- payload helpers for handlers ------------------------------------------------------------


def payload_fields(
    tx: Transaction, *names: str, optional: Mapping[str, Any] | None = None
) -> list[Any]:
    """The payload's fields, exactly these and no others, or TxFailed('bad_payload'). Each name
    in ``optional`` may also be given; its value follows the required ones, the mapping's
    default when it is not."""
    extra = optional or {}
    given = set(tx.payload)
    if not set(names) <= given or not given <= set(names) | set(extra):
        if extra:
            raise TxFailed(
                "bad_payload",
                f"payload must have exactly {sorted(names)}, and may have {sorted(extra)}",
            )
        raise TxFailed("bad_payload", f"payload must have exactly {sorted(names)}")
    return [tx.payload[name] for name in names] + [
        tx.payload.get(name, default) for name, default in extra.items()
    ]


def positive_amount(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TxFailed("bad_amount", "amount must be a positive integer in minor units")
    return value


def registered_address(state: State, value: Any) -> str:
    if not isinstance(value, str):
        raise TxFailed("bad_address")
    try:
        validate_address(value)
    except IdentityError:
        raise TxFailed("bad_address") from None
    if account(state, value) is None:
        raise TxFailed("unknown_account")
    return value


# --- genesis and the ledger's own transaction types ------------------------------------------


def genesis_state(
    *,
    chain: str,
    issuer_public_key: str,
    regulator_public_keys: Sequence[str],
    validators: Sequence[str] = (),
    options: Mapping[str, int] | None = None,
    members: Sequence[tuple[str, str]] = (),
) -> State:
    """The state at height 0: the grid operator (the issuer of credits), the regulators and the
    participants genesis lists (``members``: (public key, one of :data:`REGISTRABLE_ROLES`)).

    The validator set and the network's options are part of it, so block 0's state root (and
    so its hash) commits to the whole genesis document.
    """
    state = State()
    issuer = address_from_public_key(issuer_public_key)
    state.set(
        "ledger/genesis",
        {
            "chain": chain,
            "issuer": issuer,
            "validators": list(validators),
            "options": dict(options or {}),
        },
    )
    state.set("ledger/supply", 0)
    accounts = [(issuer_public_key, GRID_OPERATOR)]
    accounts += [(key, REGULATOR) for key in regulator_public_keys]
    for public_key, role in members:
        if role not in REGISTRABLE_ROLES:
            raise ValueError(f"genesis lists a {role!r} only as the issuer or a regulator")
        accounts.append((public_key, role))
    for public_key, role in accounts:
        address = address_from_public_key(public_key)
        if account(state, address) is not None:
            raise ValueError(f"{address} is listed twice in genesis")
        state.set(f"acct/{address}", {"public_key": public_key, "role": role, "nonce": 0})
    state.clear_journal()
    return state


def issuer(state: State) -> str:
    value: str = state.get("ledger/genesis")["issuer"]
    return value


def _account_register(state: State, tx: Transaction, context: Context) -> None:
    """The grid operator binds a new address to its public key and a role."""
    address, public_key, role = payload_fields(tx, "address", "public_key", "role")
    if role not in REGISTRABLE_ROLES:
        raise TxFailed("bad_role", "households, storage providers and retailers are registered")
    try:
        public_key_bytes(public_key)
        derived = address_from_public_key(public_key)
    except (IdentityError, TypeError):
        raise TxFailed("bad_public_key") from None
    if derived != address:
        raise TxFailed("address_key_mismatch", "the address does not derive from the key")
    if account(state, address) is not None:
        raise TxFailed("already_registered")
    state.set(f"acct/{address}", {"public_key": public_key, "role": role, "nonce": 0})


def _key_rotate(state: State, tx: Transaction, context: Context) -> None:
    """An account replaces its key; signed by the old key. The address stays the same."""
    (public_key,) = payload_fields(tx, "public_key")
    try:
        public_key_bytes(public_key)
    except (IdentityError, TypeError):
        raise TxFailed("bad_public_key") from None
    acct = account(state, tx.sender)
    assert acct is not None
    if public_key == acct["public_key"]:
        raise TxFailed("same_key")
    state.set(f"acct/{tx.sender}", acct | {"public_key": public_key})


def _credit_issue(state: State, tx: Transaction, context: Context) -> None:
    """The issuer creates credits for an account (a household topped up with real money)."""
    to, amount = payload_fields(tx, "to", "amount")
    to = registered_address(state, to)
    amount = positive_amount(amount)
    if tx.sender != issuer(state):
        raise TxFailed("not_issuer")
    state.set(f"bal/{to}", balance(state, to) + amount)
    state.set("ledger/supply", state.get("ledger/supply") + amount)
    for topped_up in context.hooks.get(TOPPED_UP, ()):
        topped_up(state, to, context)


def _guard_spending(state: State, address: str, context: Context) -> None:
    for guard in context.hooks.get(SPEND_GUARDS, ()):
        guard(state, address)


def _credit_transfer(state: State, tx: Transaction, context: Context) -> None:
    to, amount = payload_fields(tx, "to", "amount")
    to = registered_address(state, to)
    amount = positive_amount(amount)
    if to == tx.sender:
        raise TxFailed("self_transfer")
    if balance(state, tx.sender) < amount:
        raise TxFailed("insufficient_balance")
    state.set(f"bal/{tx.sender}", balance(state, tx.sender) - amount)
    state.set(f"bal/{to}", balance(state, to) + amount)
    _guard_spending(state, tx.sender, context)


def _credit_redeem(state: State, tx: Transaction, context: Context) -> None:
    """A holder hands credits back to the issuer for a payout; they leave circulation."""
    (amount,) = payload_fields(tx, "amount")
    amount = positive_amount(amount)
    if balance(state, tx.sender) < amount:
        raise TxFailed("insufficient_balance")
    state.set(f"bal/{tx.sender}", balance(state, tx.sender) - amount)
    state.set("ledger/supply", state.get("ledger/supply") - amount)
    _guard_spending(state, tx.sender, context)


def register_ledger_types(registry: Registry) -> Registry:
    registry.register("account.register", senders={GRID_OPERATOR}, handler=_account_register)
    registry.register("key.rotate", senders={ANY_ROLE}, handler=_key_rotate)
    registry.register("credit.issue", senders={GRID_OPERATOR}, handler=_credit_issue)
    # Every participant holds credits: a storage provider's trades, a retailer's fees (paid by
    # transfer); each may pass them on or redeem them.
    registry.register("credit.transfer", senders=REGISTRABLE_ROLES, handler=_credit_transfer)
    registry.register("credit.redeem", senders=REGISTRABLE_ROLES, handler=_credit_redeem)
    return registry
