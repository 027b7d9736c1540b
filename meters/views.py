"""/meters/: a household's meters: the list, registering one, rotating and revoking tokens; the
data of its dashboard's charts (``flows.json``).

A meter's token appears in one place only: the answer to the POST that made it (registration
or rotation), sent with ``Cache-Control: no-store``. Every refusal comes back as a message or
next to its field, with nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from gridplatform.accounts.models import Role, User
from gridplatform.decorators import role_required
from gridplatform.errors import DomainError
from meters import flows, selectors, services
from meters.forms import FIELD_OF_CODE, MeterForm


def _page(
    request: HttpRequest,
    *,
    form: MeterForm,
    new_token: str = "",
    token_meter: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "meters": selectors.meter_list(user=request.user),
        "new_token": new_token,
        "token_meter": token_meter,
    }
    response = render(request, "meters/meters.html", context, status=status)
    if new_token:
        # The one page that ever shows the token: no cache may keep a copy.
        response["Cache-Control"] = "no-store"
    return response


@role_required(Role.HOUSEHOLD)
@require_GET
def meter_page(request: HttpRequest) -> HttpResponse:
    return _page(request, form=MeterForm())


@role_required(Role.HOUSEHOLD)
@require_POST
def meter_register(request: HttpRequest) -> HttpResponse:
    """Register one of the household's meters and show its token, once."""
    form = MeterForm(request.POST)
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
            return _page(request, form=MeterForm(), new_token=token, token_meter=meter.meter_id)
    return _page(request, form=form, status=400)


@role_required(Role.HOUSEHOLD)
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
    return _page(request, form=MeterForm(), new_token=token, token_meter=meter_id)


@role_required(Role.HOUSEHOLD)
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


def flows_payload(data: flows.Flows) -> dict[str, Any]:
    """The charts' JSON: one list per series, index for index with ``slots`` (their starts, UTC)
    and ``labels`` (the same on the site's clock: a day's by time, a week's by day and time)."""
    zone = timezone.get_default_timezone()
    label_format = "%H:%M" if data.period == flows.DAY else "%a %H:%M"
    return {
        "period": data.period,
        "time_zone": timezone.get_default_timezone_name(),
        "start": data.start,
        "end": data.end,
        "slot_s": data.slot_length // timedelta(seconds=1),
        "meters": data.meters,
        "readings": data.readings,
        "contracts": data.contracts,
        "slots": [slot.start for slot in data.slots],
        "labels": [slot.start.astimezone(zone).strftime(label_format) for slot in data.slots],
        "energy": {key: [getattr(s, key) for s in data.slots] for key in flows.ENERGY_SERIES},
        "trade": {key: [getattr(s, key) for s in data.slots] for key in flows.TRADE_SERIES},
    }


@dataclass(frozen=True)
class FlowRow:
    """One slot of the dashboard's tables, formatted once for both: a week has hundreds of
    rows, and Django's date and number filters would cost more than the rest of the page."""

    iso: str
    label: str
    energy: list[str]
    trade: list[str]


def flows_context(*, user: User, period: str | None) -> dict[str, Any]:
    """The dashboard's "Your energy" section: the household's flows over ``period`` (a day
    unless it is a known one) and its tables' rows."""
    data = flows.household_flows(user=user, period=period if period in flows.PERIODS else flows.DAY)
    zone = timezone.get_default_timezone()
    rows = []
    for slot in data.slots:
        local = slot.start.astimezone(zone)
        rows.append(
            FlowRow(
                iso=local.isoformat(),
                label=f"{local:%a} {local.day} {local:%b %H:%M}",
                energy=[str(getattr(slot, key)) for key in flows.ENERGY_SERIES],
                trade=[str(getattr(slot, key)) for key in flows.TRADE_SERIES],
            )
        )
    return {"flows": data, "flow_rows": rows}


@role_required(Role.HOUSEHOLD)
@require_GET
def flows_json(request: HttpRequest) -> HttpResponse:
    """``?period=day|week`` (day by default): the household's own energy per slot, as JSON."""
    period = request.GET.get("period", flows.DAY)
    if period not in flows.PERIODS:
        return JsonResponse(
            {"code": "bad_period", "message": "The period is “day” or “week”."}, status=400
        )
    response = JsonResponse(flows_payload(flows.household_flows(user=request.user, period=period)))
    response["Cache-Control"] = "private, no-cache"
    return response
