"""Factories for the tests, in one place. Accounts are made by the services, as in production."""

from __future__ import annotations

import factory

from gridplatform.accounts import services
from gridplatform.accounts.models import HouseholdKind, Role, User

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
