from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

from gridplatform.accounts.models import Role, User
from tests.factories import PASSWORD, UserFactory

REGISTRATION = {
    "name": "Elif Yilmaz",
    "email": "elif@test.example",
    "household_kind": "prosumer",
    "connection_point": "4 Orchard Row",
    "password1": "sunlight-on-the-roof-42",
    "password2": "sunlight-on-the-roof-42",
}


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_it_registers_a_household_and_shows_its_identity(db: None) -> None:
    client = Client()
    response = client.post(reverse("register"), REGISTRATION)
    assert response.status_code == 302
    assert response.url == reverse("dashboard")
    user = User.objects.get(email="elif@test.example")
    assert (user.role, user.household_kind) == (Role.HOUSEHOLD, "prosumer")
    page = client.get(reverse("dashboard")).content.decode()
    assert user.identity.address in page
    assert user.identity.public_key in page
    assert "Elif Yilmaz" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password2": "something-else-entirely"}, "The two passwords differ."),
        ({"password1": "12345678", "password2": "12345678"}, "This password is too common."),
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"household_kind": "nuclear_plant"}, "Select a valid choice."),
        ({"name": ""}, "This field is required."),
    ],
)
def test_it_explains_bad_registrations_and_creates_nothing(
    db: None, change: dict[str, str], message: str
) -> None:
    response = Client().post(reverse("register"), REGISTRATION | change)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.count() == 0


