"""The market's pages: households trade in the browser, and see the chain's blocks in the lists.

Real transactions signed by the site (``SubmittedTransaction``), then real certified blocks of
them projected into the read models, as the validators would commit them; the pages are read
back with Django's test client. Blocks are dated "now" because the site's clock decides which
slots are open.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from ledger.blocks import Block
from ledger.crypto import Transaction
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms, ms_of_datetime
from market import selectors
from market.forms import Inexact, NotANumber, day_text, scaled, slot_label
from market.models import Contract, Offer, Order, Tariff
from meters.models import Meter
from tests.ledger.chains import OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, use_network
from tests.meters.support import register, store_readings

pytestmark = pytest.mark.django_db
MARKET = "/market/"
TAKES_EFFECT = "It takes effect when its block commits."


# --- the network, blocks "now", and households on it --------------------------------------------


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def commit(site: Site, transactions: list[Transaction]) -> Block:
    """A block of ``transactions`` dated now (and after the last block)."""
    block = site.commit(transactions, timestamp_ms=max(site.blocks[-1].timestamp_ms + 1, _now_ms()))
    assert "ok" in block.results or not transactions
    return block


def commit_pending(site: Site) -> Block:
    """Commit what the site submitted, in order, as the validators would; it must all pass."""
    rows = SubmittedTransaction.objects.order_by("id")
    block = commit(site, [Transaction.from_json(row.body) for row in rows])
    assert set(block.results) == {"ok"}, block.results
    assert not SubmittedTransaction.objects.exists()
    return block


def enrol(site: Site, *users: User, credits: int = 100_000) -> None:
    """Register households on the ledger, give them credits and a feeder, in one block."""
    txs = []
    for user in users:
        address = user.identity.address
        public_key = user.identity.public_key
        txs += [
            site.sign(
                OPERATOR,
                "account.register",
                address=address,
                public_key=public_key,
                role="household",
            ),
            site.sign(OPERATOR, "credit.issue", to=address, amount=credits),
            site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
        ]
    block = commit(site, txs)
    assert set(block.results) == {"ok"}


@pytest.fixture
def seller(site: Site, prosumer: User, consumer: User) -> User:
    enrol(site, prosumer, consumer)
    return prosumer


@pytest.fixture
def buyer(seller: User, consumer: User) -> User:
    return consumer


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_slot() -> int:
    """An open slot, a few slots ahead: still open however long the test takes."""
    from ledger.projection import ms_of_datetime

    return ms_of_datetime(selectors.slot_list()[2].start)


def submitted() -> dict[str, Any]:
    """The one transaction the site submitted: its type and payload."""
    row = SubmittedTransaction.objects.get()
    return {"type": row.body["type"], "payload": row.body["payload"]}


def order_data(slot: int, /, **fields: str) -> dict[str, str]:
    """The order form as sent; ``confirmed`` is its "Place it anyway" (market.warnings), which
    the tests of other things press at once."""
    data = {
        "slot": str(slot),
        "side": "buy",
        "energy": "1.5",
        "energy_unit": "kWh",
        "price": "25",
        "price_unit": "cents",
        "confirmed": "yes",
    } | fields
    return {f"order-{name}": value for name, value in data.items()}


def offer_data(slot: int, /, **fields: str) -> dict[str, str]:
    """The offer form as sent; ``confirmed`` is its "Offer it anyway" (market.warnings)."""
    data = {
        "slot": str(slot),
        "energy": "1",
        "energy_unit": "kWh",
        "price": "0.20",
        "price_unit": "major",
        "buyer": "",
        "confirmed": "yes",
    } | fields
    return {f"offer-{name}": value for name, value in data.items()}


def place(client: Client, slot: int, **fields: str) -> None:
    response = client.post(f"{MARKET}orders/place/", order_data(slot, **fields))
    assert response.status_code == 302, response.content.decode()


# --- pages ---------------------------------------------------------------------------------------


def test_it_shows_the_trading_page_and_its_live_lists_to_a_household(seller: User) -> None:
    client = client_for(seller)
    page = client.get(MARKET)
    assert page.status_code == 200
    html = page.content.decode()
    for heading in (
        "Your money",
        "Open slots",
        "Order book for",
        "Place an order",
        "My orders",
        "Offers for you",
        "Offer energy",
        "My offers",
        "My contracts",
    ):
        assert heading in html
    assert 'data-live-socket="/ws/ledger/"' in html
    assert 'data-live-target="#market" data-live-targeted' in html
    # The household's own lists follow its account, the book its slot (ledger.live); the
    # community's lists (slots, offers, the trading notice) follow every block.
    assert html.count('hx-trigger="live:refresh from:#market, live:row"') == 5
    assert html.count('hx-trigger="live:refresh from:#market, live:block"') == 3
    address = seller.identity.address
    assert html.count(f'data-live-topic="account.{address}"') == 4
    book_slot = re.search(r'id="market-book" data-live-topic="slot\.([0-9]+)"', html)
    assert book_slot is not None
    assert f"book/?slot={book_slot.group(1)}" in html  # the book it shows
    assert "€1,000.00" in html  # the balance, all of it free
    slot = a_slot()
    for partial in (
        "money/",
        "slots/",
        f"book/?slot={slot}",
        "orders/",
        "offers/",
        "offers/mine/",
        "contracts/",
    ):
        assert client.get(f"{MARKET}{partial}").status_code == 200, partial


def test_it_lists_the_open_slots_and_shows_the_chosen_ones_book(seller: User) -> None:
    slot = a_slot()
    html = client_for(seller).get(MARKET, {"slot": slot}).content.decode()
    assert html.count("data-slot=") > 0
    assert f'<tr data-slot="{slot}" class="chosen">' in html
    assert "No bids." in html
    assert "No asks." in html
    assert "Trading closes at" in html


def test_the_household_dashboard_shows_its_money_and_links_to_the_market(seller: User) -> None:
    html = client_for(seller).get("/dashboard/").content.decode()
    assert '<dd data-testid="balance">€1,000.00</dd>' in html
    assert '<dd data-testid="locked">€0.00</dd>' in html
    assert '<dd data-testid="free">€1,000.00</dd>' in html
    assert 'href="/market/"' in html


def test_it_says_plainly_when_the_household_is_not_on_the_ledger(
    site: Site, outsider: User
) -> None:
    client = client_for(outsider)
    for url in ("/dashboard/", MARKET):
        html = client.get(url).content.decode()
        assert "Your household is not on the ledger yet." in html
        assert "The grid operator enrols it" in html
    # Trying anyway: the site's own answer, next to the form, and nothing is sent.
    response = client.post(f"{MARKET}orders/place/", order_data(a_slot()))
    assert response.status_code == 400
    assert "No account is registered at the sender&#x27;s address." in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


# --- order entry ---------------------------------------------------------------------------------


def test_it_places_an_order_and_submits_exactly_one_transaction(seller: User) -> None:
    slot = a_slot()
    client = client_for(seller)
    response = client.post(
        f"{MARKET}orders/place/",
        order_data(slot, side="sell", energy="1.5", price="0.25", price_unit="major"),
    )
    assert response.status_code == 302
    assert response["Location"] == f"{MARKET}?slot={slot}"
    assert submitted() == {
        "type": "market.order.place",
        "payload": {"slot": slot, "side": "sell", "energy_wh": 1_500, "price": 25},
    }
    html = client.get(response["Location"]).content.decode()
    assert "Your order to sell 1.5 kWh at €0.25/kWh for" in html
    assert TAKES_EFFECT in html


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"slot": ""}, "Choose a delivery slot."),
        ({"slot": "900000"}, "That slot is not open for trading now; choose one from the list."),
        ({"side": ""}, "Choose buy or sell."),
        ({"side": "hold"}, "Choose buy or sell."),
        ({"energy": ""}, "Enter the energy."),
        ({"energy": "lots"}, "Enter the energy as a number, such as 1.5 (kWh) or 800 (Wh)."),
        ({"energy": "-1"}, "Enter the energy as a number"),
        ({"energy": "1e3"}, "Enter the energy as a number"),
        ({"energy": "1.0005"}, "Energy is traded in whole Wh: at most three decimals in kWh."),
        ({"energy": "1.5", "energy_unit": "Wh"}, "Energy in Wh must be a whole number."),
        ({"energy": "0"}, "The energy must be from 0.001 kWh to 1,000 kWh."),
        ({"energy": "1000.001"}, "The energy must be from 0.001 kWh to 1,000 kWh."),
        ({"energy_unit": "MWh"}, "Select a valid choice."),
        ({"price": ""}, "Enter the price per kWh."),
        ({"price": "cheap"}, "Enter the price per kWh as a number, such as 25 (cents)."),
        ({"price": "12.5"}, "Prices are whole cents per kWh: no decimals in cents."),
        (
            {"price": "0.255", "price_unit": "major"},
            "Prices are whole cents per kWh: at most two decimals.",
        ),
        ({"price": "0"}, "The price must be from €0.01/kWh to €1,000.00/kWh."),
        ({"price": "1000.01", "price_unit": "major"}, "The price must be from €0.01/kWh"),
    ],
)
def test_bad_order_input_says_why_next_to_the_form_and_submits_nothing(
    seller: User, fields: dict[str, str], message: str
) -> None:
    response = client_for(seller).post(f"{MARKET}orders/place/", order_data(a_slot(), **fields))
    assert response.status_code == 400
    html = response.content.decode()
    assert '<p class="field-error" id="id_order-' in html
    assert message in html
    assert "Place the order" in html  # the form is there again, with what was typed
    assert not SubmittedTransaction.objects.exists()
    assert not Order.objects.exists()


def test_the_contracts_refusals_are_said_next_to_the_field_and_nothing_is_submitted(
    site: Site, seller: User, outsider: User
) -> None:
    """The site rehearses each transaction on its replica: what the validators would refuse is
    refused at once, with the service's message, next to the field it is about."""
    slot = a_slot()
    client = client_for(seller)
    place(client, slot, side="sell", energy="1", price="30")
    commit_pending(site)

    cases = [
        # The household's resting sell order: no buying in the same slot (no self-trades).
        (
            order_data(slot, side="buy"),
            "side",
            "You have orders on the other side of this slot; cancel them first.",
        ),
        # A deposit of 20 % of 1,000 kWh at €1,000/kWh is far more than the €1,000 balance.
        (
            order_data(slot, side="sell", energy="1000", price="1000", price_unit="major"),
            None,
            "Not enough free credits",
        ),
    ]
    for data, field, message in cases:
        response = client.post(f"{MARKET}orders/place/", data)
        assert response.status_code == 400
        html = response.content.decode()
        assert message.replace("'", "&#x27;") in html
        if field:
            assert f'<p class="field-error" id="id_order-{field}_error">Error: {message}' in html
        else:
            summary = '<div class="error-summary" role="alert" tabindex="-1" data-focus-on-load>'
            assert summary in html
        assert not SubmittedTransaction.objects.exists()

    # Naming yourself as the buyer of your own offer.
    response = client.post(f"{MARKET}offers/post/", offer_data(slot, buyer=seller.identity.address))
    assert response.status_code == 400
    assert 'id="id_offer-buyer_error">Error: That is your own offer.' in response.content.decode()

    # A household on the ledger without a feeder yet.
    commit(
        site,
        [
            site.sign(
                OPERATOR,
                "account.register",
                address=outsider.identity.address,
                public_key=outsider.identity.public_key,
                role="household",
            ),
            site.sign(OPERATOR, "credit.issue", to=outsider.identity.address, amount=1_000),
        ],
    )
    response = client_for(outsider).post(f"{MARKET}orders/place/", order_data(slot))
    assert response.status_code == 400
    assert "Your connection is not assigned to a feeder yet" in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("text", "places", "value"),
    [("1.5", 3, 1_500), ("0.001", 3, 1), (" 2 ", 3, 2_000), ("7.", 0, 7), (".25", 2, 25)],
)
def test_typed_numbers_become_exact_integers(text: str, places: int, value: int) -> None:
    assert scaled(text, places) == value
    assert scaled("1.10000000000000000000", 1) == 11  # trailing zeros are not rounding


