"""The pages of requirements and stores: the grid operator posts a requirement and registers a
store on its console page, a household enrols and answers on its own page, the operator accepts
after a confirmation, the regulator finds the contract by its kind and vetoes it; every step a
real signed transaction, then a real certified block, read back through the pages."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from flexibility.errors import MESSAGES
from flexibility.models import Answer, Requirement
from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import ms_of_datetime
from market import selectors as market_selectors
from tests.factories import UserFactory
from tests.flexibility.support import (
    ADA,
    ADA_METER,
    BEN,
    History,
    commit,
    commit_pending,
    network,
    user_with_key,
)
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site, give_issuer_key, give_regulator_key

pytestmark = pytest.mark.django_db
HOUSEHOLD_PAGE = "/flexibility/"
CONSOLE = "/console/operator/flexibility/"
GATE_MS = 300_000


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pending() -> list[dict[str, Any]]:
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


def html_text(markup: str) -> str:
    """Markup as read: tags gone, entities decoded, runs of white space collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))).strip()


def text(response: Any) -> str:
    """The page's text, as read."""
    return html_text(response.content.decode())


def a_slot() -> int:
    return ms_of_datetime(market_selectors.slot_list()[2].start)


def requirement_form(**fields: str) -> dict[str, str]:
    form = {
        "network": "north",
        "slot": str(a_slot()),
        "direction": "import",
        "energy": "2",
        "energy_unit": "kWh",
        "price": "0.50",
        "price_unit": "major",
    } | fields
    return {f"requirement-{name}": value for name, value in form.items()}


def post_requirement(operator: User, **fields: str) -> Any:
    return client_for(operator).post(f"{CONSOLE}requirements/post/", requirement_form(**fields))


def answer(user: User, requirement: Requirement, energy: str, price: str) -> Any:
    prefix = f"answer-{requirement.id}"
    data = {
        f"{prefix}-energy": energy,
        f"{prefix}-energy_unit": "kWh",
        f"{prefix}-price": price,
        f"{prefix}-price_unit": "major",
    }
    return client_for(user).post(f"{HOUSEHOLD_PAGE}requirements/{requirement.id}/answer/", data)


@pytest.fixture
def requirement(site: Site, operator: User) -> Requirement:
    """The grid operator's requirement for up to 5 kWh at up to €0.50/kWh, posted from its
    page and committed."""
    response = post_requirement(operator, energy="5")
    assert response.status_code == 302, text(response)
    commit_pending(site)
    found: Requirement = Requirement.objects.get()
    return found


def test_the_operator_posts_a_requirement_in_the_market_pages_units(
    site: Site, operator: User
) -> None:
    page = client_for(operator).get(CONSOLE)
    assert page.status_code == 200
    assert '<option value="north">north (feeder)</option>' in page.content.decode()
    slot = a_slot()
    client = client_for(operator)
    data = {"requirement-slot": str(slot), "requirement-energy": "2.5", "requirement-price": "0.45"}
    response = client.post(f"{CONSOLE}requirements/post/", requirement_form() | data, follow=True)
    assert response.redirect_chain == [(CONSOLE, 302)]
    assert "Your requirement to reduce import on north" in text(response)
    assert pending() == [
        {
            "type": "market.requirement.post",
            "slot": slot,
            "feeder": "north",
            "direction": "import",
            "energy_wh": 2_500,
            "price": 45,
        }
    ]
    commit_pending(site)
    shown = text(client_for(operator).get(CONSOLE))
    assert "reduce import on north (electricity)" in shown
    assert "Up to 2.5 kWh at up to €0.45/kWh" in shown


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"network": "nowhere"}, "network", MESSAGES["bad_network"]),
        ({"direction": "up"}, "direction", MESSAGES["bad_direction"]),
        ({"energy": "1.0005"}, "energy", "Energy is traded in whole Wh"),
        ({"price": "lots"}, "price", "Enter the price per kWh as a number"),
        ({"energy": "1000", "price": "5"}, None, MESSAGES["insufficient_free_balance"]),
    ],
)
def test_a_refused_requirement_shows_why_and_sends_nothing(
    site: Site, operator: User, fields: dict[str, str], field: str | None, message: str
) -> None:
    response = post_requirement(operator, **fields)
    assert response.status_code == 400
    html = response.content.decode()
    if field:
        assert f'id="id_requirement-{field}_error">Error: {message}' in html
    else:
        assert message in html
    assert not SubmittedTransaction.objects.exists()


