"""Carriers on the site (docs/market.md, "Carriers on the site and in the API"): heat orders,
offers, contracts and settlements projected with their carrier from real certified blocks,
placed and filtered through the API and the pages, each in its own unit ("kWh thermal") and
never added to electricity's; the grid operator publishes a heat segment and assigns households
to it from its console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from gridplatform.accounts.models import User
from ledger import read_model_audit
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from ledger.services import TransactionRejected
from market import flows
from market import services as market_services
from market.chain.options import UNITS, market_options
from market.errors import MESSAGES, NO_SEGMENT
from market.models import (
    Contract,
    GridSettlement,
    MarketAccount,
    Offer,
    Order,
    SettlementLine,
    SlotSettlement,
    Tariff,
)
from meters import services as meter_services
from meters.chain.schema import meter_carrier
from meters.models import Meter, MeterKind
from supervision import selectors as supervision_selectors
from supervision import services as supervision_services
from supervision.errors import MESSAGES as SUPERVISION_MESSAGES
from supervision.models import Feeder
from tests.ledger.chains import HOUSEHOLDS, OPERATOR, REGULATOR
from tests.ledger.site import (
    Site,
    commit_pending,
    give_issuer_key,
    give_key,
    open_slot,
    order,
    trading_site,
)
from tests.market.support import batch, device_signature, reading
from tests.market.test_api import API, client_for, error_of, iso, pending, post
from tests.market.test_views import order_data

pytestmark = pytest.mark.django_db
ADA, BEN, CAT = HOUSEHOLDS[5], HOUSEHOLDS[6], HOUSEHOLDS[7]
# A market that trades heat too, with heat's own network fee.
HEAT = (("market.heat", 1), ("market.heat.network_fee", 3))
SEGMENT = "loop-1"


def heat_order(site: Site, who: Any, side: str, energy_wh: int, price: int, slot: int) -> Any:
    return site.sign(
        who,
        "market.order.place",
        slot=slot,
        side=side,
        energy_wh=energy_wh,
        price=price,
        carrier="heat",
    )


def both_trades(site: Site, slot: int) -> list[Any]:
    """Ada sells Ben 3 kWh thermal of heat at 12 and 2 kWh of electricity at 20, in ``slot``:
    heat's sell and buy orders, then electricity's."""
    return [
        heat_order(site, ADA, "sell", 3_000, 12, slot),
        heat_order(site, BEN, "buy", 3_000, 14, slot),
        order(site, ADA, "sell", 2_000, 20, slot),
        order(site, BEN, "buy", 2_000, 20, slot),
    ]


def settle(site: Site, slot: int) -> None:
    """Settle ``slot`` in a block dated when it is due (no meter data: nothing delivered)."""
    options = market_options(site.state)
    due = slot + options.slot_ms + options.settlement_delay_ms
    settled = site.commit([site.sign(OPERATOR, "market.slot.settle", slot=slot)], timestamp_ms=due)
    assert list(settled.results) == ["ok"]


def heat_site(
    settings: Any, tmp_path: Path, prosumer: User, consumer: User, grid_operator: User, options: Any
) -> Site:
    """Ada (``prosumer``) and Ben (``consumer``) on heat segment loop-1 (published), with
    credits, on a market of ``options``; the site's grid operator signs as the issuer."""
    give_key(prosumer, ADA)
    give_key(consumer, BEN)
    give_issuer_key(grid_operator)
    site = trading_site(settings, tmp_path, (ADA, BEN), options=options)
    publish = site.sign(
        OPERATOR,
        "grid.feeder.publish",
        feeder=SEGMENT,
        export_limit_w=100_000,
        import_limit_w=100_000,
        carrier="heat",
    )
    assign = [
        site.sign(OPERATOR, "grid.feeder.assign", address=a, feeder=SEGMENT, carrier="heat")
        for a in (ADA.address, BEN.address)
    ]
    assert list(site.commit([publish, *assign]).results) == ["ok"] * 3
    return site


@pytest.fixture
def site(
    settings: Any, tmp_path: Path, prosumer: User, consumer: User, grid_operator: User
) -> Site:
    """Ada and Ben on feeder-1 and on heat segment loop-1, on a market that trades heat."""
    return heat_site(settings, tmp_path, prosumer, consumer, grid_operator, HEAT)


