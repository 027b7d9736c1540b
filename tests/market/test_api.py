"""The market's REST API: orders, slots and books, offers, contracts and money, through real
signed transactions committed in real certified blocks, read back through the API."""

from __future__ import annotations

import json
import zoneinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import Identity, User
from ledger.crypto import sign_transaction
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from market import api as market_api
from market.errors import MESSAGES
from tests.factories import UserFactory
from tests.ledger.chains import CHAIN, HOUSEHOLDS, OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, use_network

pytestmark = pytest.mark.django_db
API = "/api/v1"
SLOT_MS = 900_000
GATE_MS = 300_000


# --- actors and helpers ------------------------------------------------------------------------


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    """A chain whose blocks are "now" for the site (its clock decides which slots are open)."""
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def enrol(site: Site, *users: User, credits: int = 100_000) -> None:
    """Register ``users`` on the ledger with credits, and give each a feeder: ready to trade."""
    for user in users:
        site.register(user.identity.address, user.identity.public_key, credits=credits)
    site.commit(
        [
            site.sign(OPERATOR, "grid.feeder.assign", address=u.identity.address, feeder="f1")
            for u in users
        ]
    )


@pytest.fixture
def market(site: Site, prosumer: User, consumer: User, outsider: User) -> Site:
    """A seller (``prosumer``), a buyer (``consumer``) and another household (``outsider``)."""
    enrol(site, prosumer, consumer, outsider)
    return site