def test_a_household_enrols_for_a_carrier_from_its_page(site: Site, ben: User) -> None:
    page = text(client_for(ben).get(HOUSEHOLD_PAGE))
    assert "Electricity (on north): not enrolled" in page
    assert "Enrol to see your baseline." in page
    response = client_for(ben).post(f"{HOUSEHOLD_PAGE}enrol/", {"carrier": "electricity"})
    assert response.status_code == 302
    assert pending() == [{"type": "market.flexibility.enroll"}]
    commit_pending(site)
    page = text(client_for(ben).get(HOUSEHOLD_PAGE))
    assert "Electricity (on north): enrolled" in page
    assert "none yet" in page  # no settled slot since: no baseline
    again = client_for(ben).post(f"{HOUSEHOLD_PAGE}enrol/", {"carrier": "electricity"})
    assert again.status_code == 400
    assert MESSAGES["already_enrolled"] in again.content.decode()
    assert not SubmittedTransaction.objects.exists()


def test_a_household_sees_its_baseline_and_answers_an_open_requirement(
    site: Site, requirement: Requirement, ada: User, cat: User
) -> None:
    page = text(client_for(ada).get(HOUSEHOLD_PAGE))
    assert "Electricity (on north): enrolled" in page
    assert "electricity 3 kWh 0 kWh" in page  # her baseline: 3 kWh imported, none exported
    assert "answer within" in page
    assert "north (electricity) reduce import 5 kWh €0.50/kWh" in page
    # Cat is on another feeder: nothing to answer.
    assert "No open requirement on your feeder." in text(client_for(cat).get(HOUSEHOLD_PAGE))

    response = answer(ada, requirement, "1.5", "0.40")
    assert response.status_code == 302
    assert pending() == [
        {
            "type": "market.requirement.answer",
            "requirement": requirement.id,
            "energy_wh": 1_500,
            "price": 40,
        }
    ]
    commit_pending(site)
    (row,) = Answer.objects.all()
    page = client_for(ada).get(HOUSEHOLD_PAGE).content.decode()
    assert f'data-answer="{row.id}" data-status="open"' in page


@pytest.mark.parametrize(
    ("who", "energy", "price", "field", "code"),
    [
        ("ada", "3.001", "0.40", "energy", "exceeds_baseline"),
        ("ada", "1", "0.51", "price", "price_above_requirement"),
        ("ben", "1", "0.40", None, "not_enrolled"),
    ],
)
def test_a_refused_answer_shows_the_validators_reason(
    site: Site,
    requirement: Requirement,
    ada: User,
    ben: User,
    who: str,
    energy: str,
    price: str,
    field: str | None,
    code: str,
) -> None:
    response = answer({"ada": ada, "ben": ben}[who], requirement, energy, price)
    assert response.status_code == 400
    html = response.content.decode()
    # Said above the live list too, which the next block re-fetches with fresh forms.
    summary = re.search(r'data-testid="answer-errors">(.*?)</div>', html, re.S)
    assert summary is not None
    assert html_text(summary[1]).endswith(f"was not sent: {MESSAGES[code]}")
    if field:
        error_id = f"id_answer-{requirement.id}-{field}_error"
        assert re.search(rf'id="{error_id}">Error: {re.escape(MESSAGES[code])}', html)
    else:
        assert MESSAGES[code] in html
    assert not SubmittedTransaction.objects.exists()


