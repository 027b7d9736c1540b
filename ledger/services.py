"""The site's writes to the ledger: creating a network, and sending signed transactions to it.

The site never writes a validator's store after genesis: it only sends transactions to the
validators' queues, and every validator decides for itself whether to admit them.

Admission (:func:`transaction_admit`) runs, before anything is sent, the checks every validator
runs on its own pool (``ledger.node.Validator.submit``), in the same order, against the site's
replica of the committed state with the site's pending transactions counted. Each refusal has its
code (docs/ledger.md): ``malformed``, ``duplicate``, ``pool_full``, ``nonce_pending``, then
``ledger.application.check``'s ``unknown_sender``, ``wrong_chain``, ``bad_signature``,
``bad_nonce``, ``unknown_type``, ``not_allowed``. An admitted transaction is recorded as pending
(``SubmittedTransaction``) and sent to every validator once the record is committed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from gridplatform import embedded_redis
from gridplatform.accounts.models import PARTICIPANT_ROLES, Identity, Role, User
from gridplatform.accounts.services import AccountError, identity_unseal
from gridplatform.errors import DomainError
from gridplatform.money import text_from_minor
from ledger import application, config, errors, projection
from ledger.blocks import block_to_json
from ledger.crypto import LedgerCryptoError, Transaction, encode_checked, sign_transaction
from ledger.genesis import Genesis, create_genesis, install_network
from ledger.identity import IdentityError, KeyPair, public_key_bytes
from ledger.models import (
    BlockRecord,
    LedgerAccount,
    ProjectionCursor,
    StateEntry,
    SubmittedTransaction,
    TransactionRecord,
    ValidatorStatus,
)
from ledger.state import State

log = logging.getLogger(__name__)

# Every code admission can refuse with, in order, and its message (also the API's 400 codes);
# the messages are the ledger's catalogue's (ledger.errors).
ADMISSION_CODES: dict[str, str] = {code: errors.MESSAGES[code] for code in errors.ADMISSION}
# Refusals of the web users' signing service, beyond admission's.
SIGNING_CODES: dict[str, str] = {code: errors.MESSAGES[code] for code in errors.SIGNING}


def execution_messages() -> dict[str, str]:
    """Every code the ledger and this network's applications give, with its message: the
    ledger's catalogue and the ``errors`` module of each of ``settings.LEDGER_APPLICATIONS``
    (``market.chain`` -> ``market.chain.errors``), composed (a code defined twice raises)."""
    return _execution_messages(tuple(settings.LEDGER_APPLICATIONS))


@functools.cache
def _execution_messages(applications: tuple[str, ...]) -> dict[str, str]:
    catalogues = [importlib.import_module(f"{name}.errors").MESSAGES for name in applications]
    return errors.compose(errors.MESSAGES, *catalogues)


class GenesisExists(Exception):
    pass


class TransactionRejected(DomainError):
    """Admission, signing or the rehearsal refused a transaction: ``code`` is the ledger's or an
    application's (:func:`execution_messages`), and the message, unless given, its catalogue's."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or execution_messages().get(code, code), code=code)


class LedgerUnavailable(DomainError):
    code = "ledger_unavailable"
    status_code = 503


def genesis_create(
    *, validators: int, chain: str | None = None, options: dict[str, int] | None = None
) -> Genesis:
    """Create the network: validator keys (one 0600 file each), genesis.json, and every store.

    The grid operator account (the issuer of credits) and every regulator account of the site
    are the genesis members, with their identities' public keys. Refuses to overwrite a network.
    """
    directory = settings.LEDGER_DIR
    if config.genesis_path().exists():
        raise GenesisExists(f"{config.genesis_path()} exists: this site has a network already")
    operator = Identity.objects.get(user__role=Role.GRID_OPERATOR, user__is_active=True)
    regulators = Identity.objects.filter(user__role=Role.REGULATOR).order_by("id")
    keys = [KeyPair.generate() for _ in range(validators)]
    genesis, block = create_genesis(
        chain=chain or settings.LEDGER_CHAIN_ID,
        timestamp_ms=time.time_ns() // 1_000_000,
        validator_keys=keys,
        issuer_public_key=operator.public_key,
        regulator_public_keys=[r.public_key for r in regulators],
        options=options,
    )
    install_network(
        directory,
        genesis=genesis,
        block=block,
        keys=keys,
        store_urls=[config.store_url(index) for index in range(validators)],
    )
    # The site's read models start at block 0, with the certificate every validator signed.
    projection.block_project(block=block_to_json(block))
    return genesis


