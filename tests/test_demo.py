"""The demo community on a real network: `make run`'s households end up ready to trade."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from gridplatform.accounts.models import Role, User
from gridplatform.demo import (
    DEMO_DOMAIN,
    DEMO_FEEDERS,
    DEMO_HEAT,
    DEMO_HEAT_TARIFF_BANDS,
    DEMO_HEAT_TOPOLOGY,
    DEMO_MARKET_OPTIONS,
    DEMO_OPERATOR_BUDGET,
    DEMO_PASSWORD,
    DEMO_TARIFF_BANDS,
    DEMO_TOP_UP,
    DEMO_TOPOLOGY,
    HOUSEHOLDS,
    SEED_DOMAIN,
    demo_community_create,
    demo_ledger_register,
)
from ledger.models import LedgerAccount, StateEntry
from market.models import MarketAccount, Tariff
from tests.ledger.live import LiveNetwork, running_network
from tests.ledger.site import give_issuer_key

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, DEMO_MARKET_OPTIONS) as live:
        yield live


def test_the_demo_households_are_registered_on_feeders_with_credits(network: LiveNetwork) -> None:
    demo_community_create()
    give_issuer_key(User.objects.get(email=f"operator@{DEMO_DOMAIN}"))
    assert demo_ledger_register() == len(HOUSEHOLDS)

    households = User.objects.filter(role=Role.HOUSEHOLD).select_related("identity")
    addresses = [h.identity.address for h in households]

    def ready() -> bool:
        feeders = MarketAccount.objects.filter(address__in=addresses).exclude(feeder="").count()
        funded = LedgerAccount.objects.filter(address__in=addresses, balance=DEMO_TOP_UP).count()
        published = StateEntry.objects.filter(key__startswith="grid/topology/").count()
        on_loop = StateEntry.objects.filter(key__startswith="grid/feeder.heat/").count()
        connection.close()
        everything = len(DEMO_TOPOLOGY) + len(DEMO_HEAT_TOPOLOGY)
        return feeders == funded == len(HOUSEHOLDS) and (published, on_loop) == (
            everything,
            len(DEMO_HEAT),
        )

    network.wait(ready, seconds=90, what="demo households registered, on feeders, funded")
    feeders = set(MarketAccount.objects.values_list("feeder", flat=True))
    assert feeders == set(DEMO_FEEDERS)
    # The demo's energy seller is on the ledger as a retailer, with no feeder or credits.
    retailer = User.objects.get(email=f"retailer@{DEMO_DOMAIN}")
    assert retailer.role == Role.RETAILER
    assert LedgerAccount.objects.get(address=retailer.identity.address).role == "retailer"
    # The grid operator published the demo grid, with one tight feeder for the checks to bite.
    limits = {
        entry.key.removeprefix("grid/topology/"): (
            entry.value["export_limit_w"],
            entry.value["import_limit_w"],
        )
        for entry in StateEntry.objects.filter(key__startswith="grid/topology/")
    }
    assert limits == DEMO_TOPOLOGY | DEMO_HEAT_TOPOLOGY
    assert min(export for export, _ in limits.values()) <= 6_000
    # The heat loop is the heating network's: its households are on it for heat only.
    (loop,) = DEMO_HEAT_TOPOLOGY
    assert StateEntry.objects.get(key=f"grid/topology/{loop}").value["carrier"] == "heat"
    heat_people = households.filter(name__in=DEMO_HEAT)
    segments = {
        StateEntry.objects.get(key=f"grid/feeder.heat/{h.identity.address}").value
        for h in heat_people
    }
    assert (len(heat_people), segments) == (len(DEMO_HEAT), {loop})
    # The grid operator has its budget for requirements.
    operator = User.objects.get(email=f"operator@{DEMO_DOMAIN}").identity.address
    network.wait(lambda: _balance(operator) == DEMO_OPERATOR_BUDGET, seconds=60, what="its budget")
    # ...and its tariffs, electricity's and heat's, so that the Tariffs page has them from the
    # start and heat beyond the loop's trades settles with the supplier.
    network.wait(lambda: _tariffs() == 2, seconds=60, what="the demo tariffs")
    assert Tariff.objects.get(carrier="electricity").bands == DEMO_TARIFF_BANDS
    assert Tariff.objects.get(carrier="heat").bands == DEMO_HEAT_TARIFF_BANDS
    # Run again (a restart of `make run`): nothing is sent twice.
    assert demo_ledger_register() == 0


def test_the_heat_loop_trades_heat_on_its_meters_forecast(
    network: LiveNetwork, settings: Any, tmp_path: Path
) -> None:
    """The simulator's heat side on the demo network: heat meters on the ledger, and each heat
    household's order for the slot after next, in heat."""
    from gridplatform import simulation
    from market.models import Order
    from meters.models import Meter

    settings.VAR_DIR = tmp_path
    demo_community_create()
    give_issuer_key(User.objects.get(email=f"operator@{DEMO_DOMAIN}"))
    demo_ledger_register()
    heat_people = User.objects.filter(name__in=DEMO_HEAT).select_related("identity")

    def on_loop() -> bool:
        addresses = [h.identity.address for h in heat_people]
        found = MarketAccount.objects.filter(address__in=addresses).exclude(heat_segment="")
        count = found.count()
        connection.close()
        return count == len(DEMO_HEAT)

    network.wait(on_loop, seconds=90, what="the heat loop's households on their segment")
    meters = simulation.demo_meters()
    heat_meters = [m for m in meters if m.heat_role]
    assert len(heat_meters) == len(DEMO_HEAT)

    def registered() -> bool:
        ids = [m.meter_id for m in heat_meters]
        count = StateEntry.objects.filter(key__in=[f"meter/{i}" for i in ids]).count()
        connection.close()
        return count == len(ids)

    network.wait(registered, seconds=90, what="the heat meters on the ledger")
    now = timezone.now()
    wanted = [m for m in heat_meters if simulation.heat_order(m, now, 300) is not None]
    placed = simulation.heat_trade(heat_meters, now)
    assert placed >= 1

    def heat_orders() -> int:
        count = int(Order.objects.filter(carrier="heat").count())
        connection.close()
        return count

    network.wait(lambda: heat_orders() == placed, seconds=90, what="heat orders in the read model")
    assert simulation.heat_trade(heat_meters, now) == 0  # once per slot
    assert Meter.objects.filter(kind="thermal_storage").count() == 1
    assert wanted  # the forecast has something to trade at this hour