def test_the_operator_accepts_part_of_an_answer_after_confirming_it_and_both_see_the_contract(
    site: Site, requirement: Requirement, ada: User, operator: User, regulator: User
) -> None:
    answer(ada, requirement, "1.5", "0.40")
    commit_pending(site)
    row = Answer.objects.get()
    console = text(client_for(operator).get(CONSOLE))
    assert "Ada Sun 1.5 kWh €0.40/kWh 3 kWh Open" in console  # household, energy, price, baseline

    prefix = f"accept-{row.id}"
    form = {f"{prefix}-energy": "1000", f"{prefix}-energy_unit": "Wh"}
    url = f"{CONSOLE}answers/{row.id}/accept/"
    confirm = client_for(operator).post(url, form)
    assert confirm.status_code == 200
    assert "Confirm: accept 1 kWh" in text(confirm)
    assert not SubmittedTransaction.objects.exists()  # nothing signed before the confirmation
    too_much = client_for(operator).post(
        url, form | {f"{prefix}-energy": "1501", "confirmed": "yes"}
    )
    assert too_much.status_code == 400
    assert "The offer has 1.5 kWh left." in text(too_much)

    done = client_for(operator).post(url, form | {"confirmed": "yes"})
    assert done.status_code == 302
    assert pending() == [
        {"type": "market.requirement.accept", "answer": row.id, "energy_wh": 1_000}
    ]
    commit_pending(site)
    contract_id = f"{ms_of_datetime(requirement.slot)}-0"
    for user, page in ((operator, CONSOLE), (ada, HOUSEHOLD_PAGE)):
        html = client_for(user).get(page).content.decode()
        assert f'data-flexibility-contract="{contract_id}"' in html
        assert "Awaiting its slot's settlement" in html
    # On her market page it is a contract like the others, made by a requirement.
    assert "flexibility requirement" in text(client_for(ada).get("/market/"))

    # The regulator finds it by its kind and vetoes it like any contract.
    give_regulator_key(regulator)
    console = client_for(regulator).get("/console/regulator/").content.decode()
    assert re.search(rf'<option value="{contract_id}">[^<]*· flexibility</option>', console)
    veto = {"contract-act": "veto", "contract-contract": contract_id, "contract-reason": "test"}
    response = client_for(regulator).post("/supervision/contract/", veto | {"confirmed": "yes"})
    assert response.status_code == 302
    commit_pending(site)
    html = client_for(ada).get(HOUSEHOLD_PAGE).content.decode()
    assert f'data-flexibility-contract="{contract_id}" data-vetoed="true"' in html


def test_after_the_slot_settles_both_pages_show_what_was_measured_delivered_and_paid(
    site: Site, requirement: Requirement, ada: User, operator: User
) -> None:
    answer(ada, requirement, "1", "0.40")
    commit_pending(site)
    accept = site.sign(
        OPERATOR, "market.requirement.accept", answer=Answer.objects.get().id, energy_wh=1_000
    )
    commit(site, [accept])
    slot = ms_of_datetime(requirement.slot)
    commit(site, [site.sign(OPERATOR, "market.slot.clear", slot=slot)], at=slot - GATE_MS + 1)
    History(site).settle(slot, {"ada-main": (ADA_METER, 800, 0)})  # 2.4 kWh: 0.6 kWh less
    for user, page in ((operator, CONSOLE), (ada, HOUSEHOLD_PAGE)):
        shown = text(client_for(user).get(page))
        # energy, price, baseline, measured, delivered, paid, penalty
        assert "1 kWh €0.40/kWh 3 kWh 2.4 kWh 0.6 kWh €0.24 €0.03 Settled" in shown, page
    assert Requirement.objects.get().status == "expired"


def test_the_operator_registers_a_store_and_its_household_sees_its_charge(
    site: Site, operator: User, ben: User
) -> None:
    page = client_for(operator).get(CONSOLE).content.decode()
    assert '<option value="ben-battery">Ben Store — ben-battery (battery)</option>' in page
    data = {"store-meter": "ben-battery", "store-capacity": "10", "store-soc": "4.5"}
    over = client_for(operator).post(f"{CONSOLE}stores/register/", data | {"store-soc": "11"})
    assert over.status_code == 400
    assert "The state of charge is at most the capacity, 10 kWh." in text(over)
    assert not SubmittedTransaction.objects.exists()

    response = client_for(operator).post(f"{CONSOLE}stores/register/", data)
    assert response.status_code == 302
    assert pending() == [
        {
            "type": "market.storage.register",
            "address": BEN.address,
            "meter": "ben-battery",
            "capacity_wh": 10_000,
            "soc_wh": 4_500,
        }
    ]
    commit_pending(site)
    assert "Ben Store ben-battery electricity 10 kWh 4.5 kWh (as registered)" in text(
        client_for(operator).get(CONSOLE)
    )
    mine = text(client_for(ben).get(HOUSEHOLD_PAGE))
    assert "Your store" in mine
    assert (
        "ben-battery electricity 10 kWh 4.5 kWh (as registered) 0 kWh 0 kWh 4.5 kWh 5.5 kWh" in mine
    )


