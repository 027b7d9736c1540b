"""What a page does with an action that signs one transaction: refused, the form again with the
reason beside the field it is about (status 400, nothing signed); submitted, back to the page
with a message that it takes effect when its block commits (post/redirect/get).

The action itself is a service of the application (it raises a ``DomainError`` with a stable
code); :func:`signed_form` runs it for a valid form and answers either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from gridplatform.errors import DomainError
from ledger.crypto import Transaction

TAKES_EFFECT = "It takes effect when its block commits."


def submitted(request: HttpRequest, what: str, tx_id: str) -> None:
    """The message of an action sent to the validators: ``what`` "was submitted"."""
    messages.success(request, f"{what} was submitted (transaction {tx_id[:12]}…). {TAKES_EFFECT}")


def refuse(form: forms.Form, error: DomainError, field_of_code: Mapping[str, str]) -> None:
    """``error``'s message beside the field its code is about, else above the form."""
    field = field_of_code.get(error.code)
    form.add_error(field if field in form.fields else None, error.message)


def signed_form(
    request: HttpRequest,
    form: forms.Form,
    *,
    sign: Callable[[dict[str, Any]], Transaction],
    what: Callable[[dict[str, Any]], str],
    done: str,
    again: Callable[[], HttpResponse],
    field_of_code: Mapping[str, str],
) -> HttpResponse:
    """Check ``form``; if valid, ``sign`` its cleaned data (one service call). Submitted: the
    message ``what`` says and a redirect to ``done``. Invalid or refused: ``again()``, the page
    with the form bound (its status 400 is the page's to set)."""
    if form.is_valid():
        data = form.cleaned_data
        try:
            tx = sign(data)
        except DomainError as error:
            refuse(form, error, field_of_code)
        else:
            submitted(request, what(data), tx.id)
            return redirect(done)
    return again()
