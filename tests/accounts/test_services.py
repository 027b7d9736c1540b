from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from gridplatform.accounts import selectors, services
from gridplatform.accounts.models import HouseholdKind, Identity, Role, User
from ledger import identity
from tests.factories import UserFactory


def test_it_gives_a_registered_household_a_sealed_identity(db: None) -> None:
    user = services.household_register(
        name="Chiara Rossi",
        email="Chiara@Example.org",
        password="a-long-and-unusual-passphrase",
        household_kind=HouseholdKind.STORAGE,
    )
    assert user.email == "chiara@example.org"
    assert (user.role, user.household_kind) == (Role.HOUSEHOLD, HouseholdKind.STORAGE)
    ident = user.identity
    assert identity.validate_address(ident.address) == ident.address
    assert identity.address_from_public_key(ident.public_key) == ident.address
    pair = services.identity_unseal(identity_=ident)
    assert pair.public_key_hex == ident.public_key
    assert pair.private_key not in bytes(ident.sealed_private_key)


@pytest.mark.parametrize("role", [Role.GRID_OPERATOR, Role.REGULATOR])
def test_it_gives_operators_and_regulators_identities(db: None, role: Role) -> None:
    user = UserFactory(role=role)
    assert user.household_kind == ""
    assert Identity.objects.get(user=user).address == user.identity.address


def test_it_gives_every_account_its_own_key(db: None) -> None:
    users = UserFactory.create_batch(5)
    assert len({u.identity.public_key for u in users}) == 5
    assert len({u.identity.address for u in users}) == 5


def test_it_refuses_a_second_account_with_the_same_email(prosumer: User) -> None:
    with pytest.raises(services.EmailTaken):
        UserFactory(email=prosumer.email.upper())
    assert User.objects.filter(email=prosumer.email).count() == 1


def test_it_refuses_a_weak_password_and_creates_nothing(db: None) -> None:
    with pytest.raises(ValidationError):
        UserFactory(email="weak@test.example", password="password")
    assert not User.objects.filter(email="weak@test.example").exists()
    assert Identity.objects.count() == 0


def test_it_refuses_a_household_without_a_kind(db: None) -> None:
    with pytest.raises(ValidationError):
        UserFactory(role=Role.HOUSEHOLD, household_kind="")
    assert User.objects.count() == 0


def test_it_refuses_to_sign_for_an_account_that_holds_its_own_key(prosumer: User) -> None:
    Identity.objects.filter(pk=prosumer.identity.pk).update(sealed_private_key=None)
    prosumer.identity.refresh_from_db()
    with pytest.raises(services.AccountError):
        services.identity_unseal(identity_=prosumer.identity)


def test_it_shows_the_operator_every_account(
    grid_operator: User, regulator: User, prosumer: User, consumer: User
) -> None:
    seen = set(selectors.account_list(user=grid_operator))
    assert seen == {grid_operator, regulator, prosumer, consumer}
    assert set(selectors.account_list(user=regulator)) == seen


def test_it_shows_a_household_only_itself(prosumer: User, consumer: User) -> None:
    assert list(selectors.account_list(user=prosumer)) == [prosumer]


def test_it_hides_another_households_account_as_not_found(prosumer: User, consumer: User) -> None:
    assert selectors.access_account(user=prosumer, id=prosumer.pk) == prosumer
    with pytest.raises(Http404):
        selectors.access_account(user=prosumer, id=consumer.pk)
