"""Logins cannot exhaust the server: the forms that cost a password hash are limited per client
address, hashing runs a bounded number at a time with OWASP's Argon2id parameters, and a new
password revokes the account's API tokens."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, make_password
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.throttling import SimpleRateThrottle

from gridplatform.accounts import hashers, services
from gridplatform.accounts.models import ApiToken, User
from gridplatform.throttling import AddressRate
from tests.factories import PASSWORD

ADDRESS = "198.51.100.77"


@pytest.fixture
def three_posts_a_minute(monkeypatch: pytest.MonkeyPatch, throttle_clock: float) -> Any:
    monkeypatch.setattr(
        SimpleRateThrottle,
        "THROTTLE_RATES",
        {"user": "1000000/min", "anon": "1000000/min", "address": "3/min"},
    )
    for address in (ADDRESS, "198.51.100.78"):
        AddressRate.forget(f"throttle_address_{address}")
    yield
    for address in (ADDRESS, "198.51.100.78"):
        AddressRate.forget(f"throttle_address_{address}")


def test_logins_and_registrations_are_limited_per_address(
    prosumer: User, three_posts_a_minute: None
) -> None:
    client = Client(REMOTE_ADDR=ADDRESS)
    login = reverse("login")
    wrong = {"username": prosumer.email, "password": "wrong"}
    assert [client.post(login, wrong).status_code for _ in range(2)] == [200, 200]
    # Registration spends the same budget: it hashes a password too.
    assert client.post(reverse("register"), {"email": "x@example.org"}).status_code == 400
    refused = client.post(login, {"username": prosumer.email, "password": PASSWORD})
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"
    assert "Too many attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # nothing was done: not logged in
    assert client.get(login).status_code == 200  # reading the page is not counted
    other = Client(REMOTE_ADDR="198.51.100.78")
    response = other.post(login, {"username": prosumer.email, "password": PASSWORD})
    assert response.status_code == 302  # another address has its own budget


def test_hashes_use_owasps_argon2id_parameters(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["gridplatform.accounts.hashers.BoundedArgon2PasswordHasher"]
    encoded = make_password("correct horse battery staple")
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert check_password("correct horse battery staple", encoded)
    # A hash made with Django's defaults (100 MiB) still verifies.
    old = Argon2PasswordHasher().encode("an old password", Argon2PasswordHasher().salt())
    assert "m=102400" in old
    assert check_password("an old password", old)


def test_no_more_than_the_configured_hashes_run_at_once(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PASSWORD_HASHERS = ["gridplatform.accounts.hashers.BoundedArgon2PasswordHasher"]
    settings.PASSWORD_HASHING_CONCURRENCY = 2
    monkeypatch.setattr(hashers, "_slots", None)  # made again with this setting
    encoded = make_password("a password")
    running, most = 0, 0
    lock = threading.Lock()
    real_verify = Argon2PasswordHasher.verify

    def counted(self: Any, password: str, encoded: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)  # long enough for every thread to arrive while one hashes
            return bool(real_verify(self, password, encoded))
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(Argon2PasswordHasher, "verify", counted)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(check_password("wrong", encoded)))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [False] * 16
    assert most == 2


def _tokens(user: User) -> list[str]:
    return [services.api_token_create(user=user, name=f"t{i}")[1] for i in range(2)]


def test_a_password_change_revokes_the_api_tokens(
    prosumer: User, settings: Any, tmp_path: Path
) -> None:
    settings.LEDGER_DIR = tmp_path
    tokens = _tokens(prosumer)
    api = Client(HTTP_AUTHORIZATION=f"Token {tokens[0]}")
    assert api.get("/api/v1/ledger/validators").status_code == 200
    client = Client()
    client.force_login(prosumer, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a-brand-new-passphrase-7",
            "new_password2": "a-brand-new-passphrase-7",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "your 2 API tokens were revoked" in response.content.decode()
    assert not ApiToken.objects.filter(user=prosumer, revoked_at__isnull=True).exists()
    for token in tokens:
        answer = Client(HTTP_AUTHORIZATION=f"Token {token}").get("/api/v1/ledger/validators")
        assert answer.status_code == 401


def test_a_password_reset_revokes_the_api_tokens(prosumer: User) -> None:
    _tokens(prosumer)
    uid = urlsafe_base64_encode(force_bytes(prosumer.pk))
    link = reverse(
        "password_reset_confirm", args=[uid, default_token_generator.make_token(prosumer)]
    )
    client = Client()
    form = client.get(link, follow=True)  # Django moves the token out of the URL first
    new = {"new_password1": "another-new-passphrase-8", "new_password2": "another-new-passphrase-8"}
    done = client.post(form.redirect_chain[-1][0], new, follow=True)
    assert done.status_code == 200
    prosumer.refresh_from_db()
    assert prosumer.check_password("another-new-passphrase-8")
    assert not ApiToken.objects.filter(user=prosumer, revoked_at__isnull=True).exists()
