"""/meters/: a household's meters: the list, registering one, rotating and revoking tokens. (The
data of its dashboard's charts, ``/meters/flows.json``, sets contracts beside readings: the market
serves it, ``market.views.flows_json``.)

A meter's token appears in one place only: the answer to the POST that made it (registration
or rotation), sent with ``Cache-Control: no-store``. Every refusal comes back as a message or
next to its field, with nothing changed.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from gridplatform.accounts.models import TRADING_ROLES
from gridplatform.decorators import role_required
from gridplatform.errors import DomainError
from meters import relay, selectors, services
from meters.errors import MESSAGES
from meters.forms import FIELD_OF_CODE, MeterForm


def _page(
    request: HttpRequest,
    *,
    form: MeterForm,
    new_token: str = "",
    token_meter: str = "",
    status: int = 200,
) -> HttpResponse:
    meters = list(selectors.meter_list(user=request.user))
    # A registration the validators refused for good is not sent again: say why, on its row.
    refusals = relay.register_refusals(meters)
    for meter in meters:
        if meter.meter_id in refusals:
            meter.ledger_refusal = MESSAGES.get(refusals[meter.meter_id], refusals[meter.meter_id])
    context = {
        "form": form,
        "meters": meters,
        "new_token": new_token,
        "token_meter": token_meter,
    }
    response = render(request, "meters/meters.html", context, status=status)
    if new_token:
        # The one page that ever shows the token: no cache may keep a copy.
        response["Cache-Control"] = "no-store"
    return response


@role_required(*TRADING_ROLES)
@require_GET
def meter_page(request: HttpRequest) -> HttpResponse:
    return _page(request, form=MeterForm(user=request.user))


@role_required(*TRADING_ROLES)
@require_POST
def meter_register(request: HttpRequest) -> HttpResponse:
    """Register one of the household's meters and show its token, once."""
    form = MeterForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            meter, token = services.meter_register(
                by=request.user, owner=request.user, **form.cleaned_data
            )
        except DomainError as error:
            form.add_error(FIELD_OF_CODE.get(error.code), error.message)
        else:
            messages.success(
                request,
                f"Meter “{meter.meter_id}” registered. Copy its token now: it is shown only "
                "this once.",
            )
            return _page(
                request,
                form=MeterForm(user=request.user),
                new_token=token,
                token_meter=meter.meter_id,
            )
    return _page(request, form=form, status=400)


@role_required(*TRADING_ROLES)
@require_POST
def meter_token_rotate(request: HttpRequest, meter_id: str) -> HttpResponse:
    """A new token for one of the household's meters (another's is a 404), shown once."""
    try:
        _, token = services.meter_token_rotate(by=request.user, meter_id=meter_id)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("meters")
    messages.success(
        request,
        f"Meter “{meter_id}” has a new token; the old one no longer works. Copy it now: it is "
        "shown only this once.",
    )
    return _page(request, form=MeterForm(user=request.user), new_token=token, token_meter=meter_id)


@role_required(*TRADING_ROLES)
@require_POST
def meter_token_revoke(request: HttpRequest, meter_id: str) -> HttpResponse:
    """Revoke a meter's token: it cannot send readings until given a new one."""
    try:
        revoked = services.meter_token_revoke(by=request.user, meter_id=meter_id)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        if revoked is None:
            messages.info(request, f"Meter “{meter_id}” had no active token.")
        else:
            messages.success(
                request,
                f"The token of meter “{meter_id}” ({revoked.prefix}…) is revoked: the meter "
                "cannot send readings until you give it a new one.",
            )
    return redirect("meters")