@pytest.fixture
def plain(settings: Any, tmp_path: Path, prosumer: User) -> Site:
    """A market of electricity only (no ``market.heat``), Ada on feeder-1."""
    give_key(prosumer, ADA)
    return trading_site(settings, tmp_path, (ADA,))


# --- read models ---------------------------------------------------------------------------------


def test_it_projects_heat_rows_with_their_carrier_and_settles_them_apart(site: Site) -> None:
    slot = open_slot(site)
    heat_sell, heat_buy, power_sell, power_buy = both_trades(site, slot)
    offer = site.sign(
        ADA,
        "market.offer.post",
        slot=slot,
        energy_wh=500,
        price=11,
        buyer="",
        carrier="heat",
    )
    block = site.commit([heat_sell, heat_buy, power_sell, power_buy, offer])
    assert list(block.results) == ["ok"] * 5

    carriers = dict(Order.objects.values_list("id", "carrier"))
    assert carriers == {
        heat_sell.id: "heat",
        heat_buy.id: "heat",
        power_sell.id: "electricity",
        power_buy.id: "electricity",
    }
    assert Offer.objects.get(id=offer.id).carrier == "heat"
    heat = Contract.objects.get(carrier="heat")
    assert (heat.id, heat.energy_wh, heat.price, heat.network_fee) == (
        f"heat-{slot}-0",
        3_000,
        12,
        3,
    )
    power = Contract.objects.get(carrier="electricity")
    assert (power.id, power.energy_wh) == (f"{slot}-0", 2_000)
    # The heat segment is a published feeder of the heating network; the households' heat
    # segments sit beside their feeders.
    assert Feeder.objects.get(name=SEGMENT).carrier == "heat"
    ada = MarketAccount.objects.get(address=ADA.address)
    assert (ada.feeder, ada.heat_segment) == ("feeder-1", SEGMENT)

    withdraw = site.sign(ADA, "market.offer.withdraw", offer=offer.id)
    site.commit([withdraw])
    settle(site, slot)

    lines = dict(SettlementLine.objects.values_list("contract_id", "carrier"))
    assert lines == {heat.id: "heat", power.id: "electricity"}
    summary = SlotSettlement.objects.get()
    # Electricity's totals in the columns, heat's apart: 2,000 Wh is never 5,000.
    assert (summary.contracts, summary.energy_wh) == (1, 2_000)
    assert summary.carriers["heat"]["contracts"] == 1
    assert summary.carriers["heat"]["energy_wh"] == 3_000
    assert summary.carriers["heat"]["delivered_wh"] == 0  # no heat meter: nothing delivered
    assert read_model_audit.read_models_compare().differences == []

    SlotSettlement.objects.update(carriers={})  # a damaged row: the audit says which field
    found = read_model_audit.read_models_compare().differences
    assert [(d.model, d.field) for d in found] == [("SlotSettlement", "carriers")]


def test_the_statement_and_the_dashboard_show_each_carrier_in_its_own_unit(
    site: Site, consumer: User
) -> None:
    slot = open_slot(site)
    site.commit(both_trades(site, slot))
    settle(site, slot)

    client = Client()
    client.force_login(consumer)
    page = client.get("/market/statements/").content.decode()
    assert 'data-testid="statement-carriers"' in page
    assert "Heat (kWh thermal)" in page
    assert "0 kWh thermal of 3 kWh thermal" in page  # bought, delivered of contracted
    assert "0 kWh of 2 kWh" in page  # electricity's, in its own column
    assert "5 kWh" not in page  # never added together
    csv_rows = client.get("/market/statements.csv").content.decode().splitlines()
    assert csv_rows[0].endswith(",carrier")
    assert sorted(row.rsplit(",", 1)[1] for row in csv_rows[1:]) == ["electricity", "heat"]

    dashboard = client.get("/dashboard/").content.decode()
    table = dashboard[dashboard.index('data-testid="carrier-table"') :]
    assert '<th scope="col" class="num" data-carrier="heat">Heat (kWh thermal)</th>' in table
    # The dashboard's figures, on the day after the slot: each carrier's energy on its own.
    later = datetime_of_ms(slot + market_options(site.state).slot_ms)
    traded = flows.household_flows(user=consumer, period=flows.DAY, now=later)
    assert [(c.carrier, c.bought_wh) for c in traded.carriers] == [
        ("electricity", 2_000),
        ("heat", 3_000),
    ]
    assert sum(s.bought_wh for s in traded.slots) == 2_000  # the slots' series: electricity's
    day = timezone.localtime(datetime_of_ms(slot)).date().isoformat()
    bill = client.get("/market/bill/", {"period": "day", "date": day}).content.decode()
    heat_bill = bill[bill.index('data-testid="bill-carrier" data-carrier="heat"') :]
    assert "Heat: what you bought, sold and paid, in kWh thermal" in heat_bill
    assert "3 kWh thermal" in heat_bill


