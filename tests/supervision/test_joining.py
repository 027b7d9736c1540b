"""Joining, from the grid operator's side: a household that registered itself waits for the
grid operator, who approves it from its console by picking its feeder from the published
topology (and can top it up). Approval is three signed transactions in the operator's nonce
order, which one block executes; the household is told by email and by a notification, and its
dashboard says where it stands at each step.

Real signed transactions through the site's admission, then real certified blocks projected
into the read models, as the validators would commit them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import User
from ledger.models import LedgerAccount, SubmittedTransaction
from ledger.services import TransactionRejected
from market.models import MarketAccount
from supervision import services
from supervision.models import Notification
from tests.accounts.support import registered
from tests.ledger.chains import OPERATOR, build_chain
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network

pytestmark = pytest.mark.django_db
CONSOLE = "/console/operator/"
PASSWORD = "a long and unusual passphrase 42"


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User) -> Site:
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    publish = {"export_limit_w": 50_000, "import_limit_w": 50_000}
    site.commit(
        [
            site.sign(OPERATOR, "grid.feeder.publish", feeder="feeder-north", **publish),
            site.sign(OPERATOR, "grid.feeder.publish", feeder="feeder-south", **publish),
        ]
    )
    return site


def joined(client: Client) -> User:
    """Cleo registers and opens the link mailed to her; her inbox is then emptied, so that what
    the tests below find in it is what approval sent."""
    user = registered(
        client,
        {
            "name": "Cleo Watt",
            "email": "cleo@example.org",
            "household_kind": "prosumer",
            "connection_point": "12 Mill Lane",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    mail.outbox.clear()
    return user


def steps(client: Client) -> list[tuple[str, str]]:
    """(step number, done) of the dashboard's joining list; [] when it is gone."""

    page = client.get("/dashboard/").content.decode()
    return re.findall(r'data-step="(\d)" data-done="(yes|no)"', page)


def test_a_household_joins_and_the_operator_approves_it_on_its_feeder(
    site: Site, grid_operator: User, regulator: User
) -> None:
    household_client = Client()
    household = joined(household_client)
    assert household.connection_point == "12 Mill Lane"
    assert steps(household_client) == [
        ("1", "yes"),
        ("2", "no"),
        ("3", "no"),
        ("4", "no"),
        ("5", "no"),
    ]
    waiting = household_client.get("/dashboard/").content.decode()
    assert "from where you said you are connected (“12 Mill Lane”)" in waiting
    stops = household_client.get("/supervision/").content.decode()
    assert "Times in UTC." in stops  # the zone is named, never "Times in ."
    assert "You cannot trade yet: the grid operator has not approved your connection" in stops

    operator = Client()
    operator.force_login(grid_operator)
    console = operator.get(CONSOLE).content.decode()
    assert f'data-household="{household.pk}" data-waiting' in console
    assert "Connected at: 12 Mill Lane" in console
    assert '<option value="feeder-north">feeder-north</option>' in console
    # The rows are re-fetched on every block: what the operator picked and typed must stay.
    assert f'id="approve-feeder-{household.pk}" name="feeder" required hx-preserve="true"' in (
        console
    )
    assert "1 waiting" in console

    response = operator.post(
        f"{CONSOLE}households/{household.pk}/approve/",
        {"feeder": "feeder-north", "top_up": "20.00"},
        follow=True,
    )
    assert "Cleo Watt approved on feeder feeder-north with €20.00 of credits" in (
        response.content.decode()
    )
    address = household.identity.address
    sent = [row.body for row in SubmittedTransaction.objects.order_by("id")]
    assert [(tx["type"], tx["nonce"]) for tx in sent] == [
        ("account.register", sent[0]["nonce"]),
        ("grid.feeder.assign", sent[0]["nonce"] + 1),
        ("credit.issue", sent[0]["nonce"] + 2),
    ]
    assert sent[1]["payload"] == {"address": address, "feeder": "feeder-north"}
    assert sent[2]["payload"] == {"to": address, "amount": 2_000}
    [email] = mail.outbox
    assert email.to == ["cleo@example.org"]
    assert "your connection is on feeder feeder-north and credits of €20.00" in email.body
    # Approved twice before the block: nothing more is sent for it.
    assert (
        f'data-household="{household.pk}" data-waiting'
        not in operator.get(CONSOLE).content.decode()
    )

    commit_pending(site)  # one block executes all three, in the operator's nonce order
    assert LedgerAccount.objects.get(address=address).balance == 2_000
    assert MarketAccount.objects.get(address=address).feeder == "feeder-north"
    [notification] = Notification.objects.filter(address=address)
    assert "your connection is on feeder feeder-north and credits of €20.00" in (
        notification.message
    )
    assert steps(household_client)[:3] == [("1", "yes"), ("2", "yes"), ("3", "yes")]
    assert "You may trade: nothing stops your orders now." in (
        household_client.get("/supervision/").content.decode()
    )

    # Regulators see each of the operator's acts in the audit log, newest first.
    watcher = Client()
    watcher.force_login(regulator)
    audit = watcher.get("/console/regulator/audit/rows/").content.decode()
    types = re.findall(r'<tr data-act="[0-9a-f]{64}" data-type="([a-z.]+)">', audit)
    assert types[:3] == ["credit.issue", "grid.feeder.assign", "account.register"]
    assert f"Topped up household {address} with €20.00" in audit
    assert f"Assigned household {address} to feeder feeder-north" in audit
    assert f"Put household {address} on the ledger" in audit
    assert grid_operator.name in audit
    assert "<td>Grid operator</td>" in audit
    assert "Topped up household" not in household_client.get("/supervision/").content.decode()


