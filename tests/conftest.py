from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gridplatform import embedded_redis
from gridplatform.accounts.models import HouseholdKind, Role, User
from tests.factories import UserFactory

# The test run is a system of its own: the validators and workers it starts share its Redis.
embedded_redis.own_system()
# The servers the browser tests start log in hundreds of times from 127.0.0.1; the per-address
# limit of the login forms is tested in-process (tests/accounts/test_login_limits.py).
os.environ.setdefault("FORM_THROTTLE_ADDRESS", "1000000/min")


@pytest.fixture(autouse=True)
def _no_api_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The counters live in the shared Redis, keyed by user id, and test databases reuse ids: a
    # large API suite would trip production's limits. The throttling test sets its own rates.
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {
            "user": "1000000/min",
            "anon": "1000000/min",
            "meter": "1000000/min",
            "address": "1000000/min",
        },
    )


@pytest.fixture
def throttle_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The rate limits' clock stopped 20 s into a window, so that a test's requests all fall in
    one window (gridplatform.throttling counts per window); the time it shows."""
    from gridplatform.throttling import AtomicRateMixin

    now = 1_800_000_020.0
    monkeypatch.setattr(AtomicRateMixin, "timer", staticmethod(lambda: now))
    return now


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    # Argon2 is what production uses (tested in test_settings); in-process tests use a fast
    # hasher so that dozens of accounts cost milliseconds. Servers started by tests use Argon2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_local_network(
    settings: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A checkout that ran `make run` has the demo's network under var/ledger (5-minute slots,
    # its own genesis): no test may read it. A test that needs a network points LEDGER_DIR at
    # its own (tests.ledger.site.use_network).
    empty = tmp_path_factory.mktemp("no-network")
    settings.LEDGER_DIR = empty
    settings.LEDGER_STORE_URL = f"sqlite:///{empty}/store-{{node}}.sqlite3"


@pytest.fixture
def tasks_inline() -> Iterator[None]:
    """Run the tasks the code under test queues for the site's worker in this process, at once.
    Tests of the worker itself start a real one (``tests.ledger.live``)."""
    from gridplatform.celery import app

    names = ("task_always_eager", "task_eager_propagates")
    before = {name: app.conf[name] for name in names}
    app.conf.update(dict.fromkeys(names, True))
    yield
    app.conf.update(before)


@pytest.fixture
def prosumer(db: None) -> User:
    return UserFactory(name="Ada Seller", household_kind=HouseholdKind.PROSUMER)


@pytest.fixture
def consumer(db: None) -> User:
    return UserFactory(name="Ben Buyer", household_kind=HouseholdKind.CONSUMER)


@pytest.fixture
def outsider(db: None) -> User:
    return UserFactory(name="Olga Outsider", household_kind=HouseholdKind.CONSUMER)


@pytest.fixture
def grid_operator(db: None) -> User:
    return UserFactory(name="Grid Operator", role=Role.GRID_OPERATOR)


@pytest.fixture
def regulator(db: None) -> User:
    return UserFactory(name="The Regulator", role=Role.REGULATOR)


@pytest.fixture
def admin(db: None) -> User:
    return User.objects.create_superuser("admin@test.example", "admin-password-123")
