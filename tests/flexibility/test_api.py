"""The REST API of requirements and stores: the grid operator posts a requirement, a household
on its feeder answers and the operator accepts, each a signed transaction that certified blocks
then commit into what the API lists; every refusal is a 4xx with its stable code, and bad input
never a 500."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.validation import validate_schema

from flexibility.models import Requirement
from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms, ms_of_datetime
from market import selectors as market_selectors
from tests.flexibility.support import ADA, BEN, commit_pending
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site
from tests.meters.support import client_for, error_of

pytestmark = pytest.mark.django_db
API = "/api/v1/flexibility"


def iso(slot_ms: int) -> str:
    return datetime_of_ms(slot_ms).astimezone(UTC).isoformat().replace("+00:00", "Z")


def a_slot() -> int:
    """An open slot, a few ahead: still open however long the test takes."""
    return ms_of_datetime(market_selectors.slot_list()[2].start)


def pending() -> list[dict[str, Any]]:
    """The transactions the site submitted: type and payload."""
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


def post_requirement(client: Client, **overrides: Any) -> Any:
    body = {
        "slot": iso(a_slot()),
        "feeder": "north",
        "direction": "import",
        "energy_wh": 2_000,
        "price": 50,
    } | overrides
    return client.post(f"{API}/requirements", body, content_type="application/json")


@pytest.fixture
def requirement(site: Site, operator: User) -> str:
    """An open requirement for 5,000 Wh on feeder north, committed."""
    assert post_requirement(client_for(operator), energy_wh=5_000).status_code == 202
    commit_pending(site)
    return str(Requirement.objects.get().id)


def test_a_requirement_is_posted_answered_and_accepted_into_a_contract_everyone_sees(
    site: Site, operator: User, ada: User, cat: User
) -> None:
    slot = a_slot()
    response = post_requirement(client_for(operator), slot=iso(slot))
    assert response.status_code == 202
    (sent,) = pending()
    assert sent == {
        "type": "market.requirement.post",
        "slot": slot,
        "feeder": "north",
        "direction": "import",
        "energy_wh": 2_000,
        "price": 50,
    }
    assert response.json() == {
        "type": "market.requirement.post",
        "transaction": SubmittedTransaction.objects.get().tx_id,
    }
    commit_pending(site)
    requirement_id = response.json()["transaction"]

    # The operator sees every requirement; Ada, on feeder north, sees it; Cat, on south, not.
    mine = client_for(ada).get(f"{API}/requirements").json()["results"]
    assert [(r["id"], r["status"], r["locked"], r["slot"]) for r in mine] == [
        (requirement_id, "open", 100, iso(slot))
    ]
    assert client_for(operator).get(f"{API}/requirements").json()["count"] == 1
    assert client_for(cat).get(f"{API}/requirements").json()["results"] == []
    assert error_of(client_for(cat).get(f"{API}/requirements/{requirement_id}")) == (
        404,
        "unknown_requirement",
    )

    answered = client_for(ada).post(
        f"{API}/requirements/{requirement_id}/answers",
        {"energy_wh": 1_500, "price": 40},
        content_type="application/json",
    )
    assert answered.status_code == 202
    commit_pending(site)
    (answer,) = client_for(operator).get(f"{API}/answers").json()["results"]
    assert (answer["owner"], answer["energy_wh"], answer["price"]) == (ADA.address, 1_500, 40)
    assert (answer["baseline_wh"], answer["status"], answer["requirement"]) == (
        3_000,
        "open",
        requirement_id,
    )
    assert client_for(cat).get(f"{API}/answers").json()["results"] == []

    accepted = client_for(operator).post(
        f"{API}/answers/{answer['id']}/accept",
        {"energy_wh": 1_000},
        content_type="application/json",
    )
    assert accepted.status_code == 202
    assert pending() == [
        {"type": "market.requirement.accept", "answer": answer["id"], "energy_wh": 1_000}
    ]
    commit_pending(site)
    (contract,) = client_for(ada).get(f"{API}/contracts").json()["results"]
    assert contract == {
        "id": f"{slot}-0",
        "slot": iso(slot),
        "carrier": "electricity",
        "seller": ADA.address,
        "buyer": OPERATOR.address,
        "requirement": requirement_id,
        "answer": answer["id"],
        "direction": "import",
        "feeder": "north",
        "energy_wh": 1_000,
        "price": 40,
        "baseline_wh": 3_000,
        "vetoed": False,
        "tx": contract["tx"],
        "settled": False,
        "measured_wh": None,
        "delivered_wh": None,
        "paid": None,
        "penalty": None,
    }
    assert client_for(operator).get(f"{API}/contracts").json()["count"] == 1
    assert client_for(cat).get(f"{API}/contracts").json()["count"] == 0


def test_a_household_enrols_and_reads_its_baseline(site: Site, ada: User, ben: User) -> None:
    assert client_for(ben).get(f"{API}/enrolments").json()["results"] == []
    response = client_for(ben).post(f"{API}/enrolments", {}, content_type="application/json")
    assert response.status_code == 202
    assert pending() == [{"type": "market.flexibility.enroll"}]
    commit_pending(site)
    (enrolment,) = client_for(ben).get(f"{API}/enrolments").json()["results"]
    assert enrolment["carrier"] == "electricity"
    assert error_of(
        client_for(ben).post(f"{API}/enrolments", {}, content_type="application/json")
    ) == (400, "already_enrolled")

    baseline = client_for(ada).get(f"{API}/baseline").json()
    assert len(baseline) == 8
    assert {(row["carrier"], row["import_wh"], row["export_wh"]) for row in baseline} == {
        ("electricity", 3_000, 0)
    }
    # Ben has no settled slot since he enrolled: no baseline yet.
    assert {row["import_wh"] for row in client_for(ben).get(f"{API}/baseline").json()} == {None}


def test_the_grid_operator_registers_a_store_and_the_household_sees_it(
    site: Site, operator: User, ben: User, ada: User
) -> None:
    body = {"address": BEN.address, "meter": "ben-battery", "capacity_wh": 10_000, "soc_wh": 4_000}
    response = client_for(operator).post(f"{API}/stores", body, content_type="application/json")
    assert response.status_code == 202
    assert pending() == [{"type": "market.storage.register", **body}]
    commit_pending(site)
    (store,) = client_for(ben).get(f"{API}/stores").json()["results"]
    assert store == {
        "address": BEN.address,
        "carrier": "electricity",
        "meter": "ben-battery",
        "capacity_wh": 10_000,
        "soc_wh": 4_000,
        "soc_slot": None,
        "sell_wh": 0,
        "buy_wh": 0,
        "can_sell_wh": 4_000,
        "can_buy_wh": 6_000,
    }
    assert client_for(operator).get(f"{API}/stores").json()["count"] == 1
    assert client_for(ada).get(f"{API}/stores").json()["count"] == 0


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"slot": "soon"}, "bad_slot"),
        ({"feeder": 7}, "bad_feeder"),
        ({"direction": "sideways"}, "bad_direction"),
        ({"energy_wh": "2000"}, "bad_energy"),
        ({"energy_wh": 2.5}, "bad_energy"),
        ({"price": None}, "bad_price"),
        ({"price": 2**60}, "price_out_of_bounds"),
        ({"carrier": "gas"}, "bad_carrier"),
        ({"carrier": "heat"}, "bad_carrier"),  # this market trades electricity only
        ({"feeder": "North Feeder"}, "bad_feeder"),
        ({"slot": "2026-01-01T12:07:00Z"}, "slot_misaligned"),
        ({"slot": "2020-01-01T12:00:00Z"}, "slot_past"),
        ({"energy_wh": 0}, "energy_out_of_bounds"),
        ({"energy_wh": 1_000_000, "price": 2_000}, "insufficient_free_balance"),
    ],
)
def test_a_bad_requirement_is_refused_with_its_code_and_nothing_is_sent(
    site: Site, operator: User, overrides: dict[str, Any], code: str
) -> None:
    assert error_of(post_requirement(client_for(operator), **overrides)) == (400, code)
    assert not SubmittedTransaction.objects.exists()


def test_only_the_grid_operator_posts_accepts_and_registers(
    site: Site, requirement: str, ada: User
) -> None:
    client = client_for(ada)
    assert error_of(post_requirement(client)) == (403, "forbidden")
    accept = client.post(
        f"{API}/answers/{'a' * 64}/accept", {"energy_wh": 1}, content_type="application/json"
    )
    assert error_of(accept) == (403, "forbidden")
    store = {"address": BEN.address, "meter": "ben-battery", "capacity_wh": 1, "soc_wh": 0}
    assert error_of(client.post(f"{API}/stores", store, content_type="application/json")) == (
        403,
        "forbidden",
    )
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("who", "body", "code"),
    [
        ("ada", {"energy_wh": 3_001, "price": 40}, "exceeds_baseline"),
        ("ada", {"energy_wh": 1_000, "price": 51}, "price_above_requirement"),
        ("ada", {"energy_wh": 5_001, "price": 40}, "exceeds_requirement"),
        ("ada", {"energy_wh": "1000", "price": 40}, "bad_energy"),
        ("ada", [1_000, 40], "malformed"),
        ("ben", {"energy_wh": 1_000, "price": 40}, "not_enrolled"),
    ],
)
def test_a_bad_answer_is_refused_with_its_code(
    site: Site, requirement: str, ada: User, ben: User, who: str, body: Any, code: str
) -> None:
    user = {"ada": ada, "ben": ben}[who]
    response = client_for(user).post(
        f"{API}/requirements/{requirement}/answers", body, content_type="application/json"
    )
    assert error_of(response) == (400, code)
    assert not SubmittedTransaction.objects.exists()


def test_an_answer_to_a_requirement_it_may_not_see_is_unknown(
    site: Site, requirement: str, cat: User, ada: User, operator: User
) -> None:
    body = {"energy_wh": 1_000, "price": 40}
    for path, user in (
        (f"{API}/requirements/{requirement}/answers", cat),  # another feeder's
        (f"{API}/requirements/{'f' * 64}/answers", ada),
        (f"{API}/requirements/nonsense%00/answers", ada),
    ):
        response = client_for(user).post(path, body, content_type="application/json")
        assert error_of(response) == (404, "unknown_requirement"), path
    assert error_of(
        client_for(operator).post(
            f"{API}/requirements/{requirement}/answers", body, content_type="application/json"
        )
    ) == (403, "forbidden")


def test_an_acceptance_beyond_the_answer_or_of_no_answer_is_refused(
    site: Site, requirement: str, ada: User, operator: User
) -> None:
    client_for(ada).post(
        f"{API}/requirements/{requirement}/answers",
        {"energy_wh": 1_000, "price": 40},
        content_type="application/json",
    )
    commit_pending(site)
    answer = client_for(operator).get(f"{API}/answers").json()["results"][0]["id"]
    client = client_for(operator)

    def accept(answer_id: str, body: Any) -> tuple[int, str]:
        path = f"{API}/answers/{answer_id}/accept"
        return error_of(client.post(path, body, content_type="application/json"))

    assert accept(answer, {"energy_wh": 1_001}) == (400, "exceeds_answer")
    assert accept(answer, {"energy_wh": 0}) == (400, "bad_energy")
    assert accept(answer, {}) == (400, "bad_energy")
    assert accept("0" * 64, {"energy_wh": 1}) == (404, "unknown_answer")
    assert accept("x", {"energy_wh": 1}) == (404, "unknown_answer")
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"address": "0" * 50}, "bad_address"),
        ({"meter": "ben-main"}, "not_storage_meter"),
        ({"meter": "nobodys"}, "unknown_meter"),
        ({"capacity_wh": 0}, "bad_capacity"),
        ({"capacity_wh": "big"}, "bad_capacity"),
        ({"soc_wh": 10_001}, "bad_state_of_charge"),
        ({"address": ADA.address}, "not_storage_meter"),  # Ben's meter, not Ada's
    ],
)
def test_a_bad_store_is_refused_with_its_code(
    site: Site, operator: User, overrides: dict[str, Any], code: str
) -> None:
    body = {"address": BEN.address, "meter": "ben-battery", "capacity_wh": 10_000, "soc_wh": 0}
    response = client_for(operator).post(
        f"{API}/stores", body | overrides, content_type="application/json"
    )
    assert error_of(response) == (400, code)


def test_a_bad_status_filter_is_refused(site: Site, operator: User) -> None:
    for path in ("requirements", "answers"):
        response = client_for(operator).get(f"{API}/{path}?status=maybe")
        assert error_of(response) == (400, "bad_status")
    assert client_for(operator).get(f"{API}/requirements?status=open").status_code == 200


def test_anonymous_callers_are_turned_away(site: Site) -> None:
    for path in ("requirements", "answers", "contracts", "stores", "enrolments", "baseline"):
        assert error_of(Client().get(f"{API}/{path}")) == (401, "not_authenticated")


def test_it_publishes_every_flexibility_path_in_the_schema(db: None) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    validate_schema(schema)
    paths = {p: sorted(schema["paths"][p]) for p in schema["paths"] if p.startswith(API)}
    assert paths == {
        f"{API}/requirements": ["get", "post"],
        f"{API}/requirements/{{id}}": ["get"],
        f"{API}/requirements/{{id}}/answers": ["post"],
        f"{API}/answers": ["get"],
        f"{API}/answers/{{id}}/accept": ["post"],
        f"{API}/enrolments": ["get", "post"],
        f"{API}/baseline": ["get"],
        f"{API}/contracts": ["get"],
        f"{API}/stores": ["get", "post"],
    }
    answer = schema["paths"][f"{API}/requirements/{{id}}/answers"]["post"]
    for code in ("not_enrolled", "no_baseline", "exceeds_baseline", "not_on_feeder"):
        assert f"`{code}`" in answer["description"]
