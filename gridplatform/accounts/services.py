"""Writes to accounts and identities. Each service is one outermost transaction."""

from __future__ import annotations

import hashlib
import logging
import secrets
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from gridplatform.accounts.events import accounts_changed_on_commit
from gridplatform.accounts.models import ApiToken, HouseholdKind, Identity, Role, User
from gridplatform.errors import DomainError
from ledger import identity

log = logging.getLogger(__name__)

# Active API tokens one account may hold at once.
API_TOKEN_LIMIT = 20
API_TOKEN_PREFIX_LENGTH = 8
# last_used_at is written at most this often per token, not on every request.
API_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


class AccountError(DomainError):
    """A domain error with a stable code, shown to the user as its message."""

    code = "account_error"


class EmailTaken(AccountError):
    code = "email_taken"


class TooManyApiTokens(AccountError):
    code = "too_many_tokens"


class InvalidApiToken(AccountError):
    code = "authentication_failed"
    status_code = 401


def key_ring() -> identity.KeyRing:
    """The key-encryption keys of this deployment, read from settings at call time."""
    return identity.KeyRing(
        settings.KEY_ENCRYPTION_KEY, retired=settings.RETIRED_KEY_ENCRYPTION_KEYS
    )


def user_create(
    *,
    email: str,
    name: str,
    password: str | None,
    role: Role,
    household_kind: HouseholdKind | str = "",
    connection_point: str = "",
    time_zone: str = "",
) -> User:
    """Create an account with a fresh Ed25519 identity whose private key is sealed at rest.

    Every role but admin gets an identity. The password is validated by the caller's form (or
    here when given); ``None`` makes an account that cannot log in until a password is set.
    """
    email = User.objects.normalize_email(email).strip().lower()
    with transaction.atomic(durable=True):
        if User.objects.filter(email__iexact=email).exists():
            raise EmailTaken("An account with this email address already exists.")
        user = User(
            email=email,
            name=name.strip(),
            role=role,
            household_kind=household_kind,
            connection_point=connection_point.strip(),
            time_zone=time_zone,
        )
        if password is None:
            user.set_unusable_password()
        else:
            validate_password(password, user)
            user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save()
        if role != Role.ADMIN:
            _identity_create(user=user)
    return user


def _identity_create(*, user: User) -> Identity:
    pair = identity.KeyPair.generate()
    address = pair.address
    created = Identity.objects.create(
        user=user,
        public_key=pair.public_key_hex,
        address=address,
        sealed_private_key=key_ring().seal(pair.private_key, address=address),
    )
    accounts_changed_on_commit(address=address)
    return created


class BadTimeZone(AccountError):
    code = "bad_time_zone"


def time_zones() -> list[str]:
    """The zones a user may pick: the IANA database's, by name."""
    return sorted(zoneinfo.available_timezones())


def time_zone_set(*, user: User, zone: str) -> User:
    """Show ``user`` times in ``zone`` (an IANA name; "" for the site's). Raises
    ``BadTimeZone`` for any other text, changing nothing."""
    if zone and zone not in zoneinfo.available_timezones():
        raise BadTimeZone("That is not a time zone: pick one from the list, e.g. Europe/Vienna.")
    user.time_zone = zone
    user.save(update_fields=["time_zone"])
    return user


class BadDisplayName(AccountError):
    code = "bad_display_name"


DISPLAY_NAME_MAX = 40


def display_name_set(*, user: User, name: str) -> User:
    """The name ``user`` shows its trading counterparties ("" to show none: they then see "a
    neighbour on <its feeder>"). Raises ``BadDisplayName``, changing nothing, for a name too
    long or with control characters."""
    name = " ".join(name.split())
    if len(name) > DISPLAY_NAME_MAX:
        raise BadDisplayName(f"A display name has at most {DISPLAY_NAME_MAX} characters.")
    if any(not character.isprintable() for character in name):
        raise BadDisplayName("A display name is letters, digits, spaces and punctuation only.")
    user.display_name = name
    user.save(update_fields=["display_name"])
    return user


def household_register(
    *,
    name: str,
    email: str,
    password: str,
    household_kind: HouseholdKind | str,
    connection_point: str = "",
    time_zone: str = "",
) -> User:
    """A household registers itself, saying where it is connected; it then waits for the grid
    operator's approval (``supervision.services.household_approve``). Operators and regulators
    are made by an administrator."""
    zone = time_zone if time_zone in zoneinfo.available_timezones() else ""  # the browser's
    return user_create(
        connection_point=connection_point,
        time_zone=zone,
        email=email,
        name=name,
        password=password,
        # Without Django's stubs, mypy sees a choices member as its (value, label) tuple.
        role=Role.HOUSEHOLD,  # type: ignore[arg-type]
        household_kind=household_kind,
    )