def test_each_page_is_for_its_role(site: Site, operator: User, ada: User, regulator: User) -> None:
    assert client_for(ada).get(CONSOLE).status_code == 403
    assert client_for(operator).get(HOUSEHOLD_PAGE).status_code == 403
    assert client_for(regulator).get(CONSOLE).status_code == 403
    assert client_for(ada).post(f"{CONSOLE}requirements/post/", {}).status_code == 403
    assert Client().get(HOUSEHOLD_PAGE).status_code == 302  # to the login page
    assert SubmittedTransaction.objects.count() == 0


def test_the_live_lists_render_on_their_own(
    site: Site, requirement: Requirement, operator: User, ada: User
) -> None:
    for user, path, marker in (
        (ada, f"{HOUSEHOLD_PAGE}requirements/", f'data-requirement="{requirement.id}"'),
        (ada, f"{HOUSEHOLD_PAGE}answers/", "You have not answered any requirement."),
        (ada, f"{HOUSEHOLD_PAGE}contracts/", "No flexibility contracts yet."),
        (ada, f"{HOUSEHOLD_PAGE}stores/", "No store registered."),
        (operator, f"{CONSOLE}requirements/rows/", f'data-requirement="{requirement.id}"'),
        (operator, f"{HOUSEHOLD_PAGE}contracts/", "No flexibility contracts yet."),
    ):
        response = client_for(user).get(path)
        assert response.status_code == 200, path
        assert marker in response.content.decode(), path


def test_a_requirement_on_a_heat_segment_is_a_heat_requirement(
    settings: Any, tmp_path: Path, grid_operator: User
) -> None:
    site = network(settings, tmp_path, heat=True)
    history = History(site)
    history.publish("north")
    history.publish("loop-a", carrier="heat")
    history.households(ADA)
    history.commit(
        [
            history.sign(OPERATOR, "credit.issue", to=OPERATOR.address, amount=10_000),
            history.sign(
                OPERATOR, "grid.feeder.assign", address=ADA.address, feeder="loop-a", carrier="heat"
            ),
        ]
    )
    operator = grid_operator
    give_issuer_key(operator)
    page = client_for(operator).get(CONSOLE).content.decode()
    assert '<option value="loop-a">loop-a (heat segment)</option>' in page
    assert post_requirement(operator, network="loop-a").status_code == 302
    (sent,) = pending()
    assert (sent["feeder"], sent["carrier"]) == ("loop-a", "heat")
    commit_pending(site)
    assert Requirement.objects.get().carrier == "heat"
    ada = user_with_key(UserFactory(name="Ada Sun"), ADA)
    shown = text(client_for(ada).get(HOUSEHOLD_PAGE))
    assert "Heat (on loop-a): not enrolled" in shown
    assert "loop-a (heat) reduce import 2 kWh" in shown


def test_a_flagged_flexibility_contract_says_its_kind_in_the_review_queue(
    site: Site, requirement: Requirement, regulator: User, settings: Any
) -> None:
    settings.SUPERVISION_REVIEW = {"max_energy_wh": 500}
    answer_tx = site.sign(
        ADA, "market.requirement.answer", requirement=requirement.id, energy_wh=1_000, price=40
    )
    commit(site, [answer_tx])
    commit(
        site,
        [site.sign(OPERATOR, "market.requirement.accept", answer=answer_tx.id, energy_wh=1_000)],
    )
    page = client_for(regulator).get("/console/regulator/").content.decode()
    contract_id = f"{ms_of_datetime(requirement.slot)}-0"
    row = re.search(rf'<tr data-review="{contract_id}">.*?</tr>', page, re.S)
    assert row is not None
    assert 'data-kind="flexibility"' in row[0]
    assert 'data-rule="size"' in row[0]
    assert 'data-rule="price"' not in row[0]