@pytest.mark.parametrize("text", ["", ".", "1,5", "1.2.3", "+1", "NaN", "1e3", "٣", "9" * 41])
def test_it_refuses_what_is_not_a_plain_number(text: str) -> None:
    with pytest.raises(NotANumber):
        scaled(text, 3)


def test_it_refuses_what_it_would_have_to_round() -> None:
    # 29 significant digits: a Decimal context of 28 digits would round this to 1000 Wh.
    with pytest.raises(Inexact):
        scaled("1.0000000000000000000000000001", 3)
    with pytest.raises(Inexact):
        scaled("0.0005", 3)


# --- the lists follow committed blocks -----------------------------------------------------------


def test_the_book_and_my_orders_show_committed_orders_and_fills(
    site: Site, seller: User, buyer: User
) -> None:
    slot = a_slot()
    seller_client, buyer_client = client_for(seller), client_for(buyer)
    place(seller_client, slot, side="sell", energy="3", price="20")
    place(seller_client, slot, side="sell", energy="1", price="22")
    assert SubmittedTransaction.objects.count() == 2
    # Not in the lists before its block commits.
    assert "You have no orders yet." in seller_client.get(f"{MARKET}orders/").content.decode()
    commit_pending(site)

    book = buyer_client.get(f"{MARKET}book/", {"slot": slot}).content.decode()
    assert "<td>€0.20/kWh</td><td>3 kWh</td><td>1</td>" in book
    assert "<td>€0.22/kWh</td><td>1 kWh</td><td>1</td>" in book
    assert "No bids." in book
    slots = buyer_client.get(f"{MARKET}slots/").content.decode()
    assert "€0.20/kWh" in slots  # the best ask of the slot
    orders = seller_client.get(f"{MARKET}orders/").content.decode()
    assert orders.count('<td data-label="Status">Open</td>') == 2
    assert orders.count(">Cancel</button>") == 2

    place(buyer_client, slot, side="buy", energy="2000", energy_unit="Wh", price="25")
    commit_pending(site)
    cheapest = Order.objects.get(owner=seller.identity.address, price=20)
    row = seller_client.get(f"{MARKET}orders/").content.decode()
    row = row[row.index(f'data-order="{cheapest.id}"') :].split("</tr>")[0]
    # energy, filled, remaining, status
    assert (
        '<td data-label="Energy">3 kWh</td>\n      <td data-label="Filled">2 kWh</td>\n      '
        '<td data-label="Remaining">1 kWh</td>\n      <td data-label="Status">Open</td>' in row
    )
    bought = buyer_client.get(f"{MARKET}orders/").content.decode()
    assert '<td data-label="Status">Filled</td>' in bought
    assert ">Cancel</button>" not in bought
    book = buyer_client.get(f"{MARKET}book/", {"slot": slot}).content.decode()
    assert "<td>€0.20/kWh</td><td>1 kWh</td><td>1</td>" in book

    contract = Contract.objects.get()
    for client, side, other in ((seller_client, "sell", buyer), (buyer_client, "buy", seller)):
        html = client.get(f"{MARKET}contracts/").content.decode()
        assert f'data-contract="{contract.id}"' in html
        assert f'<td data-label="You">{side}</td>' in html
        assert '<td data-label="Energy">2 kWh</td>' in html
        # The counterparty as people read it, never its address.
        assert '<td data-label="With" data-counterparty>a neighbour on feeder-1</td>' in html
        assert other.identity.address not in html
    money = buyer_client.get(f"{MARKET}money/").content.decode()
    assert '<dd data-testid="locked">€0.40</dd>' in money  # 2 kWh at €0.20: the escrow
    assert '<dd data-testid="free">€999.60</dd>' in money


