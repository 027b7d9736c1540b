"""After relaying a batch, the meters announce its latest interval (``meters.signals.
batch_relayed``), importing nothing of the apps that listen; the market's standing rules do
(tests/market/test_rules.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import User
from meters import relay
from meters.models import ReadingBatch
from meters.signals import batch_relayed
from tests.meters.support import register, store_readings

pytestmark = pytest.mark.django_db
LISTENER = "tests.meters.test_relay"


@pytest.fixture(autouse=True)
def _default_market(settings: Any, tmp_path: Path) -> None:
    """No genesis document (the market's rules listen too, and find no open slot to trade)."""
    settings.LEDGER_DIR = tmp_path


@pytest.fixture
def listen() -> Iterator[Callable[[Callable[..., None]], None]]:
    def connect(receiver: Callable[..., None]) -> None:
        batch_relayed.connect(receiver, dispatch_uid=LISTENER, weak=False)

    yield connect
    batch_relayed.disconnect(dispatch_uid=LISTENER)


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=UTC)


def test_it_announces_a_relayed_batchs_latest_interval(
    prosumer: User, listen: Callable[[Callable[..., None]], None]
) -> None:
    heard: list[dict[str, Any]] = []
    listen(lambda sender, **kwargs: heard.append({"sender": sender, **kwargs}))
    grid = register(prosumer, "grid", interval_s=60).meter
    store_readings(grid, (at(11, 58), 4, 3), (at(11, 59), 5, 6), (at(11, 57), 1, 1))

    # This site has no grid operator: the batch is not relayed now, and announced all the same.
    assert relay.batch_relay(ReadingBatch.objects.get()) is None

    assert heard == [
        {
            "sender": ReadingBatch,
            "signal": batch_relayed,
            "owner": prosumer,
            "start": at(11, 59),
            "import_wh": 5,
            "export_wh": 6,
            "duration_s": 60,
            "carrier": "electricity",  # what the meter measures: the rules read no other
        }
    ]


def test_a_batch_without_readings_is_not_announced(
    prosumer: User, listen: Callable[[Callable[..., None]], None]
) -> None:
    heard: list[dict[str, Any]] = []
    listen(lambda sender, **kwargs: heard.append(kwargs))
    store_readings(register(prosumer, "grid").meter)
    relay.batch_relay(ReadingBatch.objects.get())
    assert heard == []


def test_a_listeners_error_reaches_the_relays_caller(
    prosumer: User, listen: Callable[[Callable[..., None]], None]
) -> None:
    def failing(sender: object, **kwargs: object) -> None:
        raise RuntimeError("the listener failed")

    listen(failing)
    store_readings(register(prosumer, "grid").meter, (at(11, 45), 1, 2))
    # As when the relay called the rules itself: the error fails the relay task.
    with pytest.raises(RuntimeError, match="the listener failed"):
        relay.batch_relay(ReadingBatch.objects.get())
