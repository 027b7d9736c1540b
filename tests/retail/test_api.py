"""The REST API of energy sellers: a household grants, lists and revokes; a retailer lists its
customers, places an order for one and cancels it; every refusal a 4xx with its stable code."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from market import selectors as market_selectors
from tests.flexibility.support import ADA, BEN, CAT, commit_pending
from tests.ledger.site import Site
from tests.meters.support import client_for, error_of

pytestmark = pytest.mark.django_db
API = "/api/v1/retail"
JSON = "application/json"


def pending() -> list[dict[str, Any]]:
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


def grant_body(**overrides: Any) -> dict[str, Any]:
    return {"retailer": BEN.address, "max_energy_wh": 2_000, "max_price": 30, "min_price": 10} | (
        overrides
    )


def order_body(**overrides: Any) -> dict[str, Any]:
    slot = market_selectors.slot_list()[2].start.astimezone(UTC)
    return {
        "household": ADA.address,
        "slot": slot.isoformat().replace("+00:00", "Z"),
        "side": "sell",
        "energy_wh": 1_000,
        "price": 12,
    } | overrides


@pytest.fixture
def granted(site: Site, ada: User) -> None:
    assert client_for(ada).post(f"{API}/grants", grant_body(), content_type=JSON).status_code == 202
    commit_pending(site)


def test_a_household_grants_by_email_lists_and_revokes(site: Site, ada: User, ben: User) -> None:
    body = grant_body(retailer="ben@test.example", carrier="electricity")
    response = client_for(ada).post(f"{API}/grants", body, content_type=JSON)
    assert response.status_code == 202
    assert response.json()["type"] == "market.grant"
    assert pending() == [{"type": "market.grant", **grant_body()}]
    commit_pending(site)
    (given,) = client_for(ada).get(f"{API}/grants").json()["results"]
    assert given == {
        "household": ADA.address,
        "retailer": BEN.address,
        "carrier": "electricity",
        "max_energy_wh": 2_000,
        "max_price": 30,
        "min_price": 10,
        "active": True,
        "height": given["height"],
        "revoked_height": None,
    }
    assert client_for(ben).get(f"{API}/customers").json()["results"] == [given]
    assert client_for(ben).get(f"{API}/grants").json()["results"] == []

    revoked = client_for(ada).delete(f"{API}/grants/electricity/{BEN.address}")
    assert revoked.status_code == 202
    assert pending() == [{"type": "market.grant.revoke", "retailer": BEN.address}]
    commit_pending(site)
    assert client_for(ada).get(f"{API}/grants").json()["results"][0]["active"] is False
    assert client_for(ben).get(f"{API}/customers").json()["results"] == []
    again = client_for(ada).delete(f"{API}/grants/electricity/{BEN.address}")
    assert error_of(again) == (404, "unknown_grant")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"retailer": "0" * 50}, "bad_address"),
        ({"retailer": "someone@test.example"}, "unknown_retailer"),
        ({"retailer": ADA.address}, "own_grant"),
        ({"retailer": CAT.address[:-1] + "0"}, "bad_address"),
        ({"max_energy_wh": "2000"}, "bad_grant_limit"),
        ({"max_energy_wh": 0}, "bad_grant_limit"),
        ({"min_price": -1}, "bad_grant_limit"),
        ({"carrier": "heat"}, "bad_carrier"),
    ],
)
def test_a_bad_grant_is_refused_with_its_code(
    site: Site, ada: User, ben: User, overrides: dict[str, Any], code: str
) -> None:
    response = client_for(ada).post(f"{API}/grants", grant_body(**overrides), content_type=JSON)
    assert error_of(response) == (400, code)
    assert not SubmittedTransaction.objects.exists()


def test_a_retailer_places_and_cancels_an_order_for_its_customer(
    site: Site, granted: None, ada: User, ben: User
) -> None:
    response = client_for(ben).post(f"{API}/orders", order_body(), content_type=JSON)
    assert response.status_code == 202
    (sent,) = pending()
    assert sent["for"] == ADA.address
    assert (sent["type"], sent["side"], sent["energy_wh"], sent["price"]) == (
        "market.order.place",
        "sell",
        1_000,
        12,
    )
    commit_pending(site)
    (order,) = client_for(ben).get(f"{API}/orders").json()["results"]
    assert (order["household"], order["placed_by"], order["status"]) == (
        ADA.address,
        BEN.address,
        "open",
    )
    assert client_for(ada).get(f"{API}/orders").json()["results"] == []  # she placed none
    cancelled = client_for(ben).delete(f"{API}/orders/{order['id']}")
    assert cancelled.status_code == 202
    assert pending() == [{"type": "market.order.cancel", "order": order["id"]}]
    # The retailer's endpoints are a retailer account's: the household cancels on the market.
    assert error_of(client_for(ada).delete(f"{API}/orders/{order['id']}")) == (
        403,
        "forbidden",
    )
    assert error_of(client_for(ben).delete(f"{API}/orders/nonsense")) == (404, "unknown_order")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"household": CAT.address}, "not_a_customer"),
        ({"household": "x"}, "bad_address"),
        ({"side": "hold"}, "bad_side"),
        ({"slot": "tomorrow"}, "bad_slot"),
        ({"energy_wh": 2_001}, "exceeds_grant"),
        ({"side": "sell", "price": 9}, "price_outside_grant"),
        ({"side": "buy", "price": 31}, "price_outside_grant"),
        ({"energy_wh": 2**60}, "energy_out_of_bounds"),
    ],
)
def test_a_bad_order_for_a_customer_is_refused_with_its_code(
    site: Site, granted: None, ben: User, overrides: dict[str, Any], code: str
) -> None:
    response = client_for(ben).post(f"{API}/orders", order_body(**overrides), content_type=JSON)
    assert error_of(response) == (400, code)
    assert not SubmittedTransaction.objects.exists()


def test_only_households_use_it(site: Site, grid_operator: User) -> None:
    client = client_for(grid_operator)
    assert error_of(client.post(f"{API}/grants", grant_body(), content_type=JSON)) == (
        403,
        "forbidden",
    )
    assert error_of(client.post(f"{API}/orders", order_body(), content_type=JSON)) == (
        403,
        "forbidden",
    )
    assert client.get(f"{API}/grants").json()["results"] == []
    assert error_of(Client().get(f"{API}/customers")) == (401, "not_authenticated")


def test_it_publishes_every_retail_path_in_the_schema(db: None) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    validate_schema(schema)
    paths = {p: sorted(schema["paths"][p]) for p in schema["paths"] if p.startswith(API)}
    assert paths == {
        f"{API}/grants": ["get", "post"],
        f"{API}/grants/{{carrier}}/{{retailer}}": ["delete"],
        f"{API}/customers": ["get"],
        f"{API}/orders": ["get", "post"],
        f"{API}/orders/{{id}}": ["delete"],
    }
    place = schema["paths"][f"{API}/orders"]["post"]["description"]
    for code in ("no_grant", "exceeds_grant", "price_outside_grant", "not_a_customer"):
        assert f"`{code}`" in place