def test_it_cancels_an_open_order(site: Site, seller: User, buyer: User) -> None:
    slot = a_slot()
    client = client_for(seller)
    place(client, slot, side="sell", energy="1", price="30")
    commit_pending(site)
    order = Order.objects.get()

    # Another household's order is no order of yours: refused, nothing sent.
    response = client_for(buyer).post(f"{MARKET}orders/{order.id}/cancel/")
    assert response.status_code == 400
    assert "No such open order." in response.content.decode()
    assert not SubmittedTransaction.objects.exists()

    response = client.post(f"{MARKET}orders/{order.id}/cancel/")
    assert response.status_code == 302
    assert response["Location"] == f"{MARKET}?slot={slot}"
    assert submitted() == {"type": "market.order.cancel", "payload": {"order": order.id}}
    assert "The cancellation of your order was submitted" in client.get(MARKET).content.decode()
    commit_pending(site)
    orders = client.get(f"{MARKET}orders/").content.decode()
    assert '<td data-label="Status">Cancelled</td>' in orders
    assert ">Cancel</button>" not in orders

    # Cancelled already: refused, nothing sent.
    again = client.post(f"{MARKET}orders/{order.id}/cancel/")
    assert again.status_code == 400
    assert "No such open order." in again.content.decode()
    assert not SubmittedTransaction.objects.exists()


