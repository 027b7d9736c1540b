"""Registering as a household does: the form, then the link the site mails (django's test outbox
stands in for the household's inbox)."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail
from django.test import Client
from django.urls import reverse

from gridplatform.accounts.models import User

LINK = re.compile(r"https?://\S+/accounts/register/confirm/[^/\s]+/")


def mailed_link(email: str) -> str:
    """The path of the newest registration link mailed to ``email``."""
    for message in reversed(mail.outbox):
        if email in message.to and (found := LINK.search(str(message.body))):
            return "/" + found.group(0).split("/", 3)[3]
    raise AssertionError(f"no registration link was mailed to {email}")


def registered(client: Client, form: dict[str, Any]) -> User:
    """Register with ``form`` and confirm by the mailed link; ``client`` is then logged in."""
    response = client.post(reverse("register"), form)
    assert response.status_code == 302, response.content.decode()
    assert response.url == reverse("register-sent")
    confirmed = client.post(mailed_link(form["email"]))
    assert confirmed.status_code == 302
    assert confirmed.url == reverse("dashboard")
    return User.objects.get(email=form["email"])