REGISTRATION_SALT = "gridplatform.accounts.registration"


class BadRegistrationLink(AccountError):
    code = "bad_registration_link"


def registration_start(
    *,
    name: str,
    email: str,
    password: str,
    household_kind: HouseholdKind | str,
    site_url: str,
    connection_point: str = "",
    time_zone: str = "",
) -> None:
    """A household asks to register: mail ``email`` a link that finishes it
    (``registration_confirm``), valid for ``REGISTRATION_CONFIRM_TIMEOUT`` seconds.

    The caller's answer is the same whether or not the address has an account, so registering
    tells no one which addresses do: an address with a confirmed account is mailed a note saying
    so (with links to log in and to reset the password) instead, after the same password hashing
    a new account costs. A registration not yet confirmed is replaced by the newer one, whose link
    alone then works. ``site_url`` is the site's address for the links (``https://host``).
    """
    email = User.objects.normalize_email(email).strip().lower()
    zone = time_zone if time_zone in zoneinfo.available_timezones() else ""  # the browser's
    try:
        with transaction.atomic(durable=True):
            user = User.objects.select_for_update().filter(email__iexact=email).first()
            if user is not None and user.email_confirmed:
                make_password(password)  # the work a new account costs: the time tells nothing
                template, context = "registration/already_registered_email.txt", {"user": user}
            else:
                user = user or User(email=email, role=Role.HOUSEHOLD)
                user.name = name.strip()
                user.household_kind = household_kind
                user.connection_point = connection_point.strip()
                user.time_zone = zone
                user.is_active = False
                user.email_confirmed = False
                user.date_joined = timezone.now()  # the link's age: see registrations_forget
                validate_password(password, user)
                user.set_password(password)
                user.full_clean(exclude=["password"])
                user.save()
                token = signing.dumps([user.pk, _registration_digest(user)], salt=REGISTRATION_SALT)
                link = reverse("register-confirm", args=[token])
                template, context = "registration/confirm_email.txt", {"link": link, "user": user}
    except IntegrityError:
        return  # the same address registered at this instant: that one's link is on its way
    hours = settings.REGISTRATION_CONFIRM_TIMEOUT // 3600
    body = render_to_string(template, context | {"site_url": site_url, "hours": hours})
    subject, _, body = body.partition("\n\n")
    try:
        send_mail(subject.strip(), body, None, [email])
    except OSError:  # a mail server down: the household registers again later
        log.warning("registration email not sent", exc_info=True)


def _registration_digest(user: User) -> str:
    """What a confirmation link binds: the account's password, address and state, so that a link
    stops working once used, or once a newer registration replaced the details."""
    state = f"{user.pk}|{user.email}|{user.password}|{user.email_confirmed}|{user.is_active}"
    return salted_hmac(REGISTRATION_SALT, state, algorithm="sha256").hexdigest()


def registration_pending(*, token: str) -> User:
    """The not yet confirmed account a confirmation link is for. Raises ``BadRegistrationLink``
    for a link that is damaged, expired, used or replaced by a newer registration."""
    try:
        pk, digest = signing.loads(
            token, salt=REGISTRATION_SALT, max_age=settings.REGISTRATION_CONFIRM_TIMEOUT
        )
    except signing.SignatureExpired:
        raise BadRegistrationLink(
            "This link has expired. Register again to get a new one."
        ) from None
    except (signing.BadSignature, ValueError, TypeError):
        raise BadRegistrationLink(
            "This link is not one we sent: copy the whole link from the email."
        ) from None
    user = (
        User.objects.filter(pk=pk, email_confirmed=False).first() if isinstance(pk, int) else None
    )
    if user is None or not constant_time_compare(str(digest), _registration_digest(user)):
        raise BadRegistrationLink(
            "This link has been used, or a newer registration replaced it: log in, or use the "
            "link in the newest email."
        )
    return user


def registration_confirm(*, token: str) -> User:
    """Finish a registration: the account becomes active, with its own identity, and the grid
    operator sees it waiting for approval. Raises ``BadRegistrationLink`` as
    ``registration_pending`` does, changing nothing."""
    with transaction.atomic(durable=True):
        user = registration_pending(token=token)
        user = User.objects.select_for_update().get(pk=user.pk)
        registration_pending(token=token)  # still valid under the lock: confirmed once only
        user.is_active = True
        user.email_confirmed = True
        user.save(update_fields=["is_active", "email_confirmed"])
        _identity_create(user=user)
    return user


