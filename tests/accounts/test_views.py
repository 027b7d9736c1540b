from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gridplatform.accounts.models import Identity, Role, User
from gridplatform.accounts.selectors import account_list
from gridplatform.accounts.tasks import registrations_forget
from tests.accounts.support import mailed_link, registered
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


def test_it_registers_a_household_by_the_link_mailed_to_it(db: None) -> None:
    client = Client()
    response = client.post(reverse("register"), REGISTRATION)
    assert response.status_code == 302
    assert response.url == reverse("register-sent")
    sent = client.get(response.url).content.decode()
    assert "Check your email" in sent
    assert "elif@test.example" in sent
    # Until the link is opened the account can neither log in nor be seen, and has no identity.
    pending = User.objects.get(email="elif@test.example")
    assert (pending.is_active, pending.email_confirmed) == (False, False)
    assert not Identity.objects.filter(user=pending).exists()
    login = Client().post(
        reverse("login"), {"username": REGISTRATION["email"], "password": REGISTRATION["password1"]}
    )
    assert "Please enter a correct email and password" in login.content.decode()
    [message] = mail.outbox
    assert message.to == ["elif@test.example"]
    assert message.subject == "Confirm your email address to finish registering"
    link = mailed_link("elif@test.example")
    assert "http://testserver" + link in message.body

    shown = client.get(link)  # opening the link changes nothing: its button does
    assert shown.status_code == 200
    assert "Elif Yilmaz" in shown.content.decode()
    assert not User.objects.get(email="elif@test.example").is_active

    confirmed = client.post(link)
    assert confirmed.url == reverse("dashboard")
    user = User.objects.get(email="elif@test.example")
    assert (user.role, user.household_kind) == (Role.HOUSEHOLD, "prosumer")
    assert (user.is_active, user.email_confirmed) == (True, True)
    page = client.get(reverse("dashboard")).content.decode()
    assert user.identity.address in page
    assert user.identity.public_key in page
    assert "Elif Yilmaz" in page
    assert "Your email address is confirmed" in page


def test_a_registration_link_works_once(db: None) -> None:
    client = Client()
    client.post(reverse("register"), REGISTRATION)
    link = mailed_link(REGISTRATION["email"])
    assert client.post(link).status_code == 302
    again = Client().post(link)
    assert again.status_code == 400
    assert "This link has been used" in again.content.decode()
    assert Identity.objects.count() == 1


def test_a_newer_registration_replaces_the_one_not_yet_confirmed(db: None) -> None:
    Client().post(reverse("register"), REGISTRATION)
    first = mailed_link(REGISTRATION["email"])
    Client().post(reverse("register"), REGISTRATION | {"name": "Elif Y."})
    second = mailed_link(REGISTRATION["email"])
    assert first != second
    assert Client().post(first).status_code == 400
    assert Client().post(second).status_code == 302
    assert User.objects.get().name == "Elif Y."


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda link: link[:-6] + "xxxxx/", "This link is not one we sent"),
        (lambda link: "/accounts/register/confirm/WzEsImFiYyJd/", "This link is not one we sent"),
    ],
)
def test_a_damaged_registration_link_is_refused(
    db: None, spoil: Callable[[str], str], message: str
) -> None:
    Client().post(reverse("register"), REGISTRATION)
    response = Client().post(spoil(mailed_link(REGISTRATION["email"])))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.get().is_active


def test_an_expired_registration_link_is_refused(db: None, settings: Any) -> None:
    Client().post(reverse("register"), REGISTRATION)
    settings.REGISTRATION_CONFIRM_TIMEOUT = -1  # every link is older than that
    response = Client().get(mailed_link(REGISTRATION["email"]))
    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()


def test_a_household_waiting_for_its_link_is_not_on_the_operator_console(
    grid_operator: User,
) -> None:
    Client().post(reverse("register"), REGISTRATION)
    assert "Elif Yilmaz" not in logged_in(grid_operator).get("/console/operator/").content.decode()
    assert list(account_list(user=grid_operator)) == [grid_operator]


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


