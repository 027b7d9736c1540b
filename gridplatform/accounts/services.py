"""Writes to accounts and identities. Each service is one outermost transaction."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from gridplatform import identity
from gridplatform.accounts.events import accounts_changed_on_commit
from gridplatform.accounts.models import HouseholdKind, Identity, Role, User


class AccountError(Exception):
    """A domain error with a stable code, shown to the user as its message."""

    code = "account_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EmailTaken(AccountError):
    code = "email_taken"


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
) -> User:
    """Create an account with a fresh Ed25519 identity whose private key is sealed at rest.

    Every role but admin gets an identity. The password is validated by the caller's form (or
    here when given); ``None`` makes an account that cannot log in until a password is set.
    """
    email = User.objects.normalize_email(email).strip().lower()
    with transaction.atomic(durable=True):
        if User.objects.filter(email__iexact=email).exists():
            raise EmailTaken("An account with this email address already exists.")
        user = User(email=email, name=name.strip(), role=role, household_kind=household_kind)
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


def household_register(
    *, name: str, email: str, password: str, household_kind: HouseholdKind | str
) -> User:
    """A household registers itself; operators and regulators are made by an administrator."""
    return user_create(
        email=email,
        name=name,
        password=password,
        role=Role.HOUSEHOLD,
        household_kind=household_kind,
    )


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
