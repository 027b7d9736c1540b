"""The site's supervisory actions: each signs one regulator's or grid operator's transaction.

The rules are the validators' (``supervision.chain.acts``, ``supervision.chain.grid``); the site
signs with the actor's custodial key (``ledger.services.transaction_sign_and_submit``), rehearses
the transaction on its replica of the committed state, so that a refusal comes back at once with
the validators' code, and submits it. The outcome shows in the read models once its block
commits (``supervision.projection``). Each action raises ``PermissionDenied`` for a user whose
role may not send it, and ``ledger.services.TransactionRejected`` (a stable code, plain words)
when it is refused, having submitted nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import TRADING_ROLES, Role, User
from gridplatform.errors import DomainError, NotFoundError
from gridplatform.money import text_from_minor
from ledger import services as ledger_services
from ledger.application import RETAILER, STORAGE_PROVIDER
from ledger.crypto import Transaction
from ledger.projection import ms_of_datetime
from ledger.services import TransactionRejected, transaction_sign_and_submit
from market.chain.options import ELECTRICITY
from market.models import Contract
from market.selectors import address_of
from market.services import worded
from supervision import selectors
from supervision.errors import MESSAGES
from supervision.models import AlertAcknowledgement, Feeder, Notification

log = logging.getLogger(__name__)


def _require(user: User, role: object, who: str) -> None:
    if user.role != role:
        raise PermissionDenied(f"Only {who} do this.")


def _submit(user: User, type_: str, payload: dict[str, Any]) -> Transaction:
    """Sign, rehearse and submit; a refusal's message is its code's (``supervision.errors``;
    a carrier code's, the market's: ``market.services.worded``)."""
    try:
        return transaction_sign_and_submit(user=user, type=type_, payload=payload, rehearse=True)
    except TransactionRejected as error:
        raise worded(error) from None


def _whole(value: object, code: str) -> int:
    """A JSON integer, or the refusal ``code`` before anything is signed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TransactionRejected(code, MESSAGES[code])
    return value


# --- participants the grid operator opens -------------------------------------------------------

# The roles whose accounts the grid operator opens (households register themselves).
OPENED_ROLES = (STORAGE_PROVIDER, RETAILER)


def participant_register(*, operator: User, name: str, email: str, role: str) -> User:
    """The grid operator opens an account for a storage provider or a retailer and registers it
    on the ledger with that role (``account.register``, signed with the operator's key).

    The account has no password: its owner sets one from the login page's "Forgot your
    password?" link, as the email sent to it says. Raises ``PermissionDenied`` (not the grid
    operator) or ``TransactionRejected``: ``bad_participant_role``, ``bad_name``,
    ``bad_email``, ``email_taken``, or what signing and admission answer (the account then
    stays, not on the ledger; the operator registers it again from its console row).
    """
    _require(operator, Role.GRID_OPERATOR, "the grid operator can")
    if role not in OPENED_ROLES:
        raise TransactionRejected("bad_participant_role", MESSAGES["bad_participant_role"])
    if not isinstance(name, str) or not name.strip():
        raise TransactionRejected("bad_name", MESSAGES["bad_name"])
    try:
        user = account_services.user_create(
            email=email,
            name=name,
            password=None,
            role=Role(role),
        )
    except account_services.EmailTaken:
        raise TransactionRejected("email_taken", MESSAGES["email_taken"]) from None
    except ValidationError:
        raise TransactionRejected("bad_email", MESSAGES["bad_email"]) from None
    ledger_services.household_enrol(operator=operator, household=user)
    label = Role(role).label
    body = (
        f"Hello {user.name},\n\nthe grid operator opened your account on the grid platform as "
        f"a {label.lower()}: it is on the ledger with the next block. To log in, choose a "
        'password with the login page\'s "Forgot your password?" link, for this email '
        "address.\n"
    )
    try:
        send_mail("Your account on the grid platform", body, None, [user.email])
    except OSError:  # the account stands; the operator can tell its owner too
        log.warning("welcome email to participant %s not sent", user.pk, exc_info=True)
    return user


# --- the regulators' acts ------------------------------------------------------------------------


