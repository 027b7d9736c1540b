"""Factories for the tests, in one place. Accounts are made by the services, as in production;
the market's read models (contracts, settlement lines) are written directly, as the projection
writes them, for tests of what reads them."""

from __future__ import annotations

from datetime import timedelta

import factory

from gridplatform.accounts import services
from gridplatform.accounts.models import HouseholdKind, Role, User
from ledger.projection import ms_of_datetime
from market.models import Contract, SettlementLine

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"person{n}@test.example")
    role = Role.HOUSEHOLD
    household_kind = factory.LazyAttribute(
        lambda o: HouseholdKind.PROSUMER if o.role == Role.HOUSEHOLD else ""
    )
    password = PASSWORD

    @classmethod
    def _create(cls, model_class: type[User], *args: object, **kwargs: object) -> User:
        return services.user_create(**kwargs)  # type: ignore[arg-type]


class ContractFactory(factory.django.DjangoModelFactory):
    """A contract read model; give it ``slot``, ``seller`` and ``buyer`` (addresses)."""

    class Meta:
        model = Contract

    id = factory.LazyAttributeSequence(lambda o, n: f"{ms_of_datetime(o.slot)}-{n}")
    kind = "order"
    index = factory.Sequence(lambda n: n)
    energy_wh = 1_000
    price = 120
    network_fee = 0
    penalty_bps = 2_000
    escrow = 0
    deposit = 0
    seller_tx = "a" * 64
    buyer_tx = "b" * 64
    tx = "c" * 64
    height = 1
    made_at = factory.LazyAttribute(lambda o: o.slot - timedelta(hours=1))


class SettlementLineFactory(factory.django.DjangoModelFactory):
    """How a contract settled (a read model); give it ``contract`` and ``delivered_wh``."""

    class Meta:
        model = SettlementLine

    slot = factory.LazyAttribute(lambda o: o.contract.slot)
    seller = factory.LazyAttribute(lambda o: o.contract.seller)
    buyer = factory.LazyAttribute(lambda o: o.contract.buyer)
    energy_wh = factory.LazyAttribute(lambda o: o.contract.energy_wh)
    export_wh = factory.LazyAttribute(lambda o: o.delivered_wh)
    paid = 0
    fee = 0
    penalty = 0
    escrow_released = 0
    deposit_released = 0
    height = 2
    settled_at = factory.LazyAttribute(lambda o: o.contract.slot + timedelta(minutes=30))
