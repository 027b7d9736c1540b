"""The site package's own page: the health check. The dashboards and consoles are the
``dashboards`` app's (at the top of the stack: it imports every app)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and the run command: the web process answers."""
    return HttpResponse("ok", content_type="text/plain")


# The file backend writes each connection's messages to one file, a line of 79 dashes after each.
_SEPARATOR = re.compile(r"^-{79}$", re.MULTILINE)
# A link ends before the punctuation that ends its sentence.
_LINK = re.compile(r"(https?://\S*[^\s.,;:!?)])")
OUTBOX_LIMIT = 50


@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    """The demo's mailbox: the messages this site sent, newest first, when it runs with DEBUG on
    and no mail server (settings.OUTBOX_PAGE). Elsewhere it does not exist (404)."""
    if not settings.OUTBOX_PAGE:
        raise Http404("No outbox: this site sends real email.")
    files = sorted(Path(settings.MAIL_DIR).glob("*.log"), key=lambda f: f.stat().st_mtime)
    mails = []  # not "messages": the pages' own (django.contrib.messages) are called that
    for file in reversed(files[-OUTBOX_LIMIT:]):
        for raw in reversed(_SEPARATOR.split(file.read_text(errors="replace"))):
            if raw.strip():
                mails.append(_outbox_message(raw.strip()))
    return render(request, "outbox.html", {"mails": mails[:OUTBOX_LIMIT]})


def _outbox_message(raw: str) -> dict[str, object]:
    message = email.message_from_string(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("plain",))
    body = part.get_content() if part is not None else ""
    # The body split into text and links, for the template to render the links clickable.
    pieces = [(piece, bool(_LINK.fullmatch(piece))) for piece in _LINK.split(body) if piece]
    return {
        "to": message.get("To", ""),
        "subject": message.get("Subject", ""),
        "date": message.get("Date", ""),
        "pieces": pieces,
    }