def client_for(user: User) -> Client:
    _, token = account_services.api_token_create(user=user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def open_slot(site: Site, ahead: int = 0) -> int:
    """A slot open for trading at the next blocks and on the site's clock, with a slot's room
    for the time the test takes; ``ahead`` slots later."""
    now = site.blocks[-1].timestamp_ms
    return ((now + GATE_MS) // SLOT_MS + 2 + ahead) * SLOT_MS


def iso(slot_ms: int) -> str:
    return datetime_of_ms(slot_ms).isoformat().replace("+00:00", "Z")


def post(client: Client, path: str, body: Any = None) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"{API}{path}", raw, content_type="application/json")


def place(client: Client, slot: int, side: str, energy_wh: int, price: int) -> str:
    body = {"slot": iso(slot), "side": side, "energy_wh": energy_wh, "price": price}
    response = post(client, "/orders", body)
    assert response.status_code == 202, response.json()
    order_id: str = response.json()["order"]["id"]
    return order_id


def pending() -> list[dict[str, Any]]:
    """The pending transactions' type and payload, in the order they were submitted."""
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


def commit(site: Site) -> list[str]:
    """Commit every pending transaction in one block; the results."""
    return list(commit_pending(site).results)


def results(path: str, client: Client) -> list[dict[str, Any]]:
    response = client.get(f"{API}{path}")
    assert response.status_code == 200, response.json()
    rows: list[dict[str, Any]] = response.json()["results"]
    return rows


# --- orders ------------------------------------------------------------------------------------


def test_it_places_an_order_and_shows_it_once_its_block_commits(
    market: Site, prosumer: User
) -> None:
    client = client_for(prosumer)
    slot = open_slot(market)
    body = {"slot": iso(slot), "side": "sell", "energy_wh": 3_000, "price": 20}
    response = post(client, "/orders", body)

    assert response.status_code == 202
    row = SubmittedTransaction.objects.get()
    assert response.json() == {
        "order": {
            "id": row.tx_id,
            "status": "pending",
            "carrier": "electricity",  # the default: the payload below names none
            "slot": iso(slot),
            "side": "sell",
            "energy_wh": 3_000,
            "price": 20,
        },
        "transaction": row.tx_id,
    }
    assert (row.sender, row.submitted_by) == (prosumer.identity.address, prosumer)
    assert pending() == [
        {
            "type": "market.order.place",
            "slot": slot,
            "side": "sell",
            "energy_wh": 3_000,
            "price": 20,
        }
    ]
    assert error_of(client.get(f"{API}/orders/{row.tx_id}")) == (404, "not_found")  # not yet

    block = commit_pending(market)
    assert list(block.results) == ["ok"]
    shown = client.get(f"{API}/orders/{row.tx_id}").json()
    assert shown == {
        "id": row.tx_id,
        "status": "open",
        "slot": iso(slot),
        "carrier": "electricity",
        "side": "sell",
        "price": 20,
        "energy_wh": 3_000,
        "remaining_wh": 3_000,
        "filled_wh": 0,
        "locked": 3_000 * 20 * 2_000 // (1_000 * 10_000),  # the seller's 20 % deposit
        "height": block.height,
        "placed_at": iso(block.timestamp_ms),
        "closed_height": None,
        "made_by_rule": None,
    }
    assert results("/orders", client) == [shown]


def test_it_accepts_a_slot_in_any_zone_and_sends_it_in_ms(market: Site, prosumer: User) -> None:
    slot = open_slot(market)
    in_paris = datetime_of_ms(slot).astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    body = {"slot": in_paris.isoformat(), "side": "buy", "energy_wh": 10, "price": 7}
    response = post(client_for(prosumer), "/orders", body)
    assert response.status_code == 202
    assert response.json()["order"]["slot"] == iso(slot)
    assert pending()[0]["slot"] == slot


def test_it_matches_orders_into_contracts_that_both_parties_see(
    market: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    seller, buyer = client_for(prosumer), client_for(consumer)
    slot = open_slot(market)
    sell = place(seller, slot, "sell", 3_000, 20)
    buy = place(buyer, slot, "buy", 2_000, 25)
    block = commit_pending(market)
    assert list(block.results) == ["ok", "ok"]

    sold = seller.get(f"{API}/orders/{sell}").json()
    assert (sold["status"], sold["remaining_wh"], sold["filled_wh"]) == ("open", 1_000, 2_000)
    bought = buyer.get(f"{API}/orders/{buy}").json()
    assert (bought["status"], bought["remaining_wh"], bought["locked"]) == ("filled", 0, 0)
    assert bought["closed_height"] == block.height

    contract = {
        "id": f"{slot}-0",
        "kind": "order",
        "slot": iso(slot),
        "carrier": "electricity",
        "seller": prosumer.identity.address,
        "buyer": consumer.identity.address,
        "energy_wh": 2_000,
        "price": 20,  # the resting order's
        "network_fee": 0,
        "penalty_bps": 2_000,
        "escrow": 2_000 * 20 // 1_000,
        "deposit": 2_000 * 20 * 2_000 // (1_000 * 10_000),
        "seller_tx": sell,
        "buyer_tx": buy,
        "tx": buy,
        "height": block.height,
        "made_at": iso(block.timestamp_ms),
        "grid": None,
    }
    assert results("/contracts", seller) == [contract | {"side": "sell"}]
    assert results("/contracts", buyer) == [contract | {"side": "buy"}]
    assert results("/contracts", client_for(outsider)) == []

    money = buyer.get(f"{API}/account").json()
    assert money == {
        "address": consumer.identity.address,
        "balance": 100_000,
        "locked": contract["escrow"],
        "free": 100_000 - contract["escrow"],
    }
    seller_money = seller.get(f"{API}/account").json()
    assert seller_money["locked"] == contract["deposit"] + sold["locked"]


def test_it_lists_your_orders_newest_first_a_page_at_a_time_and_filters_them(
    market: Site, prosumer: User, consumer: User
) -> None:
    client = client_for(prosumer)
    first, second = open_slot(market), open_slot(market, ahead=1)
    a = place(client, first, "sell", 100, 30)
    place(client_for(consumer), first, "buy", 100, 1)  # someone else's: never listed
    commit(market)
    b = place(client, second, "buy", 200, 10)
    c = place(client, first, "sell", 300, 31)
    commit(market)
    d = place(client, second, "buy", 400, 11)  # pending: not a row yet

    page = client.get(f"{API}/orders?limit=2").json()
    assert page["count"] == 3
    assert [o["id"] for o in page["results"]] == sorted([b, c])  # one block: by id
    assert page["next"].endswith("limit=2&offset=2")
    assert [o["id"] for o in results("/orders?limit=2&offset=2", client)] == [a]

    def ids(query: str) -> set[str]:
        return {o["id"] for o in results(f"/orders?{query}", client)}

    assert ids("side=sell") == {a, c}
    assert ids("side=buy") == {b}
    assert ids(f"slot={iso(first)}") == {a, c}
    assert ids("slot=" + quote(datetime_of_ms(second).isoformat(), safe="")) == {b}
    assert ids("status=open&side=sell") == {a, c}
    assert ids("status=filled") == set()
    cancel = client.delete(f"{API}/orders/{a}")
    assert cancel.status_code == 202
    commit(market)
    assert ids("status=cancelled") == {a}
    assert ids("status=open") == {b, c, d}


def test_it_cancels_an_open_order(market: Site, prosumer: User) -> None:
    client = client_for(prosumer)
    order = place(client, open_slot(market), "sell", 500, 40)
    commit(market)
    locked = client.get(f"{API}/account").json()["locked"]
    assert locked > 0

    response = client.delete(f"{API}/orders/{order}")
    assert response.status_code == 202
    cancel = SubmittedTransaction.objects.get()
    assert response.json() == {"order": order, "transaction": cancel.tx_id}
    assert pending() == [{"type": "market.order.cancel", "order": order}]
    assert commit(market) == ["ok"]

    shown = client.get(f"{API}/orders/{order}").json()
    assert (shown["status"], shown["locked"], shown["remaining_wh"]) == ("cancelled", 0, 500)
    assert client.get(f"{API}/account").json() == {
        "address": prosumer.identity.address,
        "balance": 100_000,
        "locked": 0,
        "free": 100_000,
    }
    # Closed now: cancelling again is a 404, and nothing is sent.
    assert error_of(client.delete(f"{API}/orders/{order}")) == (404, "unknown_order")
    assert not SubmittedTransaction.objects.exists()


# --- slots and books ---------------------------------------------------------------------------


def test_it_shows_the_open_slots_with_their_best_bid_and_ask(
    market: Site, prosumer: User, consumer: User
) -> None:
    slot = open_slot(market)
    place(client_for(prosumer), slot, "sell", 1_000, 30)
    place(client_for(prosumer), slot, "sell", 1_000, 28)
    place(client_for(consumer), slot, "buy", 1_000, 21)
    place(client_for(consumer), slot, "buy", 1_000, 25)
    assert commit(market) == ["ok"] * 4

    slots = client_for(consumer).get(f"{API}/market/slots").json()
    assert len(slots) in (95, 96)  # a day ahead in 15 minutes, less those past their gate
    starts = [s["start"] for s in slots]
    assert starts == sorted(starts)
    ours = next(s for s in slots if s["start"] == iso(slot))
    assert ours == {
        "start": iso(slot),
        "end": iso(slot + SLOT_MS),
        "gate_closure": iso(slot - GATE_MS),
        "best_bid": 25,
        "best_ask": 28,
    }
    other = next(s for s in slots if s["start"] == iso(slot + SLOT_MS))
    assert (other["best_bid"], other["best_ask"]) == (None, None)


def test_it_shows_a_slots_book_best_prices_first_without_owners(
    market: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    slot = open_slot(market)
    place(client_for(prosumer), slot, "sell", 1_000, 30)
    place(client_for(prosumer), slot, "sell", 500, 28)
    place(client_for(outsider), slot, "sell", 250, 30)
    place(client_for(consumer), slot, "buy", 700, 21)
    place(client_for(consumer), slot, "buy", 300, 25)
    assert commit(market) == ["ok"] * 5

    expected = {
        "slot": iso(slot),
        "carrier": "electricity",
        "bids": [
            {"price": 25, "energy_wh": 300, "orders": 1},
            {"price": 21, "energy_wh": 700, "orders": 1},
        ],
        "asks": [
            {"price": 28, "energy_wh": 500, "orders": 1},
            {"price": 30, "energy_wh": 1_250, "orders": 2},
        ],
    }
    client = client_for(consumer)
    in_utc_offset = quote(datetime_of_ms(slot).isoformat(), safe="")  # ...+00:00 as %2B00%3A00
    in_kolkata = quote(
        datetime_of_ms(slot).astimezone(zoneinfo.ZoneInfo("Asia/Kolkata")).isoformat()
    )
    for name in (iso(slot), in_utc_offset, in_kolkata):
        assert client.get(f"{API}/market/slots/{name}/book").json() == expected, name
    empty = client.get(f"{API}/market/slots/{iso(slot + SLOT_MS)}/book").json()
    assert empty == {
        "slot": iso(slot + SLOT_MS),
        "carrier": "electricity",
        "bids": [],
        "asks": [],
    }


@pytest.mark.parametrize(
    ("slot", "code"),
    [
        ("tomorrow", "bad_slot"),
        ("2026-01-01T12:15:00", "bad_slot"),  # no zone
        ("2026-01-01", "bad_slot"),
        ("2026-13-01T12:15:00Z", "bad_slot"),
        ("1767269700000", "bad_slot"),  # ms are the ledger's, not the API's
        ("x" * 500, "bad_slot"),
        ("0001-01-01T00:00:00+05:00", "bad_slot"),  # before year 1 in UTC
        ("2026-01-01T12:10:00Z", "slot_misaligned"),
        ("2026-01-01T12:15:00.001Z", "slot_misaligned"),
    ],
)
def test_it_refuses_a_book_for_what_is_not_a_slot(
    market: Site, prosumer: User, slot: str, code: str
) -> None:
    response = client_for(prosumer).get(f"{API}/market/slots/{quote(slot)}/book")
    assert error_of(response) == (400, code)
    assert response.json()["message"] == MESSAGES[code]


# --- bilateral offers --------------------------------------------------------------------------


def test_it_posts_an_offer_its_buyer_accepts_and_its_seller_withdraws(
    market: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    seller, buyer, other = client_for(prosumer), client_for(consumer), client_for(outsider)
    slot = open_slot(market)
    body = {"slot": iso(slot), "energy_wh": 1_000, "price": 18, "buyer": consumer.identity.address}
    response = post(seller, "/offers", body)
    assert response.status_code == 202
    offer = SubmittedTransaction.objects.get().tx_id
    assert response.json() == {
        "offer": {"id": offer, "status": "pending", "carrier": "electricity", **body},
        "transaction": offer,
    }
    assert pending() == [{"type": "market.offer.post", **body, "slot": slot}]
    block = commit_pending(market)
    assert list(block.results) == ["ok"]

    shown = {
        "id": offer,
        "status": "open",
        "owner": prosumer.identity.address,
        "buyer": consumer.identity.address,
        "slot": iso(slot),
        "carrier": "electricity",
        "price": 18,
        "energy_wh": 1_000,
        "remaining_wh": 1_000,
        "locked": 1_000 * 18 * 2_000 // (1_000 * 10_000),
        "height": block.height,
        "posted_at": iso(block.timestamp_ms),
        "closed_height": None,
    }
    assert results("/offers", seller) == [shown]
    assert results("/offers", buyer) == [shown]
    assert buyer.get(f"{API}/offers/{offer}").json() == shown
    # Made to another buyer: the outsider does not even learn that it exists.
    assert results("/offers", other) == []
    assert error_of(other.get(f"{API}/offers/{offer}")) == (404, "not_found")
    assert error_of(post(other, f"/offers/{offer}/accept", {"energy_wh": 1})) == (
        404,
        "unknown_offer",
    )
    assert not SubmittedTransaction.objects.exists()

    response = post(buyer, f"/offers/{offer}/accept", {"energy_wh": 400})
    assert response.status_code == 202
    accept = SubmittedTransaction.objects.get().tx_id
    assert response.json() == {"offer": offer, "transaction": accept}
    assert pending() == [{"type": "market.offer.accept", "offer": offer, "energy_wh": 400}]
    block = commit_pending(market)
    assert list(block.results) == ["ok"]
    contract = results("/contracts", buyer)
    assert [(c["kind"], c["side"], c["energy_wh"], c["price"]) for c in contract] == [
        ("offer", "buy", 400, 18)
    ]
    assert (contract[0]["seller_tx"], contract[0]["buyer_tx"]) == (offer, accept)
    assert [c["side"] for c in results("/contracts", seller)] == ["sell"]
    assert seller.get(f"{API}/offers/{offer}").json()["remaining_wh"] == 600

    response = seller.delete(f"{API}/offers/{offer}")
    assert response.status_code == 202
    withdraw = SubmittedTransaction.objects.get().tx_id
    assert response.json() == {"offer": offer, "transaction": withdraw}
    assert pending() == [{"type": "market.offer.withdraw", "offer": offer}]
    assert commit(market) == ["ok"]
    closed = seller.get(f"{API}/offers/{offer}").json()
    assert (closed["status"], closed["remaining_wh"], closed["locked"]) == ("withdrawn", 600, 0)
    # Closed: no longer the buyer's to see or take, nor the seller's to withdraw.
    assert results("/offers", buyer) == []
    assert error_of(post(buyer, f"/offers/{offer}/accept", {"energy_wh": 1})) == (
        404,
        "unknown_offer",
    )
    assert error_of(seller.delete(f"{API}/offers/{offer}")) == (404, "unknown_offer")
    assert results("/offers?status=withdrawn", seller) == [closed]
    assert results("/offers?status=open", seller) == []
    assert not SubmittedTransaction.objects.exists()


def test_an_offer_to_anyone_is_seen_by_every_household_but_withdrawn_only_by_its_seller(
    market: Site, prosumer: User, consumer: User, outsider: User
) -> None:
    slot = open_slot(market)
    body = {"slot": iso(slot), "energy_wh": 800, "price": 22, "buyer": ""}
    assert post(client_for(prosumer), "/offers", body).status_code == 202
    assert commit(market) == ["ok"]
    for who in (consumer, outsider):
        listed = results(f"/offers?slot={iso(slot)}", client_for(who))
        assert [(o["owner"], o["buyer"], o["energy_wh"]) for o in listed] == [
            (prosumer.identity.address, "", 800)
        ]
    offer = listed[0]["id"]
    assert error_of(client_for(outsider).delete(f"{API}/offers/{offer}")) == (
        404,
        "unknown_offer",
    )
    assert results(f"/offers?slot={iso(slot + SLOT_MS)}", client_for(outsider)) == []
    response = post(client_for(outsider), f"/offers/{offer}/accept", {"energy_wh": 800})
    assert response.status_code == 202
    assert commit(market) == ["ok"]
    assert client_for(prosumer).get(f"{API}/offers/{offer}").json()["status"] == "taken"


# --- bad input: the field's code, and nothing sent ---------------------------------------------


def order_body(**change: Any) -> dict[str, Any]:
    body = {"slot": "2026-01-01T12:15:00Z", "side": "buy", "energy_wh": 1_000, "price": 20}
    return {k: v for k, v in (body | change).items() if v is not ...}


BAD_ORDERS: dict[str, tuple[Any, str]] = {
    "not JSON": ("{'slot': ", "malformed"),
    "an array": ("[]", "malformed"),
    "a string": ('"order"', "malformed"),
    "NaN": (json.dumps(order_body()).replace("1000", "NaN"), "malformed"),
    "no slot": (order_body(slot=...), "bad_slot"),
    "a slot without its zone": (order_body(slot="2026-01-01T12:15:00"), "bad_slot"),
    "a slot that is no time": (order_body(slot="soon"), "bad_slot"),
    "a slot in ms": (order_body(slot=1_767_269_700_000), "bad_slot"),
    "a null slot": (order_body(slot=None), "bad_slot"),
    "a slot before year 1 in UTC": (order_body(slot="0001-01-01T00:00:00+05:00"), "bad_slot"),
    "no side": (order_body(side=...), "bad_side"),
    "a side in capitals": (order_body(side="BUY"), "bad_side"),
    "a side that is no side": (order_body(side="hold"), "bad_side"),
    "energy as a string": (order_body(energy_wh="1000"), "bad_energy"),
    "energy as a float": (order_body(energy_wh=1000.0), "bad_energy"),
    "energy as a fraction": (order_body(energy_wh=1.5), "bad_energy"),
    "energy as a boolean": (order_body(energy_wh=True), "bad_energy"),
    "no energy": (order_body(energy_wh=...), "bad_energy"),
    "energy the ledger cannot sign": (order_body(energy_wh=2**53), "energy_out_of_bounds"),
    "price as a float": (order_body(price=20.0), "bad_price"),
    "price as a boolean": (order_body(price=False), "bad_price"),
    "price as a list": (order_body(price=[20]), "bad_price"),
    "a null price": (order_body(price=None), "bad_price"),
    "a price the ledger cannot sign": (order_body(price=-(2**64)), "price_out_of_bounds"),
    "the first bad field wins": (order_body(side="x", price="y"), "bad_side"),
    "a carrier that is none": (order_body(carrier="gas"), "bad_carrier"),
    "a null carrier": (order_body(carrier=None), "bad_carrier"),
    "a carrier this market does not trade": (order_body(carrier="heat"), "bad_carrier"),
    "the carrier is checked first": (order_body(carrier="gas", slot="soon"), "bad_carrier"),
}


@pytest.mark.parametrize("case", BAD_ORDERS)
def test_it_refuses_a_bad_order_with_the_fields_code_and_sends_nothing(
    market: Site, prosumer: User, case: str, django_capture_on_commit_callbacks: Any
) -> None:
    body, code = BAD_ORDERS[case]
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client_for(prosumer), "/orders", body)
    assert error_of(response) == (400, code)
    if case in ("not JSON", "NaN"):  # the JSON parser's words say what (gridplatform.parsers)
        assert "is not JSON" in response.json()["message"]
    else:
        assert response.json()["message"] == MESSAGES[code]
    assert not SubmittedTransaction.objects.exists()
    assert callbacks == []


def offer_body(**change: Any) -> dict[str, Any]:
    body = {"slot": "2026-01-01T12:15:00Z", "energy_wh": 1_000, "price": 20, "buyer": ""}
    return {k: v for k, v in (body | change).items() if v is not ...}


BAD_OFFERS: dict[str, tuple[Any, str]] = {
    "an array": ("[1]", "malformed"),
    "a slot without its zone": (offer_body(slot="2026-01-01 12:15"), "bad_slot"),
    "energy as a string": (offer_body(energy_wh="5"), "bad_energy"),
    "price as a float": (offer_body(price=0.5), "bad_price"),
    "no buyer": (offer_body(buyer=...), "bad_address"),
    "a null buyer": (offer_body(buyer=None), "bad_address"),
    "a buyer that is a number": (offer_body(buyer=7), "bad_address"),
    "a buyer that is no address": (offer_body(buyer="ben"), "bad_address"),
    "a buyer with a typo": (offer_body(buyer="02" + HOUSEHOLDS[0].address[2:]), "bad_address"),
    "a buyer with spaces": (offer_body(buyer=f" {HOUSEHOLDS[0].address}"), "bad_address"),
}


@pytest.mark.parametrize("case", BAD_OFFERS)
def test_it_refuses_a_bad_offer_with_the_fields_code_and_sends_nothing(
    market: Site, prosumer: User, case: str
) -> None:
    body, code = BAD_OFFERS[case]
    response = post(client_for(prosumer), "/offers", body)
    assert error_of(response) == (400, code)
    assert not SubmittedTransaction.objects.exists()


@pytest.fixture
def open_offer(market: Site, prosumer: User) -> str:
    body = {"slot": iso(open_slot(market)), "energy_wh": 500, "price": 20, "buyer": ""}
    response = post(client_for(prosumer), "/offers", body)
    assert commit(market) == ["ok"]
    offer: str = response.json()["offer"]["id"]
    return offer


@pytest.mark.parametrize(
    "body",
    [{"energy_wh": 0}, {"energy_wh": -5}, {"energy_wh": 1.5}, {"energy_wh": "5"}, {}, []],
)
def test_it_refuses_a_bad_acceptance_and_sends_nothing(
    open_offer: str, consumer: User, body: Any
) -> None:
    response = post(client_for(consumer), f"/offers/{open_offer}/accept", body)
    assert error_of(response) == (400, "malformed" if body == [] else "bad_energy")
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("status=lost", "bad_status"),
        ("side=both", "bad_side"),
        ("slot=2026-01-01T12:15:00", "bad_slot"),
        ("slot=2026-01-01T12:15:00+00:00", "bad_slot"),  # a "+" not URL-encoded is a space
        ("slot=yesterday", "bad_slot"),
        ("slot=0001-01-01T00:00:00%2B05:00", "bad_slot"),
    ],
)
def test_it_refuses_a_bad_filter_with_its_code(
    market: Site, prosumer: User, query: str, code: str
) -> None:
    assert error_of(client_for(prosumer).get(f"{API}/orders?{query}")) == (400, code)
    if not query.startswith("side"):
        assert error_of(client_for(prosumer).get(f"{API}/offers?{query}")) == (400, code)


def test_every_code_of_a_field_is_tested() -> None:
    tested = {code for _, code in [*BAD_ORDERS.values(), *BAD_OFFERS.values()]}
    assert set(market_api.FIELD_CODES.values()) - {"bad_status"} <= tested
    assert set(market_api.OUT_OF_BOUNDS.values()) <= tested


# --- who may do what ---------------------------------------------------------------------------


def test_only_households_trade(
    market: Site, grid_operator: User, regulator: User, admin: User, open_offer: str
) -> None:
    slot = iso(open_slot(market))
    for who in (grid_operator, regulator, admin):
        client = client_for(who)
        order = {"slot": slot, "side": "buy", "energy_wh": 1, "price": 1}
        assert error_of(post(client, "/orders", order)) == (403, "forbidden")
        offer = {"slot": slot, "energy_wh": 1, "price": 1, "buyer": ""}
        assert error_of(post(client, "/offers", offer)) == (403, "forbidden")
        accept = post(client, f"/offers/{open_offer}/accept", {"energy_wh": 1})
        assert error_of(accept) == (403, "forbidden")
        assert error_of(client.delete(f"{API}/offers/{open_offer}")) == (403, "forbidden")
        assert error_of(client.delete(f"{API}/orders/{'0' * 64}")) == (403, "forbidden")
        # They may read the market.
        assert client.get(f"{API}/market/slots").status_code == 200
        assert results("/orders", client) == []
    assert not SubmittedTransaction.objects.exists()


def test_another_households_order_is_not_found(
    market: Site, prosumer: User, outsider: User
) -> None:
    order = place(client_for(prosumer), open_slot(market), "sell", 100, 50)
    commit(market)
    other = client_for(outsider)
    assert error_of(other.get(f"{API}/orders/{order}")) == (404, "not_found")
    assert error_of(other.delete(f"{API}/orders/{order}")) == (404, "unknown_order")
    assert results("/orders", other) == []
    assert results(f"/orders?slot={iso(open_slot(market))}", other) == []
    assert not SubmittedTransaction.objects.exists()
    assert client_for(prosumer).get(f"{API}/orders/{order}").json()["status"] == "open"


@pytest.mark.parametrize("order_id", ["0" * 64, "A" * 64, "not-an-id", "x" * 300, "%00", "%ff"])
def test_it_does_not_know_orders_that_do_not_exist(
    market: Site, prosumer: User, order_id: str
) -> None:
    client = client_for(prosumer)
    assert error_of(client.get(f"{API}/orders/{order_id}")) == (404, "not_found")
    assert error_of(client.delete(f"{API}/orders/{order_id}")) == (404, "unknown_order")
    assert error_of(client.get(f"{API}/offers/{order_id}")) == (404, "not_found")
    assert error_of(client.delete(f"{API}/offers/{order_id}")) == (404, "unknown_offer")
    accept = post(client, f"/offers/{order_id}/accept", {"energy_wh": 1})
    assert error_of(accept) == (404, "unknown_offer")
    assert not SubmittedTransaction.objects.exists()


def test_an_account_not_on_the_ledger_has_no_money_and_cannot_trade(
    market: Site, prosumer: User
) -> None:
    newcomer = UserFactory(name="Nina Newcomer")
    client = client_for(newcomer)
    assert error_of(client.get(f"{API}/account")) == (404, "not_on_ledger")
    assert results("/orders", client) == []
    assert results("/contracts", client) == []
    order = {"slot": iso(open_slot(market)), "side": "buy", "energy_wh": 1, "price": 1}
    assert error_of(post(client, "/orders", order)) == (400, "unknown_sender")
    assert not SubmittedTransaction.objects.exists()


def test_an_account_that_holds_its_own_key_reads_but_the_site_cannot_sign_for_it(
    market: Site, prosumer: User, consumer: User
) -> None:
    slot = open_slot(market)
    offer = {"slot": iso(slot), "energy_wh": 100, "price": 9, "buyer": consumer.identity.address}
    assert post(client_for(prosumer), "/offers", offer).status_code == 202
    assert commit(market) == ["ok"]
    Identity.objects.filter(pk=consumer.identity.pk).update(sealed_private_key=None)
    client = client_for(consumer)

    assert client.get(f"{API}/account").json()["balance"] == 100_000
    assert [o["buyer"] for o in results("/offers", client)] == [consumer.identity.address]
    assert client.get(f"{API}/market/slots").status_code == 200
    assert client.get(f"{API}/market/slots/{iso(slot)}/book").status_code == 200
    assert results("/orders", client) == []
    assert results("/contracts", client) == []

    order = {"slot": iso(slot), "side": "buy", "energy_wh": 1, "price": 1}
    assert error_of(post(client, "/orders", order)) == (400, "not_custodial")
    offer_id = results("/offers", client)[0]["id"]
    assert error_of(post(client, f"/offers/{offer_id}/accept", {"energy_wh": 1})) == (
        400,
        "not_custodial",
    )
    assert not SubmittedTransaction.objects.exists()


def test_an_account_that_holds_its_own_key_trades_through_the_ledger_endpoint(
    market: Site, prosumer: User, consumer: User
) -> None:
    # The consumer takes over its key (key.rotate to a key only it holds): the site can no
    # longer sign for it, so it signs its own market transactions and posts them to the ledger.
    own = KeyPair.generate()
    address = consumer.identity.address
    rotate = sign_transaction(
        keypair=account_services.identity_unseal(identity_=consumer.identity),
        chain=CHAIN,
        type="key.rotate",
        nonce=0,
        payload={"public_key": own.public_key_hex},
    )
    assert commit_transactions(market, [rotate]) == ["ok"]
    Identity.objects.filter(pk=consumer.identity.pk).update(sealed_private_key=None)

    slot = open_slot(market)
    place(client_for(prosumer), slot, "sell", 2_000, 20)
    assert commit(market) == ["ok"]
    client = client_for(consumer)
    order = sign_transaction(
        keypair=own,
        sender=address,  # the address stays; the key is new
        chain=CHAIN,
        type="market.order.place",
        nonce=1,
        payload={"slot": slot, "side": "buy", "energy_wh": 500, "price": 25},
    )
    response = post(client, "/ledger/transactions", order.to_json())
    assert response.status_code == 202, response.json()
    assert response.json()["id"] == order.id
    assert commit(market) == ["ok"]

    mine = results("/orders", client)
    assert [(o["id"], o["status"], o["side"]) for o in mine] == [(order.id, "filled", "buy")]
    [contract] = results("/contracts", client)
    assert (contract["buyer"], contract["energy_wh"], contract["price"]) == (address, 500, 20)


def commit_transactions(site: Site, transactions: list[Any]) -> list[str]:
    return list(site.commit(transactions).results)


# --- the validators' refusals: at once from the rehearsal, or in the block -----------------------


def _too_dear(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market)), "side": "buy", "energy_wh": 10**6, "price": 10**5}
    return "/orders", body