# --- the API -------------------------------------------------------------------------------------


def test_it_places_a_heat_order_through_the_api_and_filters_by_carrier(
    site: Site, prosumer: User
) -> None:
    client = client_for(prosumer)
    slot = open_slot(site)
    body = {"carrier": "heat", "slot": iso(slot), "side": "sell", "energy_wh": 4_000, "price": 9}
    response = post(client, "/orders", body)
    assert response.status_code == 202, response.json()
    assert response.json()["order"]["carrier"] == "heat"
    assert pending() == [
        {
            "type": "market.order.place",
            "slot": slot,
            "side": "sell",
            "energy_wh": 4_000,
            "price": 9,
            "carrier": "heat",
        }
    ]
    assert (
        post(client, "/orders", body | {"carrier": "electricity", "price": 20}).status_code == 202
    )
    assert list(commit_pending(site).results) == ["ok", "ok"]

    def orders(query: str) -> list[tuple[str, int]]:
        found = client.get(f"{API}/orders{query}")
        assert found.status_code == 200, found.json()
        return [(row["carrier"], row["price"]) for row in found.json()["results"]]

    assert sorted(orders("")) == [("electricity", 20), ("heat", 9)]
    assert orders("?carrier=heat") == [("heat", 9)]
    assert orders("?carrier=electricity") == [("electricity", 20)]
    heat_book = client.get(f"{API}/market/slots/{iso(slot)}/book", {"carrier": "heat"}).json()
    assert heat_book["carrier"] == "heat"
    assert heat_book["asks"] == [{"price": 9, "energy_wh": 4_000, "orders": 1}]
    assert client.get(f"{API}/market/slots/{iso(slot)}/book").json()["asks"][0]["price"] == 20
    best = {
        row["start"]: row["best_ask"]
        for row in client.get(f"{API}/market/slots?carrier=heat").json()
    }
    assert best[iso(slot)] == 9


def test_a_carrier_the_market_does_not_trade_is_bad_carrier_in_the_api(
    plain: Site, prosumer: User
) -> None:
    client = client_for(prosumer)
    slot = open_slot(plain)
    body = {"carrier": "heat", "slot": iso(slot), "side": "sell", "energy_wh": 1_000, "price": 9}
    refused = post(client, "/orders", body)
    assert error_of(refused) == (400, "bad_carrier")
    assert refused.json()["message"] == MESSAGES["bad_carrier"]
    assert error_of(post(client, "/orders", body | {"carrier": "gas"})) == (400, "bad_carrier")
    assert error_of(post(client, "/orders", body | {"carrier": 1})) == (400, "bad_carrier")
    offer = {"carrier": "heat", "slot": iso(slot), "energy_wh": 1_000, "price": 9, "buyer": ""}
    assert error_of(post(client, "/offers", offer)) == (400, "bad_carrier")
    assert not SubmittedTransaction.objects.exists()
    for path in ("/orders?carrier=gas", "/offers?carrier=gas", "/contracts?carrier=gas"):
        assert error_of(client.get(f"{API}{path}")) == (400, "bad_carrier"), path
    book = client.get(f"{API}/market/slots/{iso(slot)}/book", {"carrier": "heat"})
    assert error_of(book) == (400, "bad_carrier")


def test_the_schema_documents_the_carrier() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    text = schema.content.decode()
    assert schema.status_code == 200
    assert "bad_carrier" in text
    assert "kWh thermal" in text
    assert '"carrier"' in text


# --- the pages -----------------------------------------------------------------------------------

MARKET = "/market/"