def test_approval_refuses_what_is_wrong_and_sends_nothing(
    site: Site, grid_operator: User, regulator: User, prosumer: User
) -> None:
    def refused(**fields: Any) -> str:
        with pytest.raises(TransactionRejected) as error:
            services.household_approve(operator=grid_operator, **fields)
        return error.value.code

    assert refused(household=prosumer, feeder="feeder-west") == "unknown_feeder"
    assert refused(household=prosumer, feeder="feeder-north", top_up=-5) == "bad_amount"
    # Past the top-up limit: refused before the registration or the feeder is sent.
    assert refused(household=prosumer, feeder="feeder-north", top_up=10**9) == "top_up_limit"
    assert refused(household=regulator, feeder="feeder-north") == "not_household"
    assert not SubmittedTransaction.objects.exists()
    assert not mail.outbox

    operator = Client()
    operator.force_login(grid_operator)
    page = operator.post(
        f"{CONSOLE}households/{prosumer.pk}/approve/",
        {"feeder": "feeder-north", "top_up": "2O.00"},
        follow=True,
    ).content.decode()
    assert "Approving" in page
    assert not SubmittedTransaction.objects.exists()
    as_regulator = Client()
    as_regulator.force_login(regulator)
    forbidden = as_regulator.post(
        f"{CONSOLE}households/{prosumer.pk}/approve/", {"feeder": "feeder-north"}
    )
    assert forbidden.status_code == 403
    assert not SubmittedTransaction.objects.exists()


def test_a_household_on_the_ledger_without_a_feeder_is_approved_with_the_feeder_only(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=500)
    approval = services.household_approve(
        operator=grid_operator, household=prosumer, feeder="feeder-south"
    )
    assert approval.registration is None
    assert approval.top_up is None
    assert [row.body["type"] for row in SubmittedTransaction.objects.all()] == [
        "grid.feeder.assign"
    ]


def test_a_forgotten_password_is_reset_by_email(db: None) -> None:
    account_services.household_register(
        name="Dan Volt",
        email="dan@example.org",
        password=PASSWORD,
        household_kind="consumer",
        connection_point="3 Weir Road",
    )
    client = Client()
    login_page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/password/reset/"' in login_page
    sent = client.post("/accounts/password/reset/", {"email": "dan@example.org"}, follow=True)
    assert "a link to choose a new password is on its way" in sent.content.decode()
    [email] = mail.outbox
    link = next(line for line in email.body.splitlines() if "/accounts/password/reset/" in line)
    path = link.split("://", 1)[1].split("/", 1)[1]
    form = client.get(f"/{path}", follow=True)
    assert "Choose a new password" in form.content.decode()
    new = "another long passphrase 77"
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True
    )
    assert "Your new password works now." in done.content.decode()
    logged = Client().post("/accounts/login/", {"username": "dan@example.org", "password": new})
    assert logged.status_code == 302
    # An unknown address gets the same answer and no email.
    client.post("/accounts/password/reset/", {"email": "nobody@example.org"})
    assert len(mail.outbox) == 1