def _misaligned(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market) + 60_000), "side": "buy", "energy_wh": 1, "price": 1}
    return "/orders", body


def _past(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market) - 4 * SLOT_MS), "side": "buy", "energy_wh": 1, "price": 1}
    return "/orders", body


def _beyond_horizon(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    later = open_slot(market) + 100 * SLOT_MS
    return "/orders", {"slot": iso(later), "side": "buy", "energy_wh": 1, "price": 1}


def _too_much_energy(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market)), "side": "sell", "energy_wh": 10**6 + 1, "price": 1}
    return "/orders", body


def _opposite_side(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    slot = open_slot(market)
    place(client_for(users["me"]), slot, "sell", 100, 90)
    assert commit(market) == ["ok"]
    return "/orders", {"slot": iso(slot), "side": "buy", "energy_wh": 100, "price": 10}


def _unknown_buyer(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    nobody = HOUSEHOLDS[7].address  # a well-formed address no account holds
    return "/offers", {"slot": iso(open_slot(market)), "energy_wh": 1, "price": 1, "buyer": nobody}


def _own_offer(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market)), "energy_wh": 100, "price": 5, "buyer": ""}
    offer = post(client_for(users["me"]), "/offers", body).json()["offer"]["id"]
    assert commit(market) == ["ok"]
    return f"/offers/{offer}/accept", {"energy_wh": 10}