def test_the_market_page_trades_heat_in_kwh_thermal_and_says_why_a_carrier_is_refused(
    site: Site, prosumer: User
) -> None:
    client = Client()
    client.force_login(prosumer)
    page = client.get(MARKET, {"carrier": "heat"}).content.decode()
    assert 'data-testid="carrier-switch"' in page
    assert 'data-carrier="heat" aria-current="page"' in page
    assert "Heat order book for" in page
    assert 'name="order-carrier" value="heat"' in page
    assert 'value="heat" id="id_order-carrier_1" required checked' in page  # the form starts so
    slot = open_slot(site)

    refused = client.post(
        f"{MARKET}orders/place/",
        order_data(slot, side="sell", energy="2.5", price="9", carrier="gas"),
    )
    assert refused.status_code == 400
    assert f'id="id_order-carrier_error">Error: {MESSAGES["bad_carrier"]}' in (
        refused.content.decode().replace("&#x27;", "'")
    )
    assert not SubmittedTransaction.objects.exists()

    placed = client.post(
        f"{MARKET}orders/place/",
        order_data(slot, side="sell", energy="2.5", price="9", carrier="heat"),
    )
    assert placed.status_code == 302
    assert placed["Location"] == f"{MARKET}?slot={slot}&carrier=heat"
    shown = client.get(placed["Location"]).content.decode()
    assert "Your order to sell 2.5 kWh thermal at €0.09/kWh thermal for" in shown
    assert list(commit_pending(site).results) == ["ok"]
    rows = client.get(f"{MARKET}orders/").content.decode()
    assert '<td data-label="Carrier" data-carrier="heat">Heat</td>' in rows
    assert "2.5 kWh thermal" in rows
    book = client.get(f"{MARKET}book/", {"slot": slot, "carrier": "heat"}).content.decode()
    assert "<td>€0.09/kWh thermal</td><td>2.5 kWh thermal</td><td>1</td>" in book
    electricity_book = client.get(f"{MARKET}book/", {"slot": slot}).content.decode()
    assert "No asks." in electricity_book


def test_a_heat_order_without_a_heat_segment_says_so(site: Site, outsider: User) -> None:
    give_key(outsider, CAT)
    site.register(CAT.address, CAT.public_key_hex, credits=50_000)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=CAT.address, feeder="f-1")])
    slot = datetime_of_ms(open_slot(site))
    with pytest.raises(TransactionRejected) as refused:
        market_services.order_place(
            user=outsider, slot=slot, side="buy", energy_wh=1_000, price=9, carrier="heat"
        )
    assert (refused.value.code, refused.value.message) == ("no_feeder", NO_SEGMENT)
    assert not SubmittedTransaction.objects.exists()


def test_a_market_of_electricity_alone_shows_no_carrier_choice(plain: Site, prosumer: User) -> None:
    client = Client()
    client.force_login(prosumer)
    page = client.get(MARKET).content.decode()
    assert 'data-testid="carrier-switch"' not in page
    assert 'name="order-carrier"' not in page
    assert "Order book for" in page
    # A carrier sent anyway is no field of the form: the order is electricity's, as always.
    slot = open_slot(plain)
    placed = client.post(
        f"{MARKET}orders/place/",
        order_data(slot, side="sell", energy="2.5", price="9", carrier="heat"),
    )
    assert placed.status_code == 302
    assert "carrier" not in SubmittedTransaction.objects.get().body["payload"]


# --- the grid operator's and the regulator's consoles --------------------------------------------


