from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    HOUSEHOLD = "household", "Household"
    STORAGE_PROVIDER = "storage_provider", "Storage provider"
    RETAILER = "retailer", "Retailer (energy seller)"
    GRID_OPERATOR = "grid_operator", "Grid operator"
    REGULATOR = "regulator", "Regulator"
    ADMIN = "admin", "Administrator"


class HouseholdKind(models.TextChoices):
    CONSUMER = "consumer", "Consumer"
    PROSUMER = "prosumer", "Prosumer (rooftop PV)"
    STORAGE = "storage", "Storage owner (PV and battery)"


# The participants: on the ledger under the same role name (``ledger.application``), registered
# there by the grid operator. Households and storage providers trade for themselves; a retailer
# trades for the households that granted it.
PARTICIPANT_ROLES = (Role.HOUSEHOLD, Role.STORAGE_PROVIDER, Role.RETAILER)
TRADING_ROLES = (Role.HOUSEHOLD, Role.STORAGE_PROVIDER)

# Roles that watch every account: the grid operator sees all balances and changes none.
SUPERVISORY_ROLES = (Role.GRID_OPERATOR, Role.REGULATOR, Role.ADMIN)


class UserManager(BaseUserManager["User"]):
    """Only for Django's own commands (createsuperuser); everything else uses services."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> User:
        fields.update(role=Role.ADMIN, is_staff=True, is_superuser=True)
        fields.setdefault("name", "Administrator")
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.HOUSEHOLD)
    household_kind = models.CharField(
        max_length=20, choices=HouseholdKind.choices, blank=True, default=""
    )
    connection_point = models.CharField(
        max_length=200,
        blank=True,
        help_text="Where a household is connected: its street address or the connection point's "
        "number on its electricity bill; the grid operator finds its feeder from it.",
    )
    display_name = models.CharField(
        max_length=40,
        blank=True,
        help_text="The name a household chose to show its trading counterparties; empty: they "
        "see it as “a neighbour on <its feeder>”.",
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="The IANA zone the pages show times in; empty: the site's (TIME_ZONE).",
    )
    is_active = models.BooleanField(default=True)
    email_confirmed = models.BooleanField(
        default=True,
        help_text="False while a household that registered itself has not opened the link mailed "
        "to it: the account cannot log in and no one else sees it.",
    )
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                name="household_kind_iff_household",
                condition=(
                    models.Q(role=Role.HOUSEHOLD) & ~models.Q(household_kind="")
                    | ~models.Q(role=Role.HOUSEHOLD) & models.Q(household_kind="")
                ),
            ),
            models.CheckConstraint(name="role_is_known", condition=models.Q(role__in=Role.values)),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def is_household(self) -> bool:
        return self.role == Role.HOUSEHOLD

    @property
    def watches_accounts(self) -> bool:
        return self.role in SUPERVISORY_ROLES


class Identity(models.Model):
    """An account's Ed25519 identity: its public key, its address, and its sealed private key.

    ``sealed_private_key`` is empty for an account that holds its own key: the platform then
    holds nothing that can sign for it.
    """

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="identity")
    public_key = models.CharField(max_length=64, unique=True)
    address = models.CharField(max_length=50, unique=True)
    sealed_private_key = models.BinaryField(null=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.CheckConstraint(
                name="public_key_is_64_hex", condition=models.Q(public_key__regex=r"^[0-9a-f]{64}$")
            ),
            models.CheckConstraint(
                name="address_is_50_hex", condition=models.Q(address__regex=r"^[0-9a-f]{50}$")
            ),
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def is_custodial(self) -> bool:
        return self.sealed_private_key is not None


class ApiToken(models.Model):
    """A token an account made on its settings page, for the REST API.

    Only the SHA-256 digest of the token is stored, never the token: it is shown once, when it
    is made. ``prefix`` (its first 8 characters) lets the holder tell tokens apart. A revoked
    token stays, with ``revoked_at``, as a record of what existed.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="api_token_digest_is_64_hex",
                condition=models.Q(digest__regex=r"^[0-9a-f]{64}$"),
            ),
            models.CheckConstraint(name="api_token_name_not_empty", condition=~models.Q(name="")),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