def registrations_forget() -> int:
    """Delete the registrations whose link expired unopened; run hourly by beat. Such an account
    never had an identity, so nothing else refers to it. Returns how many were deleted."""
    expired = timezone.now() - timedelta(seconds=settings.REGISTRATION_CONFIRM_TIMEOUT)
    deleted, _ = User.objects.filter(email_confirmed=False, date_joined__lt=expired).delete()
    return deleted


def identity_unseal(*, identity_: Identity) -> identity.KeyPair:
    """The key pair of a custodial identity, for signing on the account's behalf."""
    if identity_.sealed_private_key is None:
        raise AccountError("This account holds its own key; the platform cannot sign for it.")
    return key_ring().unseal(identity_.sealed_private_key, address=identity_.address)


def key_encryption_key_rotate() -> int:
    """Re-seal every custodial private key under the current key-encryption key.

    Precondition: the new key is ``KEY_ENCRYPTION_KEY`` and every key still in use is listed in
    ``RETIRED_KEY_ENCRYPTION_KEYS``. Each key is unsealed and checked against its address before
    it is re-sealed, all in one transaction: a key that does not open aborts the whole rotation
    and nothing changes. Returns how many keys were re-sealed.
    """
    ring = key_ring()
    count = 0
    with transaction.atomic(durable=True):
        rows = (
            Identity.objects.select_for_update()
            .filter(sealed_private_key__isnull=False)
            .order_by("id")
        )
        for row in rows:
            if ring.is_current(row.sealed_private_key):
                continue
            pair = ring.unseal(row.sealed_private_key, address=row.address)
            row.sealed_private_key = ring.seal(pair.private_key, address=row.address)
            row.save(update_fields=["sealed_private_key"])
            count += 1
    return count


# --- API tokens ------------------------------------------------------------------------------


def api_token_digest(token: str) -> str:
    """The stored form of a token: SHA-256 of its UTF-8 bytes, as 64 lowercase hex.

    A token carries 256 random bits, so a plain (unsalted, fast) hash is enough: nobody can
    guess a token from its digest, and a lookup by digest leaks nothing through its timing.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Make an API token for ``user``; return it and the plaintext token, shown only once.

    Refuses an empty name (``AccountError``) and more than ``API_TOKEN_LIMIT`` active tokens
    per account (``TooManyApiTokens``). The account row is locked so that two requests at once
    cannot both pass the limit.
    """
    name = name.strip()
    if not name:
        raise AccountError("Give the token a name, so that you can tell it from your others.")
    if len(name) > 100:
        raise AccountError("A token name has at most 100 characters.")
    token = secrets.token_urlsafe(32)
    with transaction.atomic(durable=True):
        User.objects.select_for_update().get(pk=user.pk)
        if user.api_tokens.filter(revoked_at__isnull=True).count() >= API_TOKEN_LIMIT:
            raise TooManyApiTokens(
                f"An account holds at most {API_TOKEN_LIMIT} active tokens; revoke one first."
            )
        api_token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=token[:API_TOKEN_PREFIX_LENGTH],
            digest=api_token_digest(token),
        )
    return api_token, token


def api_token_revoke(*, user: User, token_id: int) -> ApiToken:
    """Revoke ``user``'s token ``token_id`` (Http404 if it is not theirs); idempotent."""
    with transaction.atomic(durable=True):
        try:
            api_token = ApiToken.objects.select_for_update().get(pk=token_id, user=user)
        except ApiToken.DoesNotExist:
            raise Http404("No such token.") from None
        if api_token.revoked_at is None:
            api_token.revoked_at = timezone.now()
            api_token.save(update_fields=["revoked_at"])
    return api_token


def api_tokens_revoke_all(*, user: User) -> int:
    """Revoke every active API token of ``user`` (its password changed); how many."""
    return int(
        ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def api_token_authenticate(*, token: str) -> tuple[User, ApiToken]:
    """The active account holding ``token``, or ``InvalidApiToken``; notes when it was used.

    An unknown, revoked or malformed token, or one of a deactivated account, all give the same
    error, so that a caller learns nothing about which tokens exist.
    """
    if not token or len(token) > 200:
        raise InvalidApiToken("Invalid or revoked token.")
    api_token = (
        ApiToken.objects.select_related("user")
        .filter(digest=api_token_digest(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_token is None:
        raise InvalidApiToken("Invalid or revoked token.")
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > API_TOKEN_TOUCH_INTERVAL:
        # A plain UPDATE, not a locking read: concurrent requests may both write, harmlessly.
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
    return api_token.user, api_token