def test_the_grid_operator_publishes_a_heat_segment_and_assigns_a_household_from_the_console(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    client = Client()
    client.force_login(grid_operator)
    console = client.get("/console/operator/").content.decode()
    assert 'name="feeder-carrier" value="heat"' in console
    publish = {
        "feeder-carrier": "heat",
        "feeder-feeder": "loop-2",
        "feeder-export_limit_kw": "50",
        "feeder-import_limit_kw": "40.5",
    }
    confirm = client.post("/supervision/feeders/publish/", publish).content.decode()
    assert "Publish heat segment loop-2?" in confirm
    assert "50 kW thermal" in confirm
    done = client.post("/supervision/feeders/publish/", publish | {"confirmed": "yes"})
    assert done.status_code == 302
    assert SubmittedTransaction.objects.get().body["payload"] == {
        "feeder": "loop-2",
        "export_limit_w": 50_000,
        "import_limit_w": 40_500,
        "carrier": "heat",
    }
    commit_pending(site)
    rows = client.get("/console/operator/grid/rows/").content.decode()
    assert '<td data-carrier="heat">Heat network segment</td>' in rows
    assert '<td class="num">40.5 kW thermal</td>' in rows

    households = client.get("/console/operator/households/rows/").content.decode()
    assert 'name="segment"' in households
    assert '<option value="loop-2">loop-2</option>' in households
    moved = client.post(
        f"/console/operator/households/{prosumer.pk}/heat-segment/", {"segment": "loop-2"}
    )
    assert moved.status_code == 302
    assigned = SubmittedTransaction.objects.order_by("id").last()
    assert assigned is not None
    assert assigned.body["payload"] == {
        "address": ADA.address,
        "feeder": "loop-2",
        "carrier": "heat",
    }
    commit_pending(site)
    assert MarketAccount.objects.get(address=ADA.address).heat_segment == "loop-2"
    assert MarketAccount.objects.get(address=ADA.address).feeder == "feeder-1"  # unchanged
    row = client.get("/console/operator/households/rows/").content.decode()
    assert "heat segment <strong data-heat-segment>loop-2</strong>" in row


def test_a_name_of_the_other_network_is_carrier_mismatch_in_plain_words(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    with pytest.raises(TransactionRejected) as published:
        supervision_services.feeder_publish(
            operator=grid_operator, feeder=SEGMENT, export_limit_w=1_000, import_limit_w=1_000
        )
    assert (published.value.code, published.value.message) == (
        "carrier_mismatch",
        SUPERVISION_MESSAGES["carrier_mismatch"],
    )
    with pytest.raises(TransactionRejected) as assigned:
        market_services.feeder_assign(operator=grid_operator, household=prosumer, feeder=SEGMENT)
    assert assigned.value.code == "carrier_mismatch"
    assert not SubmittedTransaction.objects.exists()


def test_the_grid_operator_publishes_a_heat_segment_through_the_api(
    site: Site, grid_operator: User
) -> None:
    client = client_for(grid_operator)
    body = {"feeder": "loop-3", "export_limit_w": 9_000, "import_limit_w": 8_000}
    response = post(client, "/supervision/topology", body | {"carrier": "heat"})
    assert response.status_code == 202, response.json()
    assert SubmittedTransaction.objects.get().body["payload"] == body | {"carrier": "heat"}
    commit_pending(site)
    published = {
        row["name"]: row["carrier"] for row in client.get(f"{API}/supervision/topology").json()
    }
    assert published == {SEGMENT: "heat", "loop-3": "heat"}
    # A segment's name is not a feeder's: the rehearsal's code, in the site's words.
    mismatch = post(client, "/supervision/topology", body)
    assert error_of(mismatch) == (400, "carrier_mismatch")
    assert mismatch.json()["message"] == SUPERVISION_MESSAGES["carrier_mismatch"]


def test_the_regulator_sees_each_carrier_apart_in_statistics_loading_and_review(
    site: Site, regulator: User, grid_operator: User, settings: Any
) -> None:
    settings.SUPERVISION_REVIEW = {"max_energy_wh": 2_500}  # the heat contract is larger
    slot = open_slot(site)
    site.commit(both_trades(site, slot))
    statistics = supervision_selectors.slot_statistics(user=regulator)
    assert [(s.carrier, s.contracts, s.volume_wh, s.median_price) for s in statistics] == [
        ("electricity", 1, 2_000, 20),
        ("heat", 1, 3_000, 12),
    ]
    loading = supervision_selectors.feeder_loading(user=regulator)
    assert [(row.feeder, row.carrier, row.export_wh) for row in loading] == [
        (SEGMENT, "heat", 3_000)
    ]

    client = Client()
    client.force_login(regulator)
    console = client.get("/console/regulator/").content.decode()
    rows = console[console.index('id="statistics-rows"') :]
    assert '<td data-carrier="heat">Heat</td>' in rows
    assert "3 kWh thermal" in rows
    assert "5 kWh" not in rows  # never one total of both
    review = console[console.index('id="review-rows"') :]
    assert f'data-review="heat-{slot}-0"' in review
    assert "Heat: 3 kWh thermal" in review
    assert f'data-review="{slot}-0"' not in review  # 2,000 Wh of electricity: not flagged
    # Curtailing it is confirmed, and limited, in kWh thermal.
    decide = {
        f"review-heat-{slot}-0-decision": "curtail",
        f"review-heat-{slot}-0-reason": "the loop's pump is down",
        f"review-heat-{slot}-0-energy": "2",
        f"review-heat-{slot}-0-energy_unit": "kWh",
    }
    confirm = client.post(f"/supervision/review/heat-{slot}-0/", decide).content.decode()
    assert "3 kWh thermal" in confirm
    assert "2 kWh thermal" in confirm
    too_much = decide | {f"review-heat-{slot}-0-energy": "3"}
    refused = client.post(f"/supervision/review/heat-{slot}-0/", too_much).content.decode()
    assert "enter at most 2.999 kWh thermal" in refused


def test_a_household_sees_the_suspension_of_its_heat_segment(site: Site, prosumer: User) -> None:
    suspend = site.sign(
        REGULATOR,
        "supervision.trading.suspend",
        scope=f"feeder:{SEGMENT}",
        reason="a leak on the loop",
        until=0,
    )
    assert list(site.commit([suspend]).results) == ["ok"]
    acts = supervision_selectors.acts_touching(user=prosumer)
    assert [(act.type, act.scope) for act in acts] == [
        ("supervision.trading.suspend", f"feeder:{SEGMENT}"),
        ("grid.feeder.publish", f"feeder:{SEGMENT}"),  # the segment's publication, too
    ]
    client = Client()
    client.force_login(prosumer)
    stops = client.get("/supervision/stops/").content.decode()
    assert "a leak on the loop" in stops


def test_a_meters_unit_is_its_carriers_and_the_meters_page_says_it(
    site: Site, prosumer: User
) -> None:
    for kind in MeterKind.values:
        assert Meter(kind=kind).unit == UNITS[meter_carrier(kind)], kind
    assert Meter(kind=MeterKind.THERMAL_STORAGE).carrier == "heat"
    meter_services.meter_register(
        by=prosumer,
        owner=prosumer,
        meter_id="ada-heat",
        kind="heat",
        public_key="ab" * 32,
        feeder=SEGMENT,
    )
    client = Client()
    client.force_login(prosumer)
    page = client.get("/meters/").content.decode()
    assert '<td data-carrier="heat">heat, in kWh thermal</td>' in page


# --- heat's tariff and its residual --------------------------------------------------------------

ADA_HEAT = KeyPair(private_key=bytes(range(90, 122)))
BEN_HEAT = KeyPair(private_key=bytes(range(91, 123)))


def test_a_heat_tariff_is_published_from_the_page_and_the_heat_residual_shows_apart(
    site: Site, grid_operator: User, consumer: User
) -> None:
    """docs/market.md, "Heat with the supplier: a worked example", through the site: Ada sells
    Ben 2,000 Wh thermal at 12; her heat meter feeds in 2,600 Wh, his draws 3,450 Wh."""
    slot = open_slot(site)
    operator = Client()
    operator.force_login(grid_operator)
    form = operator.get("/market/tariffs/").content.decode()
    assert 'id="tariff-carrier"' in form
    assert '<option value="heat">Heat (kWh thermal)</option>' in form
    published = operator.post(
        "/market/tariffs/", {"carrier": "heat", "from_slot": iso(slot), "bands": "00:00 10 4 2"}
    )
    assert published.status_code == 302
    assert list(commit_pending(site).results) == ["ok"]
    heat_tariff = Tariff.objects.get()
    assert heat_tariff.carrier == "heat"
    assert heat_tariff.bands == [{"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}]
    page = operator.get("/market/tariffs/").content.decode()
    assert "Heat, from" in page
    assert "<td>€0.10/kWh thermal</td><td>€0.04/kWh thermal</td><td>€0.02/kWh thermal</td>" in page
    api = client_for(consumer)
    listed = api.get(f"{API}/tariffs", {"carrier": "heat"}).json()["results"]
    assert [(t["carrier"], t["from_slot"]) for t in listed] == [("heat", iso(slot))]
    assert api.get(f"{API}/tariffs", {"carrier": "electricity"}).json()["results"] == []
    assert error_of(api.get(f"{API}/tariffs", {"carrier": "gas"})) == (400, "bad_carrier")

    interval_s = market_options(site.state).slot_ms // 1_000
    register = [
        site.sign(
            OPERATOR,
            "meter.register",
            meter=meter_id,
            owner=who.address,
            kind="heat",
            public_key=device.public_key_hex,
            feeder=SEGMENT,
            interval_s=interval_s,
        )
        for who, meter_id, device in ((ADA, "ada-heat", ADA_HEAT), (BEN, "ben-heat", BEN_HEAT))
    ]
    trades = [
        heat_order(site, ADA, "sell", 2_000, 12, slot),
        heat_order(site, BEN, "buy", 2_000, 12, slot),
    ]
    assert list(site.commit([*register, *trades]).results) == ["ok"] * 4
    end = slot + market_options(site.state).slot_ms
    relays = []
    for meter_id, device, flows_of in (
        ("ada-heat", ADA_HEAT, reading(slot, 2_600, duration_s=interval_s)),
        ("ben-heat", BEN_HEAT, reading(slot, 0, import_wh=3_450, duration_s=interval_s)),
    ):
        body = batch(flows_of)
        t = end // 1_000 + 1
        signature = device_signature(device, t, body)
        relays.append(
            site.sign(
                OPERATOR, "meter.readings", meter=meter_id, t=t, body=body, signature=signature
            )
        )
    assert list(site.commit(relays, timestamp_ms=end + 2_000).results) == ["ok", "ok"]
    settle(site, slot)

    lines = {row.account: row for row in GridSettlement.objects.all()}
    assert {row.carrier for row in lines.values()} == {"heat"}
    ben = lines[BEN.address]
    assert (ben.grid_import_wh, ben.import_cost, ben.import_fee) == (1_450, 14, 2)
    assert (lines[ADA.address].grid_export_wh, lines[ADA.address].feed_in_paid) == (600, 2)
    summary = SlotSettlement.objects.get()
    assert summary.residual is None  # no electricity tariff
    assert summary.carriers["heat"]["residual"]["households"] == 2
    assert read_model_audit.read_models_compare().differences == []

    household = Client()
    household.force_login(consumer)
    day = timezone.localtime(datetime_of_ms(slot)).date().isoformat()
    bill = household.get("/market/bill/", {"period": "day", "date": day}).content.decode()
    heat_bill = bill[bill.index('data-testid="bill-carrier" data-carrier="heat"') :]
    assert "Bought from the network, at heat's retail" in heat_bill
    assert "<td>1.45 kWh thermal</td><td>€0.14</td>" in heat_bill
    summary_table = bill[: bill.index('data-testid="bill-carrier"')]
    assert "1.45 kWh" not in summary_table  # electricity's table has none of heat's
    statement = household.get("/market/statements/").content.decode()
    supplier = statement[statement.index('data-testid="statement-supplier"') :]
    assert "1.45 kWh thermal: €0.14 + €0.02" in supplier
    traded = flows.household_flows(user=consumer, period=flows.DAY, now=datetime_of_ms(end))
    assert [(c.carrier, c.grid_import_wh) for c in traded.carriers] == [
        ("electricity", 0),
        ("heat", 1_450),
    ]
    dashboard = household.get("/dashboard/").content.decode()
    assert "Bought from the supplier, at its tariff" in dashboard


def test_the_audit_log_names_a_heat_tariffs_carrier_and_unit() -> None:
    from supervision.templatetags.supervision_format import _tariff_text

    band = {"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}
    text = _tariff_text({"from_slot": 0, "bands": [band], "carrier": "heat"})
    assert text.startswith("Published the heat tariff in force from ")
    assert text.endswith(
        "from 00:00 UTC, retail €0.10/kWh thermal, feed-in €0.04/kWh thermal, network fee "
        "€0.02/kWh thermal"
    )
    assert _tariff_text({"from_slot": 0, "bands": [band]}).startswith(
        "Published the electricity tariff"
    )


def test_a_heat_bid_above_heats_retail_is_shown_back_against_heats_tariff(
    consumer: User,
) -> None:
    from market import warnings

    slot = datetime_of_ms(1_798_761_600_000)
    common = {"from_slot": slot, "tx": "a" * 64, "height": 1, "published_at": slot}
    band = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}
    Tariff.objects.create(carrier="electricity", bands=[band], **common)

    def said(price: int) -> list[str]:
        return warnings.order_warnings(
            user=consumer,
            slot=slot,
            slot_ms=900_000,
            side="buy",
            energy_wh=1_000,
            price=price,
            carrier="heat",
        )

    assert not [w for w in said(20) if "supplier charges" in w]  # electricity's is not heat's
    heat_band = {"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}
    Tariff.objects.create(carrier="heat", bands=[heat_band], **common)
    assert (
        "You bid €0.20/kWh thermal, more than the €0.10/kWh thermal the supplier charges for "
        "energy in this slot"
    ) in said(20)[0]