def test_it_refuses_to_register_a_taken_email(prosumer: User) -> None:
    response = Client().post(reverse("register"), REGISTRATION | {"email": prosumer.email})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_it_logs_in_with_email_and_password(prosumer: User) -> None:
    client = Client()
    response = client.post(reverse("login"), {"username": prosumer.email, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


def test_it_explains_a_failed_login(prosumer: User) -> None:
    response = Client().post(reverse("login"), {"username": prosumer.email, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct email and password" in response.content.decode()


def test_it_locks_out_after_repeated_failed_logins(prosumer: User) -> None:
    client = Client()
    for _ in range(5):
        client.post(reverse("login"), {"username": prosumer.email, "password": "wrong"})
    response = client.post(reverse("login"), {"username": prosumer.email, "password": PASSWORD})
    assert response.status_code == 429
    assert AccessAttempt.objects.get().username == prosumer.email
    assert "Too many failed logins" in response.content.decode()
    assert client.get(reverse("dashboard")).status_code == 302


def test_it_logs_out_on_post(prosumer: User) -> None:
    client = logged_in(prosumer)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_it_changes_a_password(prosumer: User) -> None:
    client = logged_in(prosumer)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-brand-new-passphrase-7",
            "new_password2": "a-brand-new-passphrase-7",
        },
    )
    assert response.status_code == 302
    prosumer.refresh_from_db()
    assert prosumer.check_password("a-brand-new-passphrase-7")


@pytest.mark.parametrize(
    ("role", "home"),
    [
        (Role.HOUSEHOLD, "dashboard"),
        (Role.GRID_OPERATOR, "operator-console"),
        (Role.REGULATOR, "regulator-console"),
    ],
)
def test_it_sends_each_role_to_its_own_start_page(db: None, role: Role, home: str) -> None:
    response = logged_in(UserFactory(role=role)).get(reverse("home"))
    assert response.url == reverse(home)


def test_anonymous_visitors_land_on_a_page_that_says_what_the_platform_is_and_how_to_join(
    db: None,
) -> None:
    response = Client().get(reverse("home"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Trade electricity with your neighbours" in page
    assert "How joining works" in page
    assert f'href="{reverse("register")}"' in page
    assert f'href="{reverse("login")}"' in page


def test_it_shows_each_role_only_its_own_navigation(
    prosumer: User, grid_operator: User, regulator: User
) -> None:
    household_page = logged_in(prosumer).get(reverse("dashboard")).content.decode()
    assert reverse("operator-console") not in household_page
    assert reverse("regulator-console") not in household_page
    operator_page = logged_in(grid_operator).get(reverse("operator-console")).content.decode()
    assert reverse("operator-console") in operator_page
    assert reverse("regulator-console") not in operator_page
    regulator_page = logged_in(regulator).get(reverse("regulator-console")).content.decode()
    assert reverse("regulator-console") in regulator_page
    assert reverse("operator-console") not in regulator_page


def test_it_lists_every_account_on_the_operator_console(
    grid_operator: User, prosumer: User, consumer: User
) -> None:
    page = logged_in(grid_operator).get(reverse("operator-console")).content.decode()
    for account in (grid_operator, prosumer, consumer):
        assert account.identity.address in page
        assert account.email in page


@pytest.mark.parametrize(
    ("page", "allowed"),
    [
        ("operator-console", {Role.GRID_OPERATOR}),
        ("regulator-console", {Role.REGULATOR}),
        ("account-rows", {Role.GRID_OPERATOR, Role.REGULATOR}),
    ],
)
def test_it_opens_consoles_only_to_their_roles(db: None, page: str, allowed: set[Role]) -> None:
    for role in (Role.HOUSEHOLD, Role.GRID_OPERATOR, Role.REGULATOR):
        response = logged_in(UserFactory(role=role)).get(reverse(page))
        assert response.status_code == (200 if role in allowed else 403), role
    anonymous = Client().get(reverse(page))
    assert anonymous.status_code == 302
    assert anonymous.url.startswith(reverse("login"))


def test_it_lets_an_admin_open_both_consoles(admin: User) -> None:
    client = logged_in(admin)
    assert client.get(reverse("operator-console")).status_code == 200
    assert client.get(reverse("regulator-console")).status_code == 200


def test_it_returns_the_account_rows_for_the_live_reload(
    grid_operator: User, prosumer: User
) -> None:
    response = logged_in(grid_operator).get(reverse("account-rows"))
    body = response.content.decode()
    assert f'data-address="{prosumer.identity.address}"' in body
    assert "<html" not in body


def test_it_sends_security_headers(prosumer: User) -> None:
    response = logged_in(prosumer).get(reverse("dashboard"))
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_it_requires_csrf_tokens_on_forms(db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("register"), REGISTRATION)
    assert response.status_code == 403
    assert User.objects.count() == 0


def test_it_does_not_lock_out_another_account_from_the_same_address(
    prosumer: User, consumer: User
) -> None:
    client = Client()
    for _ in range(5):
        client.post(reverse("login"), {"username": prosumer.email, "password": "wrong"})
    response = client.post(reverse("login"), {"username": consumer.email, "password": PASSWORD})
    assert response.status_code == 302


def test_times_show_in_the_zone_the_household_picked(db: None) -> None:
    client = Client()
    registration = REGISTRATION | {"email": "zone@test.example", "time_zone": "Europe/Vienna"}
    assert client.post(reverse("register"), registration).status_code == 302
    user = User.objects.get(email="zone@test.example")
    assert user.time_zone == "Europe/Vienna"  # as its browser said (static/js/timezone.js)
    page = client.get(reverse("account-settings")).content.decode()
    assert '<strong data-testid="current-zone">Europe/Vienna</strong>' in page
    assert '<option value="Europe/Vienna" selected>' in page
    supervision = client.get("/supervision/").content.decode()
    assert "Times in Europe/Vienna." in supervision

    refused = client.post(reverse("time-zone-set"), {"time_zone": "Mars/Olympus"}, follow=True)
    assert "That is not a time zone" in refused.content.decode()
    user.refresh_from_db()
    assert user.time_zone == "Europe/Vienna"
    client.post(reverse("time-zone-set"), {"time_zone": ""})
    assert "Times in UTC." in client.get("/supervision/").content.decode()
    # A zone the browser made up is not kept: the site's stands.
    other = REGISTRATION | {"email": "odd@test.example", "time_zone": "Nowhere/Special"}
    Client().post(reverse("register"), other)
    assert User.objects.get(email="odd@test.example").time_zone == ""