def contract_veto(*, regulator: User, contract_id: str, reason: str) -> Transaction:
    """Cancel a contract before its slot starts (``supervision.contract.veto``): both parties'
    margins are released and it never settles."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(
        regulator, "supervision.contract.veto", {"contract": contract_id, "reason": reason}
    )


def contract_curtail(
    *, regulator: User, contract_id: str, energy_wh: int, reason: str
) -> Transaction:
    """Cut a contract to ``energy_wh`` before its slot starts (``supervision.contract.curtail``);
    margins are released pro rata."""
    _require(regulator, Role.REGULATOR, "regulators")
    payload = {
        "contract": contract_id,
        "energy_wh": _whole(energy_wh, "bad_energy"),
        "reason": reason,
    }
    try:
        return _submit(regulator, "supervision.contract.curtail", payload)
    except TransactionRejected as error:
        if error.code != "not_a_curtailment":
            raise
        # The validators' bounds depend on the contract: say them (the code is the contract).
        energy = Contract.objects.filter(id=contract_id).values_list("energy_wh", flat=True)
        before = energy.first()
        if before is None:
            raise
        raise TransactionRejected(
            error.code,
            f"Curtail to between 1 and {before - 1:,} Wh (it is {before:,} Wh); "
            "to cancel it all, veto.",
        ) from None


def review_clear(*, regulator: User, contract_id: str, reason: str) -> Transaction:
    """Let a contract the review rules flagged stand (``supervision.review.clear``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(
        regulator, "supervision.review.clear", {"contract": contract_id, "reason": reason}
    )


def review_decide(
    *,
    regulator: User,
    contract_id: str,
    decision: str,
    reason: str,
    energy_wh: int | None = None,
) -> Transaction:
    """A regulator's decision on a contract under review: ``clear`` it, ``veto`` it or
    ``curtail`` it to ``energy_wh``."""
    _require(regulator, Role.REGULATOR, "regulators")
    if decision == "clear":
        return review_clear(regulator=regulator, contract_id=contract_id, reason=reason)
    if decision == "veto":
        return contract_veto(regulator=regulator, contract_id=contract_id, reason=reason)
    if decision == "curtail":
        return contract_curtail(
            regulator=regulator,
            contract_id=contract_id,
            energy_wh=_whole(energy_wh, "bad_energy"),
            reason=reason,
        )
    raise TransactionRejected("bad_decision", MESSAGES["bad_decision"])


def _until_ms(until: datetime | None) -> int:
    if until is None:
        return 0
    if not isinstance(until, datetime) or until.tzinfo is None:
        raise TransactionRejected("bad_until", MESSAGES["bad_until"])
    return ms_of_datetime(until)


def trading_suspend(
    *, regulator: User, scope: str, reason: str, until: datetime | None = None
) -> Transaction:
    """Suspend trading in ``scope`` (``market`` or ``feeder:<name>``) until resumed, or until
    ``until`` (``supervision.trading.suspend``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    payload = {"scope": scope, "reason": reason, "until": _until_ms(until)}
    return _submit(regulator, "supervision.trading.suspend", payload)


def trading_resume(*, regulator: User, scope: str, reason: str) -> Transaction:
    """End the suspension in force in ``scope`` (``supervision.trading.resume``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(regulator, "supervision.trading.resume", {"scope": scope, "reason": reason})


def account_restrict(*, regulator: User, address: str, reason: str) -> Transaction:
    """Stop a household from trading; its open orders and offers are cancelled, its contracts
    stand (``supervision.account.restrict``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(
        regulator, "supervision.account.restrict", {"address": address, "reason": reason}
    )


def account_reinstate(*, regulator: User, address: str, reason: str) -> Transaction:
    """Lift a household's restriction (``supervision.account.reinstate``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(
        regulator, "supervision.account.reinstate", {"address": address, "reason": reason}
    )


def defaults_reset(*, regulator: User, address: str, reason: str) -> Transaction:
    """Clear a household's unsettled defaults so that it may trade again; its history of
    shortfalls stays (``supervision.defaults.reset``)."""
    _require(regulator, Role.REGULATOR, "regulators")
    return _submit(regulator, "supervision.defaults.reset", {"address": address, "reason": reason})


# --- the grid operator's -------------------------------------------------------------------------


def feeder_publish(
    *,
    operator: User,
    feeder: str,
    export_limit_w: int,
    import_limit_w: int,
    carrier: str = ELECTRICITY,
) -> Transaction:
    """Publish a feeder, or change its limits, in W (``grid.feeder.publish``); new matches are
    tailored to them. With ``carrier`` heat, a segment of the heating network (limits in W
    thermal); feeders and segments share names (``carrier_mismatch`` for a name the other
    network has), ``bad_carrier`` for a carrier the market does not trade."""
    _require(operator, Role.GRID_OPERATOR, "the grid operator can")
    payload: dict[str, Any] = {
        "feeder": feeder,
        "export_limit_w": _whole(export_limit_w, "bad_limit"),
        "import_limit_w": _whole(import_limit_w, "bad_limit"),
    }
    if carrier != ELECTRICITY:  # an electricity feeder's publication is as it always was
        payload["carrier"] = carrier
    return _submit(operator, "grid.feeder.publish", payload)


def grid_state_declare(*, operator: User, scope: str, state: str, reason: str) -> Transaction:
    """Declare the grid (``scope`` ``grid``) or a feeder (``feeder:<name>``) normal, under high
    load or unstable (``grid.state.declare``); while not normal, new trading there stops."""
    _require(operator, Role.GRID_OPERATOR, "the grid operator can")
    payload = {"scope": scope, "state": state, "reason": reason}
    return _submit(operator, "grid.state.declare", payload)


# --- joining: the grid operator approves a household ------------------------------------------


@dataclass(frozen=True)
class Approval:
    """What approving a household sent: its registration (None: it was on the ledger already),
    its feeder's assignment and its first top-up (None: none asked)."""

    registration: Transaction | None
    feeder: Transaction
    top_up: Transaction | None


def household_approve(*, operator: User, household: User, feeder: str, top_up: int = 0) -> Approval:
    """The grid operator approves a household that asked to join: enrols it on the ledger
    (``account.register``), assigns the feeder its connection is on (``grid.feeder.assign``),
    and, if ``top_up`` > 0, issues its first credits (``credit.issue``), in that order of the
    operator's nonces, so that one block can execute all three. A household on the ledger
    already is moved to ``feeder`` (and topped up).

    Raises ``PermissionDenied`` (not the grid operator) or ``TransactionRejected``:
    ``not_household``, ``unknown_feeder`` (not a feeder the operator published), ``bad_amount``,
    or what signing and admission answer. The household is told by email (the projection adds
    a notification once the assignment commits).
    """
    _require(operator, Role.GRID_OPERATOR, "the grid operator can")
    if household.role not in TRADING_ROLES or not household.is_active:
        raise TransactionRejected("not_household", MESSAGES["not_household"])
    published = Feeder.objects.filter(name=feeder, carrier=ELECTRICITY)  # not a heat segment
    if not isinstance(feeder, str) or not published.exists():
        raise TransactionRejected("unknown_feeder", MESSAGES["unknown_feeder"])
    if isinstance(top_up, bool) or not isinstance(top_up, int) or top_up < 0:
        raise TransactionRejected("bad_amount", MESSAGES["bad_amount"])
    address = address_of(household)
    if address is None:
        raise TransactionRejected("no_identity", MESSAGES["no_identity"])
    if top_up:  # before anything is sent: a refused top-up leaves no half-approval behind
        ledger_services.top_up_limits(household=household, address=address, amount=top_up)
    pending = ledger_services.registration_pending(address)
    committed = not pending and ledger_services.is_registered(address)
    registration = None
    if not (pending or committed):
        registration = ledger_services.household_enrol(operator=operator, household=household)
    # Rehearsed only when the household is on the replica: otherwise the replica, which has not
    # seen its registration yet, would answer unknown_account.
    assignment = transaction_sign_and_submit(
        user=operator,
        type="grid.feeder.assign",
        payload={"address": address, "feeder": feeder},
        rehearse=committed,
    )
    credits = None
    if top_up:
        credits = ledger_services.credits_top_up(
            operator=operator, household=household, amount=top_up, registering=True
        )
    _tell_approved(household, address, assignment, feeder, top_up)
    return Approval(registration=registration, feeder=assignment, top_up=credits)


def _tell_approved(
    household: User, address: str, assignment: Transaction, feeder: str, top_up: int
) -> None:
    """The household hears it by email and in its notifications (the supervision page)."""
    credits = f" and credits of {text_from_minor(top_up)}" if top_up else ""
    Notification.objects.get_or_create(
        address=address,
        act=assignment.id,
        defaults={
            "message": f"The grid operator approved your household: your connection is on "
            f"feeder {feeder}{credits}. You are on the ledger with the next block.",
            "created_at": timezone.now(),
        },
    )
    body = (
        f"Hello {household.name},\n\nthe grid operator approved your household: your connection "
        f"is on feeder {feeder}{credits}. Within a minute it is on the ledger; then register "
        "your meter and place your first order, from your dashboard.\n"
    )
    try:
        send_mail("Your household is approved", body, None, [household.email])
    except OSError:  # the approval stands; the dashboard and its notification say it too
        log.warning("approval email to household %s not sent", household.pk, exc_info=True)


# --- notifications -------------------------------------------------------------------------------


def notifications_mark_read(*, user: User, ids: list[int] | None = None) -> int:
    """Mark the household's notifications ``ids`` (None: all of them) read; ids that are not
    its own are passed over. Returns how many changed."""
    _require(user, Role.HOUSEHOLD, "households")
    mine = Notification.objects.filter(address=address_of(user) or "-", read=False)
    if ids is not None:
        mine = mine.filter(id__in=ids)
    with transaction.atomic():
        changed: int = mine.update(read=True)
    return changed


# --- the consoles' alerts ------------------------------------------------------------------------


class AlertRefused(DomainError):
    """An acknowledgement refused (``alert_acknowledged``, ``alert_changed``); nothing saved."""


def alert_acknowledge(
    *,
    user: User,
    desk: str,
    key: str,
    fingerprint: str | None = None,
    now: datetime | None = None,
) -> AlertAcknowledgement:
    """Acknowledge the alert ``key`` for ``desk`` (``selectors.DESK_ROLES``; else
    ``PermissionDenied``) as it stands now: it moves to the desk's acknowledged list until it
    gets worse or comes back (``selectors.covers``).

    Refused, saving nothing: ``unknown_alert`` (404) when no alert has that key now,
    ``alert_changed`` when ``fingerprint`` (what the page showed) is given and is not the
    alert's now (it changed under the reader's eyes), ``alert_acknowledged`` when the desk's
    acknowledgement covers it already. Site data only: nothing is signed or sent to the
    ledger. Two users of one desk acknowledging at once may both append a row (nothing is
    locked: the rows only record who looked); the latest counts, and both cover the alert.
    """
    desk = selectors.desk_for(user=user, desk=desk)
    inbox = selectors.alert_inbox(user=user, desk=desk, now=now)
    found = [item for item in (*inbox.open, *inbox.acknowledged) if item.alert.key == key]
    if not found:
        raise NotFoundError(MESSAGES["unknown_alert"], code="unknown_alert")
    [item] = found
    alert = item.alert
    if fingerprint is not None and fingerprint != alert.fingerprint:
        raise AlertRefused(MESSAGES["alert_changed"], code="alert_changed")
    if item.acknowledgement is not None:
        raise AlertRefused(MESSAGES["alert_acknowledged"], code="alert_acknowledged")
    with transaction.atomic(durable=True):
        acknowledgement: AlertAcknowledgement = AlertAcknowledgement.objects.create(
            desk=desk,
            key=alert.key,
            fingerprint=alert.fingerprint,
            slots=alert.slots,
            level=alert.level,
            last_slot=alert.last_slot,
            text=alert.text,
            by=user,
            at=now or timezone.now(),
        )
    log.info("alert %s acknowledged at the %s desk by %s", alert.key, desk, user.pk)
    return acknowledgement
