"""The pages of energy sellers: a household grants a retailer by its email, in the market page's
units, and revokes it; the retailer places an order for its customer through its page, within
the grant, and cancels it; once revoked, the page refuses with a message. Real signed
transactions, then real certified blocks, read back through the pages."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import Role, User
from ledger.models import SubmittedTransaction
from ledger.projection import ms_of_datetime
from market import selectors as market_selectors
from retail.errors import MESSAGES
from retail.models import Grant
from tests.factories import UserFactory
from tests.flexibility.support import ADA, BEN, commit_pending
from tests.ledger.site import Site

pytestmark = pytest.mark.django_db
GRANTS = "/retail/"
CUSTOMERS = "/retail/customers/"


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pending() -> list[dict[str, Any]]:
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


def text(response: Any) -> str:
    """The page's text as read: tags gone, entities decoded, runs of white space collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def grant(user: User, **fields: str) -> Any:
    form = {
        "retailer": "ben@test.example",
        "carrier": "electricity",
        "max_energy": "2",
        "max_price": "0.30",
        "min_price": "0.10",
    } | fields
    return client_for(user).post(
        f"{GRANTS}grant/", {f"grant-{name}": value for name, value in form.items()}
    )


def order_for(retailer: User, household: str, **fields: str) -> Any:
    form = {
        "household": household,
        "carrier": "electricity",
        "slot": str(ms_of_datetime(market_selectors.slot_list()[2].start)),
        "side": "buy",
        "energy": "1.5",
        "energy_unit": "kWh",
        "price": "0.25",
        "price_unit": "major",
    } | fields
    data = {f"order-{name}": value for name, value in form.items()}
    return client_for(retailer).post(f"{CUSTOMERS}orders/place/", data)


@pytest.fixture
def granted(site: Site, ada: User, ben: User) -> None:
    """Ada's grant to Ben, given on her page and committed."""
    assert grant(ada).status_code == 302
    commit_pending(site)


def test_a_household_grants_a_retailer_by_its_email_and_changes_the_limits(
    site: Site, ada: User, ben: User
) -> None:
    assert "You have granted no retailer." in text(client_for(ada).get(GRANTS))
    response = grant(ada)
    assert response.status_code == 302
    assert pending() == [
        {
            "type": "market.grant",
            "retailer": BEN.address,
            "max_energy_wh": 2_000,
            "max_price": 30,
            "min_price": 10,
        }
    ]
    commit_pending(site)
    page = text(client_for(ada).get(GRANTS))
    assert "Ben Retail <ben@test.example> electricity 2 kWh €0.30/kWh €0.10/kWh" in page
    assert "Active" in page

    assert grant(ada, retailer=BEN.address, max_energy="0.5").status_code == 302
    commit_pending(site)
    assert "electricity 0.5 kWh €0.30/kWh" in text(client_for(ada).get(GRANTS))


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"retailer": "nobody@test.example"}, "retailer", "unknown_retailer"),
        ({"retailer": "0" * 50}, "retailer", "bad_address"),
        ({"retailer": "ada@test.example"}, "retailer", "unknown_retailer"),  # not a retailer
        ({"retailer": ADA.address}, "retailer", "own_grant"),
        ({"max_energy": "0"}, "max_energy", "bad_grant_limit"),
        ({"max_price": "a lot"}, "max_price", "bad_grant_limit"),
        ({"carrier": "gas"}, "carrier", None),
    ],
)
def test_a_refused_grant_says_why_beside_the_field(
    site: Site, ada: User, ben: User, fields: dict[str, str], field: str, code: str | None
) -> None:
    response = grant(ada, **fields)
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_grant-{field}_error">Error: ' in html
    if code:
        assert MESSAGES[code] in html
    assert not SubmittedTransaction.objects.exists()