def transactions_submit(
    *, transactions: Sequence[Transaction], validators: Sequence[int] | None = None
) -> None:
    """Send signed transactions to every validator's queue, one message per validator however
    many transactions there are (each validator admits each one or not, itself, in order)."""
    if not transactions:
        return
    body = config.wire_text([tx.to_json() for tx in transactions])
    count = settings.LEDGER_VALIDATORS
    with config.producer() as producer:  # one broker connection for every queue
        for index in validators if validators is not None else range(count):
            config.send(
                "ledger.submit", (index, body), queue=config.queue_name(index), producer=producer
            )


# --- admission -------------------------------------------------------------------------------


def _genesis() -> Genesis:
    if embedded_redis.alone():
        raise LedgerUnavailable(
            "This process is not connected to the running system: REDIS_URL is not set and no "
            f"system is running here ({settings.VAR_DIR / embedded_redis.RUN_FILE} is missing), "
            "so no validator would receive the transaction. Start the system (`make run`) and "
            "try again, or set REDIS_URL to the system's Redis."
        )
    genesis = config.load_genesis()
    if genesis is None:
        raise LedgerUnavailable("There is no ledger network here yet (no genesis document).")
    # The site's replica starts from the genesis accounts before any block has arrived.
    projection.genesis_project()
    return genesis


def _lock_sender(address: str) -> None:
    """Lock the sender's account row: admissions for one sender run one at a time.

    A sender with no account row (not registered) is refused ``unknown_sender`` anyway; the
    unique (sender, nonce) constraint on pending rows is the last line either way.
    """
    list(LedgerAccount.objects.select_for_update().filter(address=address).values_list("pk"))


def _prune_stale(address: str) -> int:
    """Give up the sender's pending transactions if the oldest has waited too long.

    Validators admit nonces strictly in order, so when one pending transaction was lost (a
    validator's pool was full, a broker lost the message), every later one of the sender is
    refused too: waiting for them would block the sender for ever. Precondition: the sender is
    locked (``_lock_sender``).
    """
    cutoff = timezone.now() - timedelta(seconds=settings.LEDGER_PENDING_TIMEOUT_S)
    pending = SubmittedTransaction.objects.filter(sender=address)
    if pending.filter(submitted_at__lt=cutoff).exists():
        count, _ = pending.delete()
        log.warning("gave up %s stale pending transactions of %s", count, address)
        return int(count)
    return 0


RESEND_BATCH = 500
RESEND_LIMIT = 2_000


