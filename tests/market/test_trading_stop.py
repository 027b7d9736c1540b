"""What would refuse a household's orders (a suspension, a restriction, the grid's state) is
supervision's, above the market: the market asks the provider ``settings.MARKET_TRADING_STOP``
names, at each call, and reads only its code, reason and end (``market.selectors.TradingStop``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from gridplatform.accounts.models import User
from ledger.services import TransactionRejected
from market import selectors, services
from supervision import selectors as supervision_selectors

pytestmark = pytest.mark.django_db
HERE = __name__
ASKED: list[str] = []


@dataclass(frozen=True)
class Stop:
    code: str
    reason: str
    until: datetime | None


SUSPENDED = Stop("market_suspended", "audit of the books", datetime(2026, 1, 1, 12, 30, tzinfo=UTC))


def market_suspended(*, address: str) -> Stop | None:
    ASKED.append(address)
    return SUSPENDED


def nothing(*, address: str) -> Stop | None:
    return None


@pytest.fixture(autouse=True)
def _forget() -> None:
    ASKED.clear()


def test_the_provider_is_supervisions_selector() -> None:
    provider = import_string(django_settings.MARKET_TRADING_STOP)
    assert provider is supervision_selectors.trading_stop


def test_it_asks_the_provider_the_setting_names_at_each_call(settings: Any) -> None:
    settings.MARKET_TRADING_STOP = f"{HERE}.market_suspended"
    assert selectors.trading_stop(address="ab" * 20) == SUSPENDED
    assert ASKED == ["ab" * 20]
    settings.MARKET_TRADING_STOP = f"{HERE}.nothing"
    assert selectors.trading_stop(address="ab" * 20) is None


def test_a_refusal_for_a_stop_gives_the_providers_reason(
    settings: Any, monkeypatch: pytest.MonkeyPatch, prosumer: User
) -> None:
    settings.MARKET_TRADING_STOP = f"{HERE}.market_suspended"

    def refused(**kwargs: object) -> None:
        raise TransactionRejected("market_suspended", "Trading is suspended.")

    monkeypatch.setattr(services, "transaction_sign_and_submit", refused)
    slot = datetime(2026, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(TransactionRejected) as refusal:
        services.order_place(user=prosumer, slot=slot, side="sell", energy_wh=1_000, price=20)

    assert refusal.value.code == "market_suspended"
    assert refusal.value.message.endswith(
        " Reason: audit of the books (until 2026-01-01 12:30 UTC)"
    )
    assert ASKED == [prosumer.identity.address]
