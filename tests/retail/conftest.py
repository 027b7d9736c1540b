"""Named actors on a network (``tests.flexibility.support``): Ada, a household who grants; Ben,
the retailer she grants (a retailer account on the site; on this network's ledger, whose genesis
leaves ``market.retailers`` at 0, any account may be named); Cat, a household who granted
nobody; and the grid operator. All on feeder north with credits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import Role, User
from tests.factories import UserFactory
from tests.flexibility.support import ADA, BEN, CAT, History, network, user_with_key
from tests.ledger.site import Site


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    site = network(settings, tmp_path)
    History(site).households(ADA, BEN, CAT)
    return site


@pytest.fixture
def ada(site: Site) -> User:
    return user_with_key(UserFactory(name="Ada Sun", email="ada@test.example"), ADA)


@pytest.fixture
def ben(site: Site) -> User:
    user = UserFactory(name="Ben Retail", email="ben@test.example", role=Role.RETAILER)
    return user_with_key(user, BEN)


@pytest.fixture
def cat(site: Site) -> User:
    return user_with_key(UserFactory(name="Cat Other", email="cat@test.example"), CAT)