def pending_heal() -> tuple[int, int]:
    """The beat's cure for transactions the site holds as pending that no validator has.

    Pending transactions that waited longer than ``LEDGER_PENDING_RESEND_S`` (a transaction
    normally commits within a second or two) are sent to every validator again, the
    ``RESEND_LIMIT`` longest waiting per run, in sender and nonce order: a validator that has
    one ignores the copy, one that lost it (or never got it) takes it, and the sender's later
    transactions, which wait for its nonce, follow. Those that waited longer than
    ``LEDGER_PENDING_TIMEOUT_S`` are given up with the rest of their sender's
    (``_prune_stale``), so a sender is never held for ever, the grid operator's relays
    included. Returns (sent again, given up).
    """
    now = timezone.now()
    given_up = 0
    timeout = now - timedelta(seconds=settings.LEDGER_PENDING_TIMEOUT_S)
    stale = SubmittedTransaction.objects.filter(submitted_at__lt=timeout)
    for sender in sorted(set(stale.values_list("sender", flat=True))):
        with transaction.atomic():
            _lock_sender(sender)
            given_up += _prune_stale(sender)
    waited = now - timedelta(seconds=settings.LEDGER_PENDING_RESEND_S)
    # The longest waiting first, a bounded number per run: a slow network that merely lags does
    # not get its whole backlog again every few seconds.
    rows = SubmittedTransaction.objects.filter(submitted_at__lt=waited).order_by("submitted_at")
    oldest = list(rows.values_list("sender", "nonce", "body")[:RESEND_LIMIT])
    waiting = [Transaction.from_json(body) for _, _, body in sorted(oldest, key=lambda r: r[:2])]
    for start in range(0, len(waiting), RESEND_BATCH):
        transactions_submit(transactions=waiting[start : start + RESEND_BATCH])
    if waiting:
        log.info("sent %s pending transactions to the validators again", len(waiting))
    return len(waiting), given_up


def _committed_account(address: str) -> dict[str, Any] | None:
    value = StateEntry.objects.filter(key=f"acct/{address}").values_list("value", flat=True)
    found: dict[str, Any] | None = value.first()
    return found


def _admit(tx: Transaction, *, genesis: Genesis, submitted_by: User | None) -> None:
    """The admission checks, in the validators' order; record the transaction as pending.

    Precondition: inside a transaction, the sender locked (``_lock_sender``).
    """
    _prune_stale(tx.sender)
    if SubmittedTransaction.objects.filter(tx_id=tx.id).exists():
        # The same signed transaction again, still pending: perhaps no validator ever got it
        # (a request that died mid-way, a broker that lost it). Send it again; validators that
        # have it ignore the copy.
        transaction.on_commit(lambda: transactions_submit(transactions=[tx]))
        return
    if TransactionRecord.objects.filter(tx_id=tx.id).exists():
        raise TransactionRejected("duplicate")
    if SubmittedTransaction.objects.count() >= settings.LEDGER_POOL_LIMIT:
        raise TransactionRejected("pool_full")
    pending = set(
        SubmittedTransaction.objects.filter(sender=tx.sender).values_list("nonce", flat=True)
    )
    if tx.nonce in pending:
        raise TransactionRejected("nonce_pending")
    acct = _committed_account(tx.sender)
    state = State({f"acct/{tx.sender}": acct} if acct is not None else None)
    expected = (acct["nonce"] if acct is not None else 0) + len(pending)
    refused = application.check(
        state, config.registry(), tx, chain=genesis.chain, expected_nonce=expected
    )
    if refused is not None:
        raise TransactionRejected(refused)
    try:
        with transaction.atomic():
            SubmittedTransaction.objects.create(
                tx_id=tx.id,
                sender=tx.sender,
                nonce=tx.nonce,
                body=tx.to_json(),
                submitted_by=submitted_by,
            )
    except IntegrityError:  # the sender lock makes this unreachable; the constraint is the net
        raise TransactionRejected("nonce_pending") from None
    transaction.on_commit(lambda: transactions_submit(transactions=[tx]))


def _malformed(error: Exception) -> TransactionRejected:
    """``malformed``, with what is wrong."""
    return TransactionRejected("malformed", f"{errors.MESSAGES['malformed'][:-1]}: {error}")