# --- bilateral offers ----------------------------------------------------------------------------


def test_a_seller_offers_to_a_named_buyer_who_accepts_part_of_it(
    site: Site, seller: User, buyer: User, outsider: User
) -> None:
    enrol(site, outsider)
    slot = a_slot()
    seller_client, buyer_client = client_for(seller), client_for(buyer)
    response = seller_client.post(
        f"{MARKET}offers/post/",
        offer_data(slot, energy="1", price="0.20", buyer=buyer.identity.address.upper()),
    )
    assert response.status_code == 302
    assert submitted() == {
        "type": "market.offer.post",
        "payload": {
            "slot": slot,
            "energy_wh": 1_000,
            "price": 20,
            "buyer": buyer.identity.address,
        },
    }
    html = seller_client.get(response["Location"]).content.decode()
    assert "Your offer of 1 kWh at €0.20/kWh for" in html
    assert f"to {buyer.identity.address} was submitted" in html
    commit_pending(site)
    offer = Offer.objects.get()
    assert (
        f'data-my-offer="{offer.id}"' in seller_client.get(f"{MARKET}offers/mine/").content.decode()
    )
    assert f'data-offer="{offer.id}"' in buyer_client.get(f"{MARKET}offers/").content.decode()
    # Made to the buyer: another household neither sees it nor can take it.
    outsider_client = client_for(outsider)
    assert (
        f'data-offer="{offer.id}"' not in outsider_client.get(f"{MARKET}offers/").content.decode()
    )
    refused = outsider_client.post(
        f"{MARKET}offers/{offer.id}/accept/",
        {f"accept-{offer.id}-energy": "1", f"accept-{offer.id}-energy_unit": "kWh"},
    )
    assert refused.status_code == 400
    assert "No such open offer." in refused.content.decode()
    assert not SubmittedTransaction.objects.exists()

    accept = {f"accept-{offer.id}-energy": "400", f"accept-{offer.id}-energy_unit": "Wh"}
    response = buyer_client.post(f"{MARKET}offers/{offer.id}/accept/", accept)
    assert response.status_code == 302
    assert submitted() == {
        "type": "market.offer.accept",
        "payload": {"offer": offer.id, "energy_wh": 400},
    }
    assert (
        "Your acceptance of 0.4 kWh of the offer at €0.20/kWh"
        in buyer_client.get(response["Location"]).content.decode()
    )
    commit_pending(site)
    contract = Contract.objects.get()
    assert (contract.kind, contract.energy_wh, contract.price) == ("offer", 400, 20)
    assert (
        f'data-contract="{contract.id}"' in buyer_client.get(f"{MARKET}contracts/").content.decode()
    )
    offers = buyer_client.get(f"{MARKET}offers/").content.decode()
    assert '<td data-label="Left">0.6 kWh</td>' in offers  # what the offer has left

    # More than is left: said next to the offers, nothing sent.
    too_much = {f"accept-{offer.id}-energy": "0.7", f"accept-{offer.id}-energy_unit": "kWh"}
    response = buyer_client.post(f"{MARKET}offers/{offer.id}/accept/", too_much)
    assert response.status_code == 400
    assert "The offer has 0.6 kWh left." in response.content.decode()
    assert not SubmittedTransaction.objects.exists()

    # The seller withdraws the rest.
    response = seller_client.post(f"{MARKET}offers/{offer.id}/withdraw/")
    assert response.status_code == 302
    assert submitted() == {"type": "market.offer.withdraw", "payload": {"offer": offer.id}}
    commit_pending(site)
    mine = seller_client.get(f"{MARKET}offers/mine/").content.decode()
    assert '<td data-label="Status">Withdrawn</td>' in mine
    assert ">Withdraw</button>" not in mine
    assert "No open offers for you." in buyer_client.get(f"{MARKET}offers/").content.decode()