def test_a_retailer_places_an_order_for_its_customer_and_a_revoked_grant_refuses_it(
    site: Site, granted: None, ada: User, ben: User, cat: User
) -> None:
    page = text(client_for(ben).get(CUSTOMERS))
    assert "Ada Sun <ada@test.example> electricity 2 kWh €0.30/kWh €0.10/kWh" in page
    # The customers' page is a retailer account's; a retailer's /retail/ leads to it.
    assert client_for(cat).get(CUSTOMERS).status_code == 403
    assert client_for(ben).get(GRANTS)["Location"] == CUSTOMERS

    # Beyond the grant: the validators' refusal, beside the field.
    over = order_for(ben, ADA.address, energy="2.5")
    assert over.status_code == 400
    assert f"Error: {MESSAGES['exceeds_grant']}" in text(over)
    pricey = order_for(ben, ADA.address, price="0.31")
    assert f"Error: {MESSAGES['price_outside_grant']}" in text(pricey)
    assert not SubmittedTransaction.objects.exists()

    response = order_for(ben, ADA.address)
    assert response.status_code == 302
    (sent,) = pending()
    assert sent == {
        "type": "market.order.place",
        "slot": sent["slot"],
        "side": "buy",
        "energy_wh": 1_500,
        "price": 25,
        "for": ADA.address,
    }
    commit_pending(site)
    placed = client_for(ben).get(CUSTOMERS).content.decode()
    order_id = re.search(r'data-order="([0-9a-f]{64})" data-status="open"', placed)
    assert order_id is not None
    assert "Ada Sun &lt;ada@test.example&gt;" in placed
    # The order is Ada's: on her market page and her list of orders placed for her.
    assert order_id[1] in client_for(ada).get("/market/").content.decode()
    mine = text(client_for(ada).get(GRANTS))
    assert "Ben Retail <ben@test.example> electricity buy 1.5 kWh €0.25/kWh Open" in mine

    # The retailer cancels what it placed.
    cancel = client_for(ben).post(f"{CUSTOMERS}orders/{order_id[1]}/cancel/")
    assert cancel.status_code == 302
    assert pending() == [{"type": "market.order.cancel", "order": order_id[1]}]
    commit_pending(site)

    # Ada revokes: Ben's next order is refused with a message, nothing sent.
    revoke = client_for(ada).post(
        f"{GRANTS}revoke/", {"retailer": BEN.address, "carrier": "electricity"}
    )
    assert revoke.status_code == 302
    assert pending() == [{"type": "market.grant.revoke", "retailer": BEN.address}]
    commit_pending(site)
    assert "Revoked" in text(client_for(ada).get(GRANTS))
    refused = order_for(ben, ADA.address)
    assert refused.status_code == 400
    assert MESSAGES["not_a_customer"] in text(refused)
    # Were the page's list behind the ledger, the validators' own refusal would say it.
    Grant.objects.update(revoked_height=None, revoked_at=None)
    stale = order_for(ben, ADA.address)
    assert stale.status_code == 400
    assert f"Error: {MESSAGES['no_grant']}" in text(stale)
    assert not SubmittedTransaction.objects.exists()
    Grant.objects.update(revoked_height=1)
    again = client_for(ada).post(
        f"{GRANTS}revoke/", {"retailer": BEN.address, "carrier": "electricity"}
    )
    assert again.status_code == 400
    assert MESSAGES["unknown_grant"] in text(again)


def test_a_retailer_cannot_cancel_an_order_it_did_not_place(
    site: Site, granted: None, ada: User, ben: User, cat: User
) -> None:
    order_for(ben, ADA.address)
    commit_pending(site)
    placed = re.search(
        r'data-order="([0-9a-f]{64})"', client_for(ben).get(CUSTOMERS).content.decode()
    )
    assert placed is not None
    assert client_for(cat).post(f"{CUSTOMERS}orders/{placed[1]}/cancel/").status_code == 403
    other = UserFactory(name="Other Retail", email="other@test.example", role=Role.RETAILER)
    response = client_for(other).post(f"{CUSTOMERS}orders/{placed[1]}/cancel/")
    assert response.status_code == 400
    assert MESSAGES["unknown_order"] in text(response)
    assert not SubmittedTransaction.objects.exists()


def test_the_pages_are_for_households(site: Site, grid_operator: User) -> None:
    for path in (GRANTS, CUSTOMERS, f"{CUSTOMERS}orders/"):
        assert client_for(grid_operator).get(path).status_code == 403
    assert Client().get(GRANTS).status_code == 302