def transaction_admit(*, data: Any, submitted_by: User | None) -> Transaction:
    """Admit a signed transaction (its decoded JSON) and send it to every validator.

    Raises ``TransactionRejected(code)`` with nothing recorded, or ``LedgerUnavailable`` when
    this site has no network. On success the transaction is pending (``SubmittedTransaction``)
    and, once that commits, sent to each validator's queue. The sender's account row is locked
    for the check, so two admissions for one sender never interleave.
    """
    try:
        tx = Transaction.from_json(data)
    except (LedgerCryptoError, IdentityError, TypeError, ValueError) as error:
        raise _malformed(error) from None
    genesis = _genesis()
    with transaction.atomic(durable=True):
        _lock_sender(tx.sender)
        _admit(tx, genesis=genesis, submitted_by=submitted_by)
    return tx


def transaction_sign_and_submit(
    *,
    user: User,
    type: str,
    payload: dict[str, Any],
    rehearse: bool = False,
    check: Callable[[], object] | None = None,
) -> Transaction:
    """Sign a transaction with ``user``'s custodial key, with its next nonce, and admit it.

    The next nonce is the committed one plus the sender's pending transactions, taken under the
    sender's lock, so two submissions at once from one account never get the same nonce.
    Raises ``TransactionRejected``: ``no_identity``, ``not_custodial``, ``malformed`` (a bad
    type or payload) or any admission code. With ``rehearse``, also the code its execution
    gives on the site's replica of the committed state (:func:`transaction_rehearse`), so a web
    user hears at once what the validators would answer (they still decide). ``check`` runs
    under the sender's lock before anything is signed, and may refuse by raising
    ``TransactionRejected`` (a limit counted over the sender's transactions holds when two
    submissions race).
    """
    identity_ = Identity.objects.filter(user=user).first()
    if identity_ is None:
        raise TransactionRejected("no_identity")
    try:
        keypair = identity_unseal(identity_=identity_)
    except AccountError:
        raise TransactionRejected("not_custodial") from None
    genesis = _genesis()
    address = keypair.address
    with transaction.atomic(durable=True):
        _lock_sender(address)
        _prune_stale(address)
        if check is not None:
            check()
        acct = _committed_account(address)
        pending = SubmittedTransaction.objects.filter(sender=address).count()
        nonce = (acct["nonce"] if acct is not None else 0) + pending
        try:
            tx = sign_transaction(
                keypair=keypair, chain=genesis.chain, type=type, nonce=nonce, payload=payload
            )
        except (LedgerCryptoError, TypeError, ValueError) as error:
            raise _malformed(error) from None
        if rehearse:
            transaction_rehearse(tx, genesis=genesis)
        _admit(tx, genesis=genesis, submitted_by=user)
    return tx


def transaction_rehearse(tx: Transaction, *, genesis: Genesis) -> None:
    """Execute ``tx`` on the site's replica of the committed state, at the site's clock, as if
    the sender's pending transactions were done (its nonce taken as the next); nothing is kept.

    Raises ``TransactionRejected(code)`` with the execution's code unless it gives ``ok``. The
    replica may be a block behind and pending transactions are not applied, so ``ok`` here is
    a forecast: the block decides.
    """
    for _ in range(REHEARSAL_ATTEMPTS):
        state = ReplicaState()
        acct = application.account(state, tx.sender)
        if acct is not None:
            state.set(f"acct/{tx.sender}", acct | {"nonce": tx.nonce})
        cursor = ProjectionCursor.objects.filter(pk=1).values_list("height", flat=True).first()
        try:
            (result,) = application.execute(
                state,
                config.registry(),
                [tx],
                chain=genesis.chain,
                height=(cursor or 0) + 1,
                timestamp_ms=_site_now_ms(),
                keep_journal=True,
            )
        except (KeyError, TypeError, AttributeError) as error:
            # The replica's rows are read one by one while the projection may commit a block
            # between two reads: a rehearsal can see half of a block (an offer without its
            # queue) and trip over it. Read again; the validators' execution is what counts.
            log.info("rehearsal of %s saw a block half-projected (%r): again", tx.id, error)
            continue
        if result != "ok":
            raise TransactionRejected(result)
        return
    log.warning("rehearsal of %s gave up after %d tries: sent as it is", tx.id, REHEARSAL_ATTEMPTS)