def test_an_offer_to_anyone_is_accepted_in_full(site: Site, seller: User, buyer: User) -> None:
    slot = a_slot()
    client = client_for(seller)
    assert client.post(f"{MARKET}offers/post/", offer_data(slot, energy="750", energy_unit="Wh"))
    assert submitted()["payload"]["buyer"] == ""
    commit_pending(site)
    offer = Offer.objects.get()
    offers = client_for(buyer).get(f"{MARKET}offers/").content.decode()
    assert '<td data-label="To">anyone</td>' in offers
    assert 'value="750"' in offers  # all of it, unless the buyer types less
    assert offers.count('hx-preserve="true"') == 2  # typing survives a live refresh
    response = client_for(buyer).post(
        f"{MARKET}offers/{offer.id}/accept/",
        {f"accept-{offer.id}-energy": "750", f"accept-{offer.id}-energy_unit": "Wh"},
    )
    assert response.status_code == 302
    commit_pending(site)
    assert Offer.objects.get().status == "taken"
    assert (
        '<td data-label="Status">Taken</td>' in client.get(f"{MARKET}offers/mine/").content.decode()
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"buyer": "not-an-address"}, "That is not an account address"),
        ({"buyer": "01" + "0" * 48}, "That is not an account address"),
        ({"energy": "0.0001"}, "at most three decimals in kWh"),
        ({"price": "0.001"}, "at most two decimals"),
        ({"slot": "1"}, "That slot is not open for trading now"),
    ],
)
def test_bad_offer_input_says_why_and_submits_nothing(
    seller: User, fields: dict[str, str], message: str
) -> None:
    response = client_for(seller).post(f"{MARKET}offers/post/", offer_data(a_slot(), **fields))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert '<p class="field-error" id="id_offer-' in html
    assert not SubmittedTransaction.objects.exists()


# --- who may do what -----------------------------------------------------------------------------


@pytest.mark.usefixtures("site")
def test_only_households_trade_but_anyone_signed_in_sees_the_book(
    grid_operator: User, regulator: User, admin: User
) -> None:
    slot = a_slot()
    actions = [
        ("orders/place/", order_data(slot)),
        ("orders/abc/cancel/", {}),
        ("offers/post/", offer_data(slot)),
        ("offers/abc/accept/", {"accept-abc-energy": "1", "accept-abc-energy_unit": "kWh"}),
        ("offers/abc/withdraw/", {}),
    ]
    for who in (grid_operator, regulator, admin):
        client = client_for(who)
        page = client.get(MARKET)
        assert page.status_code == 200
        html = page.content.decode()
        assert "Only households trade." in html
        assert "Place an order" not in html
        assert client.get(f"{MARKET}book/", {"slot": slot}).status_code == 200
        assert client.get(f"{MARKET}slots/").status_code == 200
        for partial in ("money/", "orders/", "offers/", "offers/mine/", "contracts/"):
            assert client.get(f"{MARKET}{partial}").status_code == 403, partial
        for url, data in actions:
            assert client.post(f"{MARKET}{url}", data).status_code == 403, url
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.usefixtures("site")
def test_anonymous_visitors_are_sent_to_log_in() -> None:
    client = Client()
    for url in (MARKET, f"{MARKET}book/?slot=0", f"{MARKET}orders/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.post(f"{MARKET}orders/place/", order_data(a_slot())).status_code == 302
    assert not SubmittedTransaction.objects.exists()


def test_actions_want_a_post_and_partials_a_get(seller: User) -> None:
    client = client_for(seller)
    assert client.get(f"{MARKET}orders/place/").status_code == 405
    assert client.post(f"{MARKET}orders/").status_code == 405
    for slot in ("", "soon", "-900000", "9" * 16, "٣"):
        assert client.get(f"{MARKET}book/", {"slot": slot}).status_code == 400  # which slot?
        assert client.get(MARKET, {"slot": slot}).status_code == 200  # the default slot


# --- second looks: an order that looks like a mistake (market.warnings) ---------------------------
# The household may still place it: "Place it anyway" sends it.

WARN_TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}


def place_unconfirmed(user: User, slot: int, **fields: str) -> tuple[int, str]:
    """Send the order form without "Place it anyway": (status, page)."""
    response = client_for(user).post(
        f"{MARKET}orders/place/", order_data(slot, confirmed="", **fields)
    )
    return response.status_code, response.content.decode()


def test_a_bid_far_above_the_market_is_shown_back_before_it_is_sent(
    site: Site, buyer: User
) -> None:
    slot = a_slot()
    commit(
        site, [site.sign(OPERATOR, "market.tariff.publish", from_slot=slot, bands=[WARN_TARIFF])]
    )
    assert Tariff.objects.exists()

    status, page = place_unconfirmed(
        buyer, slot, side="buy", energy="1", price="20", price_unit="major"
    )
    assert status == 200
    assert 'data-testid="order-warnings"' in page
    assert (
        "You bid €20.00/kWh, more than the €0.30/kWh the supplier charges for energy in this "
        "slot" in page
    )
    assert (
        "€20.00/kWh is far from the market: with no contract in the last day, the middle of "
        "the tariff band is €0.19/kWh." in page
    )
    assert not SubmittedTransaction.objects.exists()
    assert 'value="20"' in page  # the form keeps what was typed

    response = client_for(buyer).post(
        f"{MARKET}orders/place/",
        order_data(slot, side="buy", energy="1", price="20", price_unit="major"),
    )
    assert response.status_code == 302
    assert SubmittedTransaction.objects.get().body["payload"]["price"] == 2_000