def test_registering_does_not_say_whether_an_email_has_an_account(prosumer: User) -> None:
    """The same answer for a taken and a free address; only the address's owner learns which,
    by the email."""
    answers = []
    for email in (prosumer.email, "free@test.example"):
        client = Client()
        response = client.post(reverse("register"), REGISTRATION | {"email": email})
        page = client.get(response.url).content.decode()
        answers.append((response.status_code, response.url, page.replace(email, "EMAIL")))
    assert answers[0] == answers[1]

    taken, free = mail.outbox
    assert taken.to == [prosumer.email]
    assert taken.subject == "You already have an account"
    assert "/accounts/password/reset/" in taken.body
    assert "/accounts/register/confirm/" not in taken.body
    assert free.subject == "Confirm your email address to finish registering"
    prosumer.refresh_from_db()
    assert prosumer.check_password(PASSWORD)  # the taken account is untouched
    assert prosumer.name != REGISTRATION["name"]
    assert User.objects.filter(email=prosumer.email).count() == 1


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
    user = registered(client, registration)
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


def test_the_demo_outbox_shows_the_registration_link(
    db: None, settings: Any, tmp_path: Path
) -> None:
    """With DEBUG on and no mail server the site writes its mail to files, and /outbox/ shows
    them, so a newcomer to the demo can open the link from the pages alone."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = settings.MAIL_DIR = str(tmp_path)
    settings.OUTBOX_PAGE = True
    client = Client()
    assert "No messages yet." in client.get(reverse("outbox")).content.decode()
    client.post(reverse("register"), REGISTRATION)
    assert 'href="/outbox/"' in client.get(reverse("register-sent")).content.decode()

    page = client.get(reverse("outbox")).content.decode()
    assert 'class="messages"' not in page  # the mail is not shown as the page's own notices
    assert '<a href="http://testserver">http://testserver</a>.' in page  # the stop is no link
    assert "Confirm your email address to finish registering" in page
    assert "To elif@test.example" in page
    [link] = re.findall(r'<a href="(http://testserver/accounts/register/confirm/[^"]+)"', page)
    assert client.post(link.removeprefix("http://testserver")).url == reverse("dashboard")


def test_a_site_with_a_mail_server_has_no_outbox(db: None, settings: Any) -> None:
    settings.OUTBOX_PAGE = False
    assert Client().get(reverse("outbox")).status_code == 404
    client = Client()
    client.post(reverse("register"), REGISTRATION)
    assert 'href="/outbox/"' not in client.get(reverse("register-sent")).content.decode()


def test_registrations_whose_link_expired_unopened_are_forgotten(
    prosumer: User, settings: Any
) -> None:
    Client().post(reverse("register"), REGISTRATION)
    Client().post(reverse("register"), REGISTRATION | {"email": "late@test.example"})
    long_ago = timezone.now() - timedelta(seconds=settings.REGISTRATION_CONFIRM_TIMEOUT + 1)
    User.objects.filter(email__in=["late@test.example", prosumer.email]).update(
        date_joined=long_ago
    )
    assert registrations_forget() == 1
    assert set(User.objects.values_list("email", flat=True)) == {
        prosumer.email,  # confirmed long ago: kept
        REGISTRATION["email"],  # its link still works
    }
    assert registrations_forget() == 0


@pytest.mark.parametrize("url", ["/accounts/register/", "/accounts/settings/", "/market/"])
def test_every_help_text_is_linked_to_its_input(prosumer: User, url: str) -> None:
    """Django points an input with a help text at ``<id>_helptext`` (aria-describedby): the
    help text must carry that id, or a screen reader never reads it."""
    client = Client() if url == "/accounts/register/" else logged_in(prosumer)
    page = client.get(url).content.decode()
    described = [
        part for ids in re.findall(r'aria-describedby="([^"]+)"', page) for part in ids.split()
    ]
    present = set(re.findall(r'\sid="([^"]+)"', page))
    assert described
    assert [name for name in described if name not in present] == []