REHEARSAL_ATTEMPTS = 5


class ReplicaState(State):
    """The site's replica of the committed state (``StateEntry``), read key by key on demand.

    For rehearsing one transaction: only the keys it reads are loaded. ``keys()`` sees only
    loaded keys, so it is not for handlers that list keys.
    """

    def __init__(self) -> None:
        super().__init__()
        self._read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._read:
            self._read.add(key)
            if key not in self._data:
                found = StateEntry.objects.filter(key=key).values_list("value", flat=True)
                value = found.first()
                if value is not None:
                    self._data[key] = encode_checked(value)
        return super().get(key, default)


# --- self-custody -----------------------------------------------------------------------------


def key_take_over(*, user: User, public_key: str) -> Transaction:
    """The account takes over its own key: ``key.rotate`` to ``public_key``, signed with the
    custodial key, which the site deletes once the rotation commits (``ledger.projection``);
    from then on only the user's key signs for it (the API, or its own client).

    Raises ``TransactionRejected``: ``no_identity``, ``not_custodial`` (it holds its own key
    already), ``bad_public_key``, ``same_key``, ``key_taken`` (another account's), or
    ``unknown_account`` (not on the ledger yet), or what admission answers.
    """
    identity_ = Identity.objects.filter(user=user).first()
    if identity_ is None:
        raise TransactionRejected("no_identity")
    if not identity_.is_custodial:
        raise TransactionRejected("not_custodial")
    try:
        public_key_bytes(public_key)
    except (IdentityError, TypeError):
        raise TransactionRejected("bad_public_key") from None
    if public_key != public_key.lower():
        raise TransactionRejected("bad_public_key")
    if public_key == identity_.public_key:
        raise TransactionRejected("same_key")
    if Identity.objects.filter(public_key=public_key).exclude(pk=identity_.pk).exists():
        raise TransactionRejected("key_taken")
    if _committed_account(identity_.address) is None:
        raise TransactionRejected("unknown_account")
    return transaction_sign_and_submit(
        user=user, type="key.rotate", payload={"public_key": public_key}, rehearse=True
    )


# --- the grid operator's own transactions ----------------------------------------------------


def _operator_household(operator: User, household: User) -> Identity:
    """The identity of a participant (a household, storage provider or retailer) the grid
    operator acts on."""
    if operator.role != Role.GRID_OPERATOR:
        raise TransactionRejected("not_allowed")
    identity_: Identity | None = Identity.objects.filter(
        user=household, user__role__in=PARTICIPANT_ROLES
    ).first()
    if identity_ is None:
        raise TransactionRejected("no_identity")
    return identity_


def household_enrol(*, operator: User, household: User) -> Transaction:
    """The grid operator registers a participant's address and public key on the ledger, so that
    it can hold credits and trade (``account.register``, signed with the operator's key), with
    its role: a household, a storage provider or a retailer (the site's role and the ledger's
    have one name).

    Raises ``TransactionRejected``: ``not_allowed`` (not the grid operator), ``no_identity``,
    ``already_registered`` (on the ledger, or its registration pending), or an admission code.
    """
    identity_ = _operator_household(operator, household)
    if is_registered(identity_.address):
        raise TransactionRejected("already_registered")
    return transaction_sign_and_submit(
        user=operator,
        type="account.register",
        payload={
            "address": identity_.address,
            "public_key": identity_.public_key,
            "role": str(household.role),
        },
    )


def is_registered(address: str) -> bool:
    """On the ledger, or its registration waiting for a block."""
    return _committed_account(address) is not None or registration_pending(address)


def registration_pending(address: str) -> bool:
    """Whether an ``account.register`` of ``address`` waits for a block."""
    pending: bool = SubmittedTransaction.objects.filter(
        body__type="account.register", body__payload__address=address
    ).exists()
    return pending