def test_an_ask_below_the_feed_in_price_is_shown_back(site: Site, seller: User) -> None:
    slot = a_slot()
    commit(
        site, [site.sign(OPERATOR, "market.tariff.publish", from_slot=slot, bands=[WARN_TARIFF])]
    )
    register(seller)  # a meter, no history yet: nothing to say about the amount
    status, page = place_unconfirmed(
        seller, slot, side="sell", energy="1", price="5", price_unit="cents"
    )
    assert status == 200
    assert "You ask €0.05/kWh, less than the €0.08/kWh the supplier pays" in page
    assert "at this time of day" not in page
    assert not SubmittedTransaction.objects.exists()


def test_a_sale_beyond_what_the_meters_exported_is_shown_back(site: Site, seller: User) -> None:
    slot = a_slot()
    device = register(seller)
    meter = Meter.objects.get(pk=device.meter.pk)
    start = datetime_of_ms(slot)
    # Its meter exported at most 200 Wh at this time of day on the last days.
    store_readings(
        meter,
        *[(start - timedelta(days=days), 0, 100 + 50 * days) for days in (1, 2)],
        (start - timedelta(days=1, hours=3), 0, 5_000),  # another time of day: not counted
    )
    status, page = place_unconfirmed(seller, slot, side="sell", energy="1.5", price="25")
    assert status == 200
    assert (
        "On the last 7 days your meters exported at most 0.2 kWh at this time of day; selling "
        "1.5 kWh may leave you short" in page
    )
    assert not SubmittedTransaction.objects.exists()

    # What it has exported before goes out at once.
    status, _ = place_unconfirmed(seller, slot, side="sell", energy="0.2", price="25")
    assert status == 302
    assert SubmittedTransaction.objects.count() == 1


def test_a_sale_with_no_meter_is_shown_back(site: Site, seller: User) -> None:
    status, page = place_unconfirmed(seller, a_slot(), side="sell", energy="1", price="25")
    assert status == 200
    assert "You have no meter registered" in page
    assert not SubmittedTransaction.objects.exists()


def test_an_ordinary_order_goes_out_at_once(site: Site, buyer: User) -> None:
    """No tariff and no contract: nothing to compare the price with, and a bid needs no meter."""
    status, _ = place_unconfirmed(buyer, a_slot(), side="buy", energy="1", price="25")
    assert status == 302
    assert SubmittedTransaction.objects.count() == 1


def offer_unconfirmed(user: User, slot: int, **fields: str) -> tuple[int, str]:
    """Send the offer form without "Offer it anyway": (status, page)."""
    response = client_for(user).post(
        f"{MARKET}offers/post/", offer_data(slot, confirmed="", **fields)
    )
    return response.status_code, response.content.decode()


def test_an_offer_below_the_feed_in_price_is_shown_back_before_it_is_sent(
    site: Site, seller: User
) -> None:
    slot = a_slot()
    commit(
        site, [site.sign(OPERATOR, "market.tariff.publish", from_slot=slot, bands=[WARN_TARIFF])]
    )
    register(seller)  # a meter, no history yet: nothing to say about the amount
    status, page = offer_unconfirmed(seller, slot, energy="1", price="1", price_unit="cents")
    assert status == 200
    assert 'data-testid="offer-warnings"' in page
    assert 'data-testid="order-warnings"' not in page
    assert "Check this offer before it goes out." in page
    assert "You ask €0.01/kWh, less than the €0.08/kWh the supplier pays" in page
    assert (
        "€0.01/kWh is far from the market: with no contract in the last day, the middle of "
        "the tariff band is €0.19/kWh." in page
    )
    assert ">Offer it anyway</button>" in page
    assert 'name="offer-price" value="1"' in page  # the form keeps what was typed
    assert not SubmittedTransaction.objects.exists()

    # "Offer it anyway": it goes out as typed.
    response = client_for(seller).post(
        f"{MARKET}offers/post/", offer_data(slot, energy="1", price="1", price_unit="cents")
    )
    assert response.status_code == 302
    assert submitted()["payload"] | {"slot": 0} == {
        "slot": 0,
        "energy_wh": 1_000,
        "price": 1,
        "buyer": "",
    }


def test_an_offer_beyond_what_the_meters_exported_is_shown_back(site: Site, seller: User) -> None:
    slot = a_slot()
    device = register(seller)
    meter = Meter.objects.get(pk=device.meter.pk)
    start = datetime_of_ms(slot)
    store_readings(meter, *[(start - timedelta(days=days), 0, 300) for days in (1, 2, 3)])
    status, page = offer_unconfirmed(seller, slot, energy="2", price="0.20")
    assert status == 200
    assert (
        "On the last 7 days your meters exported at most 0.3 kWh at this time of day; selling "
        "2 kWh may leave you short" in page
    )
    assert not SubmittedTransaction.objects.exists()

    # What it has exported before goes out at once.
    status, _ = offer_unconfirmed(seller, slot, energy="0.3", price="0.20")
    assert status == 302
    assert submitted()["payload"]["energy_wh"] == 300


