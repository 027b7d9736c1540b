"""A live region's partial is revalidated, not re-sent, when a block did not change it: an htmx
GET gets ``Cache-Control: private, no-cache`` and an ETag, and the same request with that ETag a
304 without a body (gridplatform.middleware.LivePartialRevalidationMiddleware with Django's
ConditionalGetMiddleware)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from gridplatform.accounts.models import User
from tests.factories import UserFactory
from tests.meters.support import logged_in

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_an_unchanged_partial_costs_a_304(grid_operator: User) -> None:
    client = logged_in(grid_operator)
    first = client.get(reverse("operator-summary"), **HTMX)
    assert first.status_code == 200
    assert first["Cache-Control"] == "private, no-cache"
    etag = first["ETag"]
    again = client.get(reverse("operator-summary"), HTTP_IF_NONE_MATCH=etag, **HTMX)
    assert again.status_code == 304
    assert again.content == b""
    # A change (a new household) is a new body, sent in full.
    UserFactory()
    changed = client.get(reverse("operator-summary"), HTTP_IF_NONE_MATCH=etag, **HTMX)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_a_whole_page_is_not_marked_for_revalidation(grid_operator: User) -> None:
    page = logged_in(grid_operator).get(reverse("operator-console"))
    assert page.status_code == 200
    assert "no-cache" not in page.get("Cache-Control", "")