def credits_top_up(
    *, operator: User, household: User, amount: int, registering: bool = False
) -> Transaction:
    """The grid operator issues ``amount`` minor units of credits to a household: a top-up paid
    in real money (``credit.issue``, signed with the operator's key).

    Raises ``TransactionRejected``: ``not_allowed``, ``no_identity``, ``bad_amount`` (not a
    positive integer), ``top_up_limit`` (more than ``TOP_UP_LIMIT_MINOR`` at once),
    ``top_up_daily_limit`` (the household would get more than ``TOP_UP_DAILY_LIMIT_MINOR`` in 24
    hours, counted under the operator's lock), ``unknown_account`` (the household is not on the
    ledger yet; with ``registering``, a registration the operator just sent, ahead of this in its
    nonces, will do), or an admission code.
    """
    address = top_up_check(
        operator=operator, household=household, amount=amount, registering=registering
    ).address
    return transaction_sign_and_submit(
        user=operator,
        type="credit.issue",
        payload={"to": address, "amount": amount},
        check=lambda: _within_the_day(household, address, amount),
    )


@dataclasses.dataclass(frozen=True)
class TopUp:
    """A top-up the operator is about to confirm: to whom, and what the household was given."""

    address: str
    amount: int
    given_24h: int
    daily_limit: int


def top_up_check(
    *, operator: User, household: User, amount: int, registering: bool = False
) -> TopUp:
    """What ``credits_top_up`` would send, checked as it checks it (raising the same
    ``TransactionRejected``), for the operator's confirmation; nothing is sent."""
    identity_ = _operator_household(operator, household)
    given = top_up_limits(household=household, address=identity_.address, amount=amount)
    if _committed_account(identity_.address) is None and not (
        registering and registration_pending(identity_.address)
    ):
        raise TransactionRejected("unknown_account")
    return TopUp(
        address=identity_.address,
        amount=amount,
        given_24h=given,
        daily_limit=settings.TOP_UP_DAILY_LIMIT_MINOR,
    )


def top_up_limits(*, household: User, address: str, amount: int) -> int:
    """Refuse ``amount`` for ``address`` (``bad_amount``, ``top_up_limit``,
    ``top_up_daily_limit``) unless it is a positive amount within the limits; what it was
    given in the last 24 hours. (An approval checks this before it sends anything.)"""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 2**53 - 1:
        raise TransactionRejected("bad_amount")
    limit = settings.TOP_UP_LIMIT_MINOR
    if amount > limit:
        raise TransactionRejected(
            "top_up_limit",
            f"A top-up is at most {text_from_minor(limit)} (TOP_UP_LIMIT_MINOR); "
            f"{text_from_minor(amount)} is more. Check the amount.",
        )
    return _within_the_day(household, address, amount)


def _within_the_day(household: User, address: str, amount: int) -> int:
    """What ``address`` was given in the last 24 hours; ``top_up_daily_limit`` if ``amount``
    more would pass the daily limit."""
    given = top_ups_given(address=address)
    daily = settings.TOP_UP_DAILY_LIMIT_MINOR
    if given + amount > daily:
        raise TransactionRejected(
            "top_up_daily_limit",
            f"{household.name} was given {text_from_minor(given)} in the last 24 hours; with "
            f"{text_from_minor(amount)} more it would pass the limit of "
            f"{text_from_minor(daily)} a day (TOP_UP_DAILY_LIMIT_MINOR).",
        )
    return given


def top_ups_given(*, address: str, hours: int = 24) -> int:
    """Minor units of credits issued to ``address`` in the last ``hours``: committed top-ups in
    blocks of that time, and top-ups the site sent that no block has yet."""
    since = timezone.now() - timedelta(hours=hours)
    committed = TransactionRecord.objects.filter(
        type="credit.issue", result="ok", block__timestamp__gte=since, body__payload__to=address
    ).values_list("body", flat=True)
    pending = SubmittedTransaction.objects.filter(
        body__type="credit.issue", body__payload__to=address
    ).values_list("body", flat=True)
    return sum(int(body["payload"]["amount"]) for body in [*committed, *pending])


