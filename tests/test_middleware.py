"""A database that cannot answer now is a 503 with Retry-After, never a 500, on the API and on
pages, through the site's whole middleware stack. The views here raise what the database
drivers raise (SQLite: ``database is locked`` past its timeout); the rest is the product's."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path


def locked(request: HttpRequest) -> HttpResponse:
    raise OperationalError("database is locked")


def broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [
    path("api/v1/locked", locked),
    path("locked/", locked),
    path("broken/", broken),
]


@pytest.fixture(autouse=True)
def _these_urls(settings: object) -> None:
    settings.ROOT_URLCONF = __name__  # type: ignore[attr-defined]


def test_the_api_answers_503_with_a_code_when_the_database_is_busy(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="gridplatform.middleware"):
        response = Client().post("/api/v1/locked", {}, content_type="application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["code"] == "unavailable"
    assert "nothing was changed" in body["message"]
    assert body["detail"] == {"retry_after": 5}
    assert "database is locked" in caplog.text  # still logged for the operators


def test_a_page_answers_503_with_a_message(db: None) -> None:
    response = Client().get("/locked/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "nothing was changed. Try again shortly." in response.content.decode()


def test_other_errors_are_still_500(db: None) -> None:
    response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