def _exceeds_offer(market: Site, users: dict[str, User]) -> tuple[str, Any]:
    body = {"slot": iso(open_slot(market)), "energy_wh": 100, "price": 5, "buyer": ""}
    offer = post(client_for(users["other"]), "/offers", body).json()["offer"]["id"]
    assert commit(market) == ["ok"]
    return f"/offers/{offer}/accept", {"energy_wh": 101}


REHEARSED: dict[str, Any] = {
    "insufficient_free_balance": _too_dear,
    "slot_misaligned": _misaligned,
    "slot_past": _past,
    "beyond_horizon": _beyond_horizon,
    "energy_out_of_bounds": _too_much_energy,
    "opposite_side_open": _opposite_side,
    "unknown_account": _unknown_buyer,
    "own_offer": _own_offer,
    "exceeds_offer": _exceeds_offer,
}


@pytest.mark.parametrize("code", REHEARSED)
def test_it_answers_the_validators_refusal_at_once_and_sends_nothing(
    market: Site, prosumer: User, consumer: User, code: str
) -> None:
    path, body = REHEARSED[code](market, {"me": prosumer, "other": consumer})
    response = post(client_for(prosumer), path, body)
    assert error_of(response) == (400, code)
    assert response.json()["message"] == MESSAGES[code]
    assert not SubmittedTransaction.objects.exists()