# --- validator status --------------------------------------------------------------------------


def _site_now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def validator_status_record(
    *, index: int, height: int, view: int, at_ms: int, genesis_hash: str | None = None
) -> bool:
    """Record validator ``index``'s heartbeat (its height and view at ``at_ms``, its clock).

    Ignored (False) when it names another network's genesis, when its numbers are not
    non-negative integers, or when it is older than the last one recorded (heartbeats may arrive
    out of order). A heartbeat from the future (clock skew) counts as now.
    """
    numbers = (index, height, view, at_ms)
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in numbers):
        return False
    genesis = config.load_genesis()
    if genesis is not None and genesis_hash is not None and genesis_hash != genesis.block_hash:
        return False
    if genesis is not None and index >= len(genesis.validators):
        return False
    seen_at = projection.datetime_of_ms(min(at_ms, _site_now_ms()))
    with transaction.atomic(durable=True):
        ValidatorStatus.objects.bulk_create([ValidatorStatus(index=index)], ignore_conflicts=True)
        status = ValidatorStatus.objects.select_for_update().get(index=index)
        if status.last_seen_at is not None and seen_at <= status.last_seen_at:
            return False
        if height > status.height:
            status.last_commit_at = seen_at
        status.height = height
        status.view = view
        status.last_seen_at = seen_at
        status.save()
    return True


def validator_commit_record(*, index: int, height: int) -> bool:
    """Validator ``index`` says it committed block ``height`` just now (its notification)."""
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in (index, height)):
        return False
    genesis = config.load_genesis()
    if genesis is not None and index >= len(genesis.validators):
        return False
    with transaction.atomic(durable=True):
        ValidatorStatus.objects.bulk_create([ValidatorStatus(index=index)], ignore_conflicts=True)
        status = ValidatorStatus.objects.select_for_update().get(index=index)
        if height <= status.height:
            return False
        status.height = height
        status.last_commit_at = timezone.now()
        status.save(update_fields=["height", "last_commit_at"])
    return True


def projection_catch_up() -> int | None:
    """Ask a validator to send again the blocks the site's read models lack; which one, or None.

    Blocks reach the projection through commit notifications, one from every validator; if all
    of a height's were lost (a broker restart), the projection would wait for ever. When the
    newest projected block is older than ``LEDGER_CATCH_UP_AFTER_S`` while the heartbeats of live
    validators report a greater height, the one reporting the highest is asked to send the blocks
    after it again (``ledger.resend_blocks``, at most 64 per call). A validator
    cannot make the site accept anything by it: every block is verified as it is projected.
    """
    cursor = ProjectionCursor.objects.filter(pk=1).values_list("height", flat=True).first()
    if cursor is None or cursor < 0:
        return None
    projected: int = cursor
    # Stalled, not merely a moment behind: the newest projected block is older than the wait.
    wait = timedelta(seconds=settings.LEDGER_CATCH_UP_AFTER_S)
    tip_time = BlockRecord.objects.filter(height=projected).values_list("timestamp", flat=True)
    if tip_time.first() is None or tip_time.first() > timezone.now() - wait:
        return None
    ahead = (
        ValidatorStatus.objects.filter(
            height__gt=projected, last_seen_at__gte=timezone.now() - wait
        )
        .order_by("-height", "index")
        .first()
    )
    if ahead is None:
        return None
    log.warning(
        "read models at height %s, validator %s at %s: asking it to send the blocks again",
        projected,
        ahead.index,
        ahead.height,
    )
    index: int = ahead.index
    config.send("ledger.resend_blocks", (index, projected + 1), queue=config.queue_name(index))
    return index
