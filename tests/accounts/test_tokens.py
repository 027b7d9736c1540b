"""API tokens: made and revoked on the settings page, stored as digests, checked by the API."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404
from django.test import Client
from django.urls import reverse

from gridplatform.accounts import services
from gridplatform.accounts.models import ApiToken, User

VALIDATORS = "/api/v1/ledger/validators"  # public, but a token given must be a valid one
ACCOUNT = "/api/v1/account"  # for accounts only


@pytest.fixture(autouse=True)
def _no_network(settings: Any, tmp_path: Path) -> None:
    settings.LEDGER_DIR = tmp_path  # the API answers without reading a real network


def logged_in(user: User, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def token_client(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


# --- services ------------------------------------------------------------------------------------


def test_it_keeps_only_a_digest_of_the_token(prosumer: User) -> None:
    token, plaintext = services.api_token_create(user=prosumer, name="battery controller")
    token.refresh_from_db()
    assert len(plaintext) >= 40
    assert token.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert token.prefix == plaintext[:8]
    assert (token.name, token.user, token.revoked_at, token.last_used_at) == (
        "battery controller",
        prosumer,
        None,
        None,
    )
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    assert not any(plaintext in value for value in stored)


def test_it_makes_a_different_token_every_time(prosumer: User) -> None:
    tokens = {services.api_token_create(user=prosumer, name="t")[1] for _ in range(5)}
    assert len(tokens) == 5


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_it_wants_a_sensible_name(prosumer: User, name: str) -> None:
    with pytest.raises(services.AccountError):
        services.api_token_create(user=prosumer, name=name)
    assert not ApiToken.objects.exists()


def test_it_limits_the_active_tokens_of_an_account(prosumer: User, consumer: User) -> None:
    made = [services.api_token_create(user=prosumer, name=f"t{i}")[0] for i in range(20)]
    with pytest.raises(services.TooManyApiTokens):
        services.api_token_create(user=prosumer, name="one too many")
    services.api_token_create(user=consumer, name="another account's")
    services.api_token_revoke(user=prosumer, token_id=made[0].pk)
    services.api_token_create(user=prosumer, name="in its place")
    assert prosumer.api_tokens.filter(revoked_at__isnull=True).count() == 20


def test_it_revokes_a_token_of_its_owner_only(prosumer: User, consumer: User) -> None:
    token, _ = services.api_token_create(user=prosumer, name="mine")
    with pytest.raises(Http404):
        services.api_token_revoke(user=consumer, token_id=token.pk)
    token.refresh_from_db()
    assert token.revoked_at is None
    revoked = services.api_token_revoke(user=prosumer, token_id=token.pk)
    assert revoked.revoked_at is not None
    again = services.api_token_revoke(user=prosumer, token_id=token.pk)
    assert again.revoked_at == revoked.revoked_at


def test_it_authenticates_an_active_token_and_notes_its_use(prosumer: User) -> None:
    token, plaintext = services.api_token_create(user=prosumer, name="t")
    user, used = services.api_token_authenticate(token=plaintext)
    assert (user, used) == (prosumer, token)
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("state", ["revoked", "deactivated", "unknown", "empty"])
def test_it_refuses_a_token_that_is_not_active(prosumer: User, state: str) -> None:
    token, plaintext = services.api_token_create(user=prosumer, name="t")
    if state == "revoked":
        services.api_token_revoke(user=prosumer, token_id=token.pk)
    elif state == "deactivated":
        User.objects.filter(pk=prosumer.pk).update(is_active=False)
    elif state == "unknown":
        plaintext = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
    else:
        plaintext = ""
    with pytest.raises(services.InvalidApiToken):
        services.api_token_authenticate(token=plaintext)


# --- the API's authentication --------------------------------------------------------------------


def test_it_lets_a_valid_token_in(prosumer: User) -> None:
    _, plaintext = services.api_token_create(user=prosumer, name="t")
    assert token_client(plaintext).get(VALIDATORS).status_code == 200


def test_it_turns_a_revoked_token_away_with_401(prosumer: User) -> None:
    token, plaintext = services.api_token_create(user=prosumer, name="t")
    services.api_token_revoke(user=prosumer, token_id=token.pk)
    response = token_client(plaintext).get(VALIDATORS)
    assert response.status_code == 401
    assert response.json() == {
        "code": "authentication_failed",
        "message": "Invalid or revoked token.",
    }
    assert response["WWW-Authenticate"] == 'Token realm="api"'


@pytest.mark.parametrize(
    "header",
    [
        "Token not-a-real-token",
        "Token",
        "Token two parts",
        "token \u00e9t\u00e9",
        "Token " + "a" * 300,
    ],
)
def test_it_turns_a_wrong_token_away_with_401(prosumer: User, header: str) -> None:
    services.api_token_create(user=prosumer, name="t")
    response = Client(HTTP_AUTHORIZATION=header).get(VALIDATORS)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize("header", [None, "Bearer abc", "Basic dXNlcjpwYXNz"])
def test_it_asks_a_caller_without_a_token_to_authenticate(db: None, header: str | None) -> None:
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = client.get(ACCOUNT)
    assert response.status_code == 401
    assert response.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
    }


# --- the settings page ---------------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_log_in(db: None) -> None:
    response = Client().get(reverse("account-settings"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_links_the_settings_page_from_the_navigation(prosumer: User) -> None:
    page = logged_in(prosumer).get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("account-settings")}"' in page


def test_it_shows_a_new_token_once(prosumer: User) -> None:
    client = logged_in(prosumer)
    response = client.post(reverse("api-token-create"), {"name": "home battery"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    token = ApiToken.objects.get(user=prosumer)
    shown = page.split('data-testid="new-token">')[1].split("<")[0]
    assert hashlib.sha256(shown.encode()).hexdigest() == token.digest
    assert "shown only this once" in page
    later = client.get(reverse("account-settings")).content.decode()
    assert shown not in later
    assert "home battery" in later
    assert f"{token.prefix}…" in later
    assert token_client(shown).get(VALIDATORS).status_code == 200


def test_it_lists_only_the_accounts_own_tokens(prosumer: User, consumer: User) -> None:
    services.api_token_create(user=prosumer, name="prosumer's token")
    services.api_token_create(user=consumer, name="consumer's token")
    page = logged_in(prosumer).get(reverse("account-settings")).content.decode()
    assert "prosumer&#x27;s token" in page
    assert "consumer&#x27;s token" not in page


def test_it_explains_a_missing_name_and_makes_nothing(prosumer: User) -> None:
    response = logged_in(prosumer).post(reverse("api-token-create"), {"name": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token_from_the_settings_page(prosumer: User) -> None:
    token, plaintext = services.api_token_create(user=prosumer, name="old script")
    client = logged_in(prosumer)
    response = client.post(reverse("api-token-revoke", args=[token.pk]), follow=True)
    assert response.redirect_chain == [(reverse("account-settings"), 302)]
    page = response.content.decode()
    assert "Token “old script”" in page
    assert "is revoked." in page
    assert "revoked" in page.split("old script")[-1]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_client(plaintext).get(VALIDATORS).status_code == 401


def test_it_cannot_revoke_another_accounts_token(prosumer: User, consumer: User) -> None:
    token, _ = services.api_token_create(user=consumer, name="theirs")
    response = logged_in(prosumer).post(reverse("api-token-revoke", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_changes_tokens_only_by_csrf_protected_posts(prosumer: User) -> None:
    token, _ = services.api_token_create(user=prosumer, name="t")
    client = logged_in(prosumer, enforce_csrf_checks=True)
    assert client.post(reverse("api-token-create"), {"name": "x"}).status_code == 403
    assert client.post(reverse("api-token-revoke", args=[token.pk])).status_code == 403
    assert client.get(reverse("api-token-revoke", args=[token.pk])).status_code == 405
    assert ApiToken.objects.count() == 1
    token.refresh_from_db()
    assert token.revoked_at is None