def _balance(address: str) -> int | None:
    found = LedgerAccount.objects.filter(address=address).values_list("balance", flat=True).first()
    connection.close()
    return found


def _tariffs() -> int:
    count = int(Tariff.objects.count())
    connection.close()
    return count


def test_a_large_community_is_seeded_and_put_on_the_ledger_in_batches(
    network: LiveNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridplatform import demo

    demo_community_create()
    give_issuer_key(User.objects.get(email=f"operator@{DEMO_DOMAIN}"))
    assert demo.community_seed_create(25) == 25
    assert demo.community_seed_create(25) == 0  # again: nothing new
    assert demo.community_seed_create(27) == 2
    seeded = User.objects.filter(email__endswith=f"@{demo.SEED_DOMAIN}").select_related("identity")
    assert sorted(u.name for u in seeded)[:2] == ["Household 00001", "Household 00002"]
    assert len({u.identity.address for u in seeded}) == 27  # each its own identity
    assert seeded.first().check_password(demo.DEMO_PASSWORD)  # type: ignore[union-attr]

    monkeypatch.setattr(demo, "SEED_BATCH", 10)  # three batches, each sent once the last commits
    progress: list[int] = []
    assert demo.community_ledger_register(wait_s=90, progress=progress.append) == 27
    assert progress == [10, 20, 27]
    addresses = [u.identity.address for u in seeded]

    def ready() -> bool:
        feeders = MarketAccount.objects.filter(address__in=addresses).exclude(feeder="").count()
        funded = LedgerAccount.objects.filter(address__in=addresses, balance=DEMO_TOP_UP).count()
        connection.close()
        return feeders == funded == 27

    network.wait(ready, seconds=90, what="seeded households on feeders, funded")
    assert demo.community_ledger_register(wait_s=90) == 0  # again: nothing sent twice


def test_the_seed_community_command_grows_the_community_through_the_validators(
    network: LiveNetwork,
) -> None:
    demo_community_create()
    give_issuer_key(User.objects.get(email=f"operator@{DEMO_DOMAIN}"))
    out = io.StringIO()
    call_command("seed_community", households=5, stdout=out)
    assert f"5 new accounts @{SEED_DOMAIN} (password {DEMO_PASSWORD})" in out.getvalue()
    assert "5 households put on the ledger" in out.getvalue()
    seeded = User.objects.filter(email__endswith=f"@{SEED_DOMAIN}").select_related("identity")
    assert sorted(u.name for u in seeded) == [f"Household {n:05d}" for n in range(1, 6)]
    addresses = [u.identity.address for u in seeded]

    def ready() -> bool:
        on_ledger = LedgerAccount.objects.filter(
            address__in=addresses, role="household", balance=DEMO_TOP_UP
        ).count()
        on_feeders = MarketAccount.objects.filter(
            address__in=addresses, feeder__in=DEMO_FEEDERS
        ).count()
        connection.close()
        return on_ledger == on_feeders == 5

    network.wait(ready, seconds=90, what="the seeded households in the read models")
    again = io.StringIO()
    call_command("seed_community", households=5, stdout=again)  # safe to run again
    assert "0 new accounts" in again.getvalue()
    assert "0 households put on the ledger" in again.getvalue()


@pytest.mark.parametrize("households", [0, -3, 100_000])
def test_the_seed_community_command_refuses_a_size_out_of_range(households: int) -> None:
    with pytest.raises(CommandError, match="--households must be between 1 and 99999"):
        call_command("seed_community", households=households)
    assert not User.objects.exists()