def test_the_block_decides_what_the_rehearsal_could_not_foresee(
    market: Site, consumer: User
) -> None:
    # Each bid fits the free balance alone (the rehearsal does not count pending ones); the
    # block refuses the second, and only the first order ever appears.
    client = client_for(consumer)
    slot = open_slot(market)
    first = place(client, slot, "buy", 1_000_000, 60)  # locks 60 000 of 100 000
    second = place(client, slot, "buy", 1_000_000, 50)
    assert commit(market) == ["ok", "insufficient_free_balance"]
    assert [o["id"] for o in results("/orders", client)] == [first]
    assert error_of(client.get(f"{API}/orders/{second}")) == (404, "not_found")
    assert client.get(f"{API}/account").json()["locked"] == 60_000


ENDPOINTS = [
    ("get", "/orders"),
    ("post", "/orders"),
    ("get", f"/orders/{'0' * 64}"),
    ("delete", f"/orders/{'0' * 64}"),
    ("get", "/market/slots"),
    ("get", "/market/slots/2026-01-01T12:15:00Z/book"),
    ("get", "/offers"),
    ("post", "/offers"),
    ("get", f"/offers/{'0' * 64}"),
    ("delete", f"/offers/{'0' * 64}"),
    ("post", f"/offers/{'0' * 64}/accept"),
    ("get", "/contracts"),
    ("get", "/account"),
    ("get", "/tariffs"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_it_turns_anonymous_callers_away(site: Site, method: str, path: str) -> None:
    response = getattr(Client(), method)(f"{API}{path}")
    assert error_of(response) == (401, "not_authenticated")


# --- the schema --------------------------------------------------------------------------------


def test_it_publishes_every_market_path_in_the_schema(db: None) -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    paths = schema["paths"]
    market_paths = {
        path: sorted(paths[path])
        for path in paths
        # Theirs are checked by their own tests.
        if not path.startswith(
            (
                f"{API}/ledger/",
                f"{API}/meters",
                f"{API}/supervision/",
                f"{API}/flexibility/",
                f"{API}/retail/",
            )
        )
    }
    assert market_paths == {
        f"{API}/orders": ["get", "post"],
        f"{API}/orders/{{id}}": ["delete", "get"],
        f"{API}/market/slots": ["get"],
        f"{API}/market/slots/{{slot}}/book": ["get"],
        f"{API}/offers": ["get", "post"],
        f"{API}/offers/{{id}}": ["delete", "get"],
        f"{API}/offers/{{id}}/accept": ["post"],
        f"{API}/contracts": ["get"],
        f"{API}/account": ["get"],
        f"{API}/tariffs": ["get"],
    }
    assert len(ENDPOINTS) == sum(len(methods) for methods in market_paths.values())
    operations = {
        operation["operationId"] for path in market_paths for operation in paths[path].values()
    }
    assert operations == {
        "market_order_list",
        "market_order_place",
        "market_order_get",
        "market_order_cancel",
        "market_slot_list",
        "market_book_get",
        "market_offer_list",
        "market_offer_post",
        "market_offer_get",
        "market_offer_withdraw",
        "market_offer_accept",
        "market_contract_list",
        "market_account_get",
        "market_tariff_list",
    }
    place_order = paths[f"{API}/orders"]["post"]
    assert set(place_order["responses"]) == {"202", "400", "401", "403"}
    for code in ("bad_slot", "bad_side", "bad_energy", "bad_price", "opposite_side_open"):
        assert f"`{code}`" in place_order["description"]
    listed = {p["name"] for p in paths[f"{API}/orders"]["get"]["parameters"]}
    assert listed == {"limit", "offset", "status", "slot", "side", "carrier"}
    assert "`bad_carrier`" in place_order["description"]
    book = paths[f"{API}/market/slots/{{slot}}/book"]["get"]
    assert {p["name"] for p in book["parameters"]} == {"slot", "carrier"}
    assert "not_on_ledger" in paths[f"{API}/account"]["get"]["responses"]["404"]["description"]
    placement = schema["components"]["schemas"]["MarketOrderPlacementRequest"]["properties"]
    assert (placement["energy_wh"]["type"], placement["slot"]["format"]) == (
        "integer",
        "date-time",
    )
