"""The pages of energy sellers.

* ``/retail/`` (a household): grant a retailer (by its email or address) the right to trade for
  it, per carrier, within limits; change the limits by granting again; revoke; its grants and
  the orders retailers placed for it.
* ``/retail/customers/`` (a retailer account; ``/retail/`` brings it here): its customers and
  their limits, a form to place an order for one of them, and the orders it placed, each
  cancellable while open. The list follows the blocks live.

Every action signs one transaction (``retail.services``) and answers at once: refused (the page
again, status 400, the reason beside the field) or submitted (redirect back with a message: it
takes effect when its block commits).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from gridplatform.accounts.models import Role, User
from gridplatform.actions import signed_form, submitted
from gridplatform.decorators import role_required
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from market import selectors as market_selectors
from market.forms import energy_text, price_text, slot_label
from market.models import OrderStatus
from retail import selectors, services
from retail.forms import FIELD_OF_CODE, GrantForm, RetailOrderForm
from supervision.views import live_partial

HISTORY_SHOWN = 50


# --- the household's page ------------------------------------------------------------------------


def _grants_page(
    request: HttpRequest, *, form: GrantForm | None = None, error: str = ""
) -> HttpResponse:
    user = request.user
    grants = list(selectors.grant_list(user=user))
    placed = list(selectors.placed_for_me(user=user)[:HISTORY_SHOWN])
    parties = selectors.parties(
        addresses=[g.retailer for g in grants] + [o.placed_by for o in placed]
    )
    context = {
        "grants": [(grant, parties[grant.retailer]) for grant in grants],
        "placed_for_me": [(row, parties[row.placed_by]) for row in placed],
        "form": form or GrantForm(prefix="grant", options=market_selectors.options()),
        "error": error,
    }
    failed = bool(error) or (form is not None and bool(form.errors))
    return render(request, "retail/grants.html", context, status=400 if failed else 200)


@require_GET
@role_required(Role.HOUSEHOLD, Role.RETAILER)
def grants_page(request: HttpRequest) -> HttpResponse:
    if request.user.role == Role.RETAILER:
        return redirect("retail-customers")
    return _grants_page(request)


@require_POST
@role_required(Role.HOUSEHOLD)
def grant_give(request: HttpRequest) -> HttpResponse:
    form = GrantForm(request.POST, prefix="grant", options=market_selectors.options())

    def sign(data: dict[str, Any]) -> Transaction:
        return services.grant_give(
            user=request.user,
            retailer=data["retailer"],
            max_energy_wh=data["max_energy_wh"],
            max_price=data["max_price"],
            min_price=data["min_price"],
            carrier=data["carrier"],
        )

    def what(data: dict[str, Any]) -> str:
        return (
            f"Your grant to {data['retailer']} ({data['carrier']}: orders up to "
            f"{energy_text(data['max_energy_wh'])}, buying at most "
            f"{price_text(data['max_price'])}, selling at least "
            f"{price_text(data['min_price'])})"
        )

    return signed_form(
        request,
        form,
        sign=sign,
        what=what,
        done=reverse("retail"),
        again=lambda: _grants_page(request, form=form),
        field_of_code=FIELD_OF_CODE,
    )


@require_POST
@role_required(Role.HOUSEHOLD)
def grant_revoke(request: HttpRequest) -> HttpResponse:
    retailer = request.POST.get("retailer", "")
    carrier = request.POST.get("carrier", "")
    try:
        tx = services.grant_revoke(user=request.user, retailer=retailer, carrier=carrier)
    except DomainError as error:
        return _grants_page(request, error=error.message)
    submitted(request, f"The end of your {carrier} grant", tx.id)
    return redirect("retail")


# --- the retailer's page -------------------------------------------------------------------------


def _customers(user: User) -> tuple[list[Any], dict[str, Any]]:
    grants = list(selectors.customer_list(user=user).order_by("household", "carrier"))
    return grants, selectors.parties(addresses=[g.household for g in grants])


def placed_rows(user: User) -> dict[str, Any]:
    """The orders the retailer placed, open ones first, with the customer each is for."""
    placed = selectors.placed_orders(user=user)
    open_rows = list(placed.filter(order__status=OrderStatus.OPEN))
    closed = list(placed.exclude(order__status=OrderStatus.OPEN)[:HISTORY_SHOWN])
    rows = open_rows + closed
    parties = selectors.parties(addresses=[row.household for row in rows])
    return {"placed": [(row, parties[row.household]) for row in rows]}


def _retailer_page(
    request: HttpRequest, *, form: RetailOrderForm | None = None, error: str = ""
) -> HttpResponse:
    user = request.user
    grants, parties = _customers(user)
    context = {
        "customers": [(grant, parties[grant.household]) for grant in grants],
        "form": form or _order_form(user),
        "error": error,
        **placed_rows(user),
    }
    failed = bool(error) or (form is not None and bool(form.errors))
    return render(request, "retail/customers.html", context, status=400 if failed else 200)


def _order_form(user: User, data: Any = None) -> RetailOrderForm:
    grants, parties = _customers(user)
    seen: dict[str, str] = {}
    for grant in grants:
        seen.setdefault(grant.household, parties[grant.household].label)
    return RetailOrderForm(
        data,
        prefix="order",
        options=market_selectors.options(),
        slots=market_selectors.slot_list(),
        customers=list(seen.items()),
    )


@require_GET
@role_required(Role.RETAILER)
def retailer_page(request: HttpRequest) -> HttpResponse:
    return _retailer_page(request)


placed_order_rows = live_partial("retail/_placed.html", placed_rows, Role.RETAILER, get_only=True)


@require_POST
@role_required(Role.RETAILER)
def order_place(request: HttpRequest) -> HttpResponse:
    form = _order_form(request.user, request.POST)

    def sign(data: dict[str, Any]) -> Transaction:
        return services.order_place_for(
            retailer=request.user,
            household=data["household"],
            slot=data["slot_start"],
            side=data["side"],
            energy_wh=data["energy_wh"],
            price=data["price_minor"],
            carrier=data["carrier"],
        )

    def what(data: dict[str, Any]) -> str:
        return (
            f"Your order to {data['side']} {energy_text(data['energy_wh'])} of "
            f"{data['carrier']} at {price_text(data['price_minor'])} for "
            f"{slot_label(data['slot_start'])} for your customer"
        )

    return signed_form(
        request,
        form,
        sign=sign,
        what=what,
        done=reverse("retail-customers"),
        again=lambda: _retailer_page(request, form=form),
        field_of_code=FIELD_OF_CODE,
    )


@require_POST
@role_required(Role.RETAILER)
def order_cancel(request: HttpRequest, order_id: str) -> HttpResponse:
    try:
        tx = services.order_cancel_for(retailer=request.user, order_id=order_id)
    except DomainError as error:
        return _retailer_page(request, error=error.message)
    submitted(request, "The cancellation of the order", tx.id)
    return redirect("retail-customers")