def test_an_offer_with_no_meter_is_shown_back(site: Site, seller: User) -> None:
    status, page = offer_unconfirmed(seller, a_slot(), energy="1", price="0.20")
    assert status == 200
    assert "You have no meter registered" in page
    assert not SubmittedTransaction.objects.exists()


# --- choosing a slot: by day and hour, near ones first ----------------------------------------


def picked(html: str, prefix: str = "order") -> dict[str, tuple[list[str], str]]:
    """The slot picker's selects in ``html``: per part, its options' values and the chosen one."""
    found = {}
    for part in ("hour", "minute"):
        select = re.search(rf'<select name="{prefix}-slot_{part}"[^>]*>(.*?)</select>', html)
        assert select is not None, part
        values = re.findall(r'<option value="([^"]*)"', select[1])
        chosen = re.findall(r'<option value="([^"]*)" selected', select[1])
        found[part] = (values, chosen[0] if chosen else "")
    return found


def parts(slot: int) -> dict[str, str]:
    """A slot's hour and minute as the picker sends them (the site's zone is UTC)."""
    start = datetime_of_ms(slot)
    return {"hour": f"{start:%Y-%m-%dT%H}", "minute": f"{start:%M}"}


def test_the_order_form_picks_a_slot_by_day_and_hour_then_minute(site: Site, seller: User) -> None:
    slots = selectors.slot_list()
    slot = ms_of_datetime(slots[-1].start)  # tomorrow
    html = client_for(seller).get(MARKET, {"slot": slot}).content.decode()
    assert 'name="order-slot"' not in html  # no list of every open slot
    hours = sorted({f"{s.start:%Y-%m-%dT%H}" for s in slots})
    for prefix in ("order", "offer"):
        picker = picked(html, prefix)
        assert picker["hour"] == (hours, parts(slot)["hour"])
        assert picker["minute"] == (["00", "15", "30", "45"], parts(slot)["minute"])
    # The hours grouped by day, soonest first.
    form = html[html.index('name="order-slot_hour"') :]
    form = form[: form.index("</select>")]
    days = re.findall(r'<optgroup label="([^"]+)">', form)
    first, last = slots[0].start, slots[-1].start
    assert days == [day_text(first), day_text(last)]
    assert days[-1] == f"Tomorrow, {last:%a} {last.day} {last:%b}" or first.hour == 0
    # A closed select shows no group: each hour says its day.
    first_day, last_day = (
        text.split(", ")[0].lower() if ", " in text else text
        for text in (day_text(first), day_text(last))
    )
    assert f'<option value="{first:%Y-%m-%dT%H}">{first:%H}:00 {first_day}</option>' in form
    assert f'<option value="{last:%Y-%m-%dT%H}" selected>{last:%H}:00 {last_day}</option>' in form
    assert len(hours) <= 25
    assert "<legend>Delivery slot</legend>" in html
    assert '<label for="id_order-slot_hour">Day and hour</label>' in html
    assert '<label for="id_order-slot_minute">Minute</label>' in html
    assert f"Open from {slot_label(first)} to {slot_label(last)}." in html


def test_an_order_for_the_chosen_hour_and_minute_names_that_slot(site: Site, buyer: User) -> None:
    slot = a_slot()
    data = order_data(slot) | {f"order-slot_{part}": v for part, v in parts(slot).items()}
    del data["order-slot"]
    response = client_for(buyer).post(f"{MARKET}orders/place/", data)
    assert response.status_code == 302
    assert submitted()["payload"]["slot"] == slot


