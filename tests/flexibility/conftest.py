"""Named actors on a network with history (``tests.flexibility.support``), feeders north and south
published: the grid operator,
Ada (enrolled, with a baseline of 3,000 Wh imported from her latest settled slot), Ben (on the
same feeder, not enrolled, with a battery meter) and Cat (on another feeder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import User
from tests.factories import UserFactory
from tests.flexibility.support import (
    ADA,
    ADA_METER,
    BATTERY,
    BEN,
    BEN_METER,
    CAT,
    History,
    network,
    user_with_key,
)
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site, give_issuer_key


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    site = network(settings, tmp_path)
    history = History(site)
    history.publish("north", "south")
    history.households(ADA, BEN)
    history.households(CAT, feeder="south")
    history.commit([history.sign(OPERATOR, "credit.issue", to=OPERATOR.address, amount=10_000)])
    history.meter(ADA, ADA_METER, "ada-main")
    history.meter(BEN, BEN_METER, "ben-main")
    history.meter(BEN, BATTERY, "ben-battery", kind="battery")
    history.commit([history.sign(ADA, "market.flexibility.enroll")])
    history.settle(history.first_slot(), {"ada-main": (ADA_METER, 1_000, 0)})
    return site


@pytest.fixture
def operator(site: Site, grid_operator: User) -> User:
    give_issuer_key(grid_operator)
    grid_operator.refresh_from_db()
    return grid_operator


@pytest.fixture
def ada(site: Site) -> User:
    return user_with_key(UserFactory(name="Ada Sun", email="ada@test.example"), ADA)


@pytest.fixture
def ben(site: Site) -> User:
    return user_with_key(UserFactory(name="Ben Store", email="ben@test.example"), BEN)


@pytest.fixture
def cat(site: Site) -> User:
    return user_with_key(UserFactory(name="Cat South", email="cat@test.example"), CAT)
