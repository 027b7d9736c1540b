from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from gridplatform.accounts import services
from gridplatform.accounts.models import Identity, Role, User
from gridplatform.demo import DEMO_PASSWORD
from ledger import identity
from tests.factories import UserFactory

KEK_OLD = identity.generate_key_encryption_key()
KEK_NEW = identity.generate_key_encryption_key()


def test_it_creates_a_grid_operator_from_the_command_line(
    db: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPERATOR_PASSWORD", "the-operators-long-passphrase")
    call_command(
        "create_account",
        "--role",
        "grid_operator",
        "--email",
        "ops@grid.example",
        "--name",
        "Feeder Operations",
        "--password-env",
        "OPERATOR_PASSWORD",
    )
    user = User.objects.get(email="ops@grid.example")
    assert user.role == Role.GRID_OPERATOR
    assert user.check_password("the-operators-long-passphrase")
    assert f"address {user.identity.address}" in capsys.readouterr().out


def test_it_refuses_a_household_account_without_a_kind(db: None) -> None:
    with pytest.raises(CommandError, match="--household-kind is required"):
        call_command(
            "create_account",
            "--role",
            "household",
            "--email",
            "h@x.example",
            "--name",
            "H",
            "--password-env",
            "UNSET_VARIABLE",
        )
    assert User.objects.count() == 0


def test_it_refuses_a_taken_email_on_the_command_line(
    regulator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW", "another-long-passphrase")
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "create_account",
            "--role",
            "regulator",
            "--email",
            regulator.email,
            "--name",
            "Second",
            "--password-env",
            "PW",
        )
    assert User.objects.filter(role=Role.REGULATOR).count() == 1


def test_it_rotates_the_key_encryption_key_without_losing_a_key(
    db: None, settings: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.KEY_ENCRYPTION_KEY = KEK_OLD
    settings.RETIRED_KEY_ENCRYPTION_KEYS = []
    users = UserFactory.create_batch(4)
    before = {u.identity.address: services.identity_unseal(identity_=u.identity) for u in users}
    sealed_before = dict(Identity.objects.values_list("address", "sealed_private_key"))

    settings.KEY_ENCRYPTION_KEY = KEK_NEW
    settings.RETIRED_KEY_ENCRYPTION_KEYS = [KEK_OLD]
    call_command("rotate_key_encryption_key")
    assert "re-sealed 4 private keys" in capsys.readouterr().out

    only_new = identity.KeyRing(KEK_NEW)
    for row in Identity.objects.all():
        assert bytes(row.sealed_private_key) != bytes(sealed_before[row.address])
        opened = only_new.unseal(row.sealed_private_key, address=row.address)
        assert opened.private_key == before[row.address].private_key
    call_command("rotate_key_encryption_key")
    assert "re-sealed 0 private keys" in capsys.readouterr().out


def test_it_changes_nothing_when_a_key_does_not_open(
    db: None, settings: pytest.FixtureRequest
) -> None:
    settings.KEY_ENCRYPTION_KEY = KEK_OLD
    UserFactory.create_batch(2)
    sealed_before = dict(Identity.objects.values_list("address", "sealed_private_key"))
    settings.KEY_ENCRYPTION_KEY = KEK_NEW
    settings.RETIRED_KEY_ENCRYPTION_KEYS = []  # the operator forgot to keep the old key
    with pytest.raises(identity.UnknownKeyEncryptionKey):
        call_command("rotate_key_encryption_key")
    after = dict(Identity.objects.values_list("address", "sealed_private_key"))
    assert {a: bytes(s) for a, s in after.items()} == {
        a: bytes(s) for a, s in sealed_before.items()
    }


def test_it_prints_a_fresh_key_encryption_key(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("rotate_key_encryption_key", "--generate")
    call_command("rotate_key_encryption_key", "--generate")
    first, second = capsys.readouterr().out.split()
    assert first != second
    assert len(first) == 44
    pair = identity.KeyPair.generate()
    sealed = identity.KeyRing(first).seal(pair.private_key, address=pair.address)
    assert identity.KeyRing(first).unseal(sealed, address=pair.address) == pair


def test_it_creates_the_demo_community_once(db: None) -> None:
    call_command("create_demo_community")
    call_command("create_demo_community")
    roles = Counter(User.objects.values_list("role", flat=True))
    assert roles == {
        Role.HOUSEHOLD: 30,
        Role.GRID_OPERATOR: 1,
        Role.REGULATOR: 1,
        Role.RETAILER: 1,
    }
    kinds = Counter(
        User.objects.filter(role=Role.HOUSEHOLD).values_list("household_kind", flat=True)
    )
    assert kinds == {"prosumer": 20, "consumer": 6, "storage": 4}
    assert Identity.objects.count() == 33  # every account has its key, the retailer's too
    operator = User.objects.get(role=Role.GRID_OPERATOR)
    assert operator.check_password(DEMO_PASSWORD)