def test_a_day_and_hour_with_no_open_slot_is_refused_as_chosen(site: Site, buyer: User) -> None:
    past = datetime_of_ms(a_slot()) - timedelta(hours=2)
    chosen = {"hour": f"{past:%Y-%m-%dT%H}", "minute": f"{past:%M}"}
    data = order_data(a_slot()) | {f"order-slot_{part}": v for part, v in chosen.items()}
    del data["order-slot"]
    response = client_for(buyer).post(f"{MARKET}orders/place/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Error: That slot is not open for trading now" in html
    assert picked(html)["minute"][1] == chosen["minute"]  # shown back as chosen
    assert chosen["hour"] not in picked(html)["hour"][0]  # only open hours are offered
    assert not SubmittedTransaction.objects.exists()

    data["order-slot_hour"] = f"{past:%Y-%m-%d}T24"  # no such hour
    response = client_for(buyer).post(f"{MARKET}orders/place/", data)
    assert response.status_code == 400
    assert "Error: That slot is not open for trading now" in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


def test_the_open_slots_list_the_next_hour_then_every_hour_by_day(site: Site, seller: User) -> None:
    slots = selectors.slot_list()
    near = [s for s in slots if s.start < slots[0].start + timedelta(hours=1)]
    client = client_for(seller)
    html = client.get(MARKET, {"slot": ms_of_datetime(slots[0].start)}).content.decode()
    listed = [int(ms) for ms in re.findall(r'<tr data-slot="(\d+)"', html)]
    assert listed == [ms_of_datetime(s.start) for s in near]
    assert len(near) < len(slots)
    hours = re.findall(r'data-hour="(\d+)"', html)
    assert len(hours) == len({(s.start.date(), s.start.hour) for s in slots})
    assert int(hours[0]) == ms_of_datetime(slots[0].start)
    assert f"<h4>{day_text(slots[0].start)}</h4>" in html
    assert f"<h4>{day_text(slots[-1].start)}</h4>" in html

    # A later hour: its slots are listed after the next hour's, the hour marked as chosen.
    later = slots[-8]
    hour = [
        s for s in slots if (s.start.date(), s.start.hour) == (later.start.date(), later.start.hour)
    ]
    html = client.get(MARKET, {"slot": ms_of_datetime(later.start)}).content.decode()
    listed = [int(ms) for ms in re.findall(r'<tr data-slot="(\d+)"', html)]
    assert listed == [ms_of_datetime(s.start) for s in near + hour]
    assert f'data-hour="{ms_of_datetime(hour[0].start)}" aria-current="true"' in html
    assert f"<caption>{day_text(later.start)}, from {later.start:%H}:00</caption>" in html
    # The live partial lists the same.
    partial = client.get(f"{MARKET}slots/", {"slot": ms_of_datetime(later.start)}).content.decode()
    assert re.findall(r'<tr data-slot="(\d+)"', partial) == [str(ms) for ms in listed]


def test_an_hour_with_orders_says_so(site: Site, seller: User) -> None:
    slots = selectors.slot_list()
    later = ms_of_datetime(slots[-8].start)
    place(client_for(seller), later, side="buy")
    commit_pending(site)
    html = client_for(seller).get(MARKET).content.decode()
    hour = re.search(r'data-hour="\d+"[^>]*>\d\d:00</a> <span class="help">\(1 with orders\)', html)
    assert hour is not None


# --- a phone: the household's tables read as lists ------------------------------------------------


class StackedTables(HTMLParser):
    """The tables of class "stack" in a page: per table, its column headers and, per body row,
    its cells as (tag, data-label, colspan)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.table: dict[str, Any] | None = None
        self.part = ""
        self.header: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table" and "stack" in (attributes.get("class") or "").split():
            self.table = {"headers": [], "rows": []}
            self.tables.append(self.table)
        elif self.table is None:
            return
        elif tag in ("thead", "tbody"):
            self.part = tag
        elif tag == "tr" and self.part == "tbody":
            self.table["rows"].append([])
        elif tag == "th" and self.part == "thead":
            self.header = []
            self.table["headers"].append(self.header)
        elif tag in ("th", "td") and self.part == "tbody":
            cell = (tag, attributes.get("data-label"), attributes.get("colspan"))
            self.table["rows"][-1].append(cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.table = None
        elif tag == "th":
            self.header = None

    def handle_data(self, data: str) -> None:
        if self.header is not None:
            self.header.append(data)


def stacked_tables(html: str) -> list[dict[str, Any]]:
    parser = StackedTables()
    parser.feed(html)
    return parser.tables


def assert_cells_labelled(html: str) -> int:
    """Every data cell of every "stack" table is labelled by its column's header; the number of
    cells checked."""
    checked = 0
    for table in stacked_tables(html):
        headers = [" ".join("".join(text).split()) for text in table["headers"]]
        for row in table["rows"]:
            if any(colspan for _, _, colspan in row):  # "You have no orders yet."
                continue
            assert len(row) == len(headers), (headers, row)
            for (tag, label, _), header in zip(row, headers, strict=True):
                if tag == "td" or label is not None:  # a row's own header may go without
                    assert label == header, (headers, row)
                    checked += 1
    return checked


def test_the_households_tables_label_every_cell_with_its_column(
    site: Site, seller: User, buyer: User
) -> None:
    """On a phone each row is a block and each cell a line labelled by its column's header
    (static/css/site.css): the labels are the headers, cell for cell."""
    slot = a_slot()
    seller_client, buyer_client = client_for(seller), client_for(buyer)
    place(seller_client, slot, side="sell", energy="1", price="20")
    place(seller_client, ms_of_datetime(selectors.slot_list()[3].start), side="sell", price="30")
    seller_client.post(f"{MARKET}offers/post/", offer_data(slot, energy="2"))
    commit_pending(site)
    place(buyer_client, slot, side="buy", energy="1", price="20")
    commit_pending(site)
    assert Contract.objects.count() == 1

    seller_page = seller_client.get(MARKET).content.decode()
    buyer_page = buyer_client.get(MARKET).content.decode()
    stacked = {
        table
        for page in (seller_page, buyer_page)
        for table in re.findall(r'<table class="(\w+) stack"', page)
    }
    assert stacked == {"slots", "orders", "offers", "contracts"}
    assert (
        assert_cells_labelled(seller_page) >= 4 + 2 * 9 + 8 + 11
    )  # slots, orders, offer, contract
    assert assert_cells_labelled(buyer_page) >= 4 + 9 + 7 + 11
    assert '<td data-label="Best ask">€0.30/kWh</td>' in buyer_page
    for path in ("/dashboard/", "/market/statements/"):
        page = buyer_client.get(path).content.decode()
        assert stacked_tables(page), path
        assert_cells_labelled(page)
