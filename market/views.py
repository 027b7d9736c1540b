"""The market's pages: trading in the browser.

``/market/`` shows the open slots, the chosen slot's order book and, for a household, its money,
order entry, its orders, the offers it may accept, its offers and its contracts. Where the
market trades more than one carrier (genesis ``market.heat``), ``?carrier=heat`` chooses whose
slots and book are shown and which carrier the forms start with; every list shows each row's
carrier and its energy in that carrier's unit ("kWh thermal" for heat). Every list that
changes with the chain is a live region: the page keeps ``/ws/ledger/`` open (``static/js/
live.js``) and each list re-fetches its partial when a block commits and after a reconnect.

Every action signs one transaction (``market.services``) and answers at once with what the site
knows: refused (the form again, status 400, the reason next to the field, nothing submitted) or
submitted (redirect back with a message: it takes effect when its block commits). Only
households trade (403 for anyone else); the slots and the book are for every signed-in account.

The household dashboard's "Your energy" section and its charts' data (``/meters/flows.json``, a
page path of the meters' that the market serves: it sets contracts beside the meters' readings)
are here too (``market.flows``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gridplatform.accounts.models import TRADING_ROLES, Role, User
from gridplatform.decorators import role_required
from gridplatform.errors import DomainError
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.services import TransactionRejected
from market import bills, figures, flows, rules, selectors, services, statements
from market.chain.options import ELECTRICITY, Options
from market.errors import MESSAGES
from market.forms import (
    FIELD_OF_CODE,
    WH,
    AcceptForm,
    Inexact,
    NotANumber,
    OfferForm,
    OrderForm,
    carrier_choices,
    day_text,
    energy_text,
    price_text,
    scaled,
    slot_label,
)
from market.models import Offer, OfferStatus, Order, OrderStatus
from market.serializers import parse_slot
from market.warnings import order_warnings

# The newest this many closed orders, offers and contracts are listed (open ones always are).
HISTORY_SHOWN = 50
# The open slots listed in full: those starting within this of the first; later ones by hour.
NEAR = timedelta(hours=1)
TAKES_EFFECT = "It takes effect when its block commits."


# --- what the pages show -----------------------------------------------------------------------


def _slot_param(value: str | None) -> int | None:
    """A slot named in the query string (its start, ms), or None when absent or not a time."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 16:
        return None
    try:
        datetime_of_ms(int(value))
    except OverflowError:  # after the year 9999
        return None
    return int(value)


def _carrier_param(value: str | None, options: Options) -> str:
    """The carrier named in the query string, if the market trades it; else electricity."""
    return value if value in options.carriers else ELECTRICITY


def _carriers_context(options: Options, chosen: str) -> dict[str, Any]:
    """The page's carrier switch: only where the market trades more than one."""
    many = len(options.carriers) > 1
    return {"carrier": chosen, "carrier_choices": carrier_choices(options) if many else []}


def _chosen_slot(slots: list[selectors.Slot], requested: int | None) -> datetime | None:
    """The slot whose book is shown: the one asked for, else the first open one with orders,
    else the first open one. A slot past its gate may still be asked for: its book is public."""
    if requested is not None:
        return datetime_of_ms(requested)
    for slot in slots:
        if slot.best_bid is not None or slot.best_ask is not None:
            return slot.start
    return slots[0].start if slots else None


def _slots_context(
    slots: list[selectors.Slot], chosen_ms: int | None, carrier: str
) -> dict[str, Any]:
    """The open slots, near ones first: those of the next hour (``NEAR``) in full; then, if the
    chosen slot is later, its hour's; and every open hour by day, each a link to its first slot
    (its book, its slots, the forms set to it) with how many of its slots have orders."""
    rows: list[dict[str, Any]] = []
    hours: dict[tuple[str, str], dict[str, Any]] = {}
    days: dict[str, dict[str, Any]] = {}
    for slot in slots:
        ms = ms_of_datetime(slot.start)
        row = {"slot": slot, "ms": ms, "chosen": ms == chosen_ms}
        rows.append(row)
        local = timezone.localtime(slot.start)
        day = local.date().isoformat()
        key = (day, dateformat.format(local, "H:00 T"))  # the zone tells a repeated hour apart
        if key not in hours:
            hours[key] = {"label": f"{local:%H}:00", "ms": ms, "rows": [], "with_orders": 0}
            hours[key]["chosen"] = False
            days.setdefault(day, {"label": day_text(slot.start), "hours": []})
            days[day]["hours"].append(hours[key])
        hour = hours[key]
        hour["rows"].append(row)
        hour["with_orders"] += slot.best_bid is not None or slot.best_ask is not None
        hour["chosen"] = hour["chosen"] or row["chosen"]
    near = [row for row in rows if row["slot"].start < slots[0].start + NEAR]
    shown = {row["ms"] for row in near}
    later = None  # the chosen slot's hour, if the chosen slot is not near
    if chosen_ms not in shown:
        later = next((hour for hour in hours.values() if hour["chosen"]), None)
    return {
        "slot_rows": near,
        "slot_hour_rows": [row for row in later["rows"] if row["ms"] not in shown] if later else [],
        "slot_hour_label": (
            f"{day_text(later['rows'][0]['slot'].start)}, from {later['label']}" if later else ""
        ),
        "slot_days": list(days.values()),
        "carrier": carrier,
    }


def _book_context(slot: datetime | None, options: Options, carrier: str) -> dict[str, Any]:
    if slot is None:
        return {"book": None}
    gate = datetime_of_ms(ms_of_datetime(slot) - options.gate_closure_ms)
    return {
        "book": selectors.book(slot=slot, carrier=carrier),
        "gate_closure": gate,
        "trading_open": timezone.now() < gate,
    }


def _orders_context(user: User) -> dict[str, Any]:
    orders = selectors.order_list(user=user)
    open_orders = list(orders.filter(status=OrderStatus.OPEN))
    closed = list(orders.exclude(status=OrderStatus.OPEN)[:HISTORY_SHOWN])
    shown = open_orders + closed
    made_by = rules.rule_of_orders(order_ids=[order.id for order in shown])
    slot_s = selectors.options().slot_ms // 1_000  # read once, not once per order
    return {
        "orders": [
            (order, made, rules.reason_text(made, slot_s=slot_s) if made else "")
            for order in shown
            for made in [made_by.get(order.id)]
        ]
    }


def _rules_context(user: User) -> dict[str, Any]:
    return {"rules": rules.rules_of(user=user)}


def _offers_context(
    user: User, options: Options, bound: tuple[Offer, AcceptForm] | None = None
) -> dict[str, Any]:
    """The offers ``user`` may accept, each with its form (``bound``: the one just refused)."""
    offers = selectors.offers_to_accept(user=user).order_by("slot", "price", "height")
    rows = [
        (offer, bound[1] if bound and bound[0].id == offer.id else _accept_form(offer, options))
        for offer in offers
    ]
    return {"offers": rows}


def _my_offers_context(user: User) -> dict[str, Any]:
    address = selectors.address_of(user) or "-"
    mine = selectors.offer_list(user=user).filter(owner=address).order_by("-height", "id")
    open_offers = list(mine.filter(status=OfferStatus.OPEN))
    closed = list(mine.exclude(status=OfferStatus.OPEN)[:HISTORY_SHOWN])
    return {"my_offers": open_offers + closed}


def _contracts_context(user: User) -> dict[str, Any]:
    """The household's contracts, each with its counterparty as people read it ("a neighbour
    on feeder-north"), never a raw address."""
    me = selectors.address_of(user)
    contracts = list(selectors.contract_list(user=user)[:HISTORY_SHOWN])
    others = [c.seller if c.buyer == me else c.buyer for c in contracts]
    labels = selectors.neighbour_labels(addresses=others)
    for contract, other in zip(contracts, others, strict=True):
        contract.counterparty = labels[other]
    return {"contracts": contracts, "me": me}


def _trading_stop(user: User) -> selectors.TradingStop | None:
    address = selectors.address_of(user)
    return selectors.trading_stop(address=address) if address else None


def _accept_form(offer: Offer, options: Options, data: Any = None) -> AcceptForm:
    form = AcceptForm(
        data,
        prefix=f"accept-{offer.id}",
        options=options,
        carrier=offer.carrier,
        remaining_wh=offer.remaining_wh,
        initial={"energy": str(offer.remaining_wh), "energy_unit": WH},
    )
    # A block refreshes the list while someone types: htmx keeps these elements as they are.
    for field in form.fields.values():
        field.widget.attrs["hx-preserve"] = "true"
    return form


def _trade_page(
    request: HttpRequest,
    *,
    slot_ms: int | None = None,
    order_form: OrderForm | None = None,
    offer_form: OfferForm | None = None,
    errors: dict[str, str] | None = None,
    accept: tuple[Offer, AcceptForm] | None = None,
    rule_preview: dict[str, Any] | None = None,
    order_warnings: list[str] | None = None,
    offer_warnings: list[str] | None = None,
    carrier: str | None = None,
) -> HttpResponse:
    user = request.user
    options = selectors.options()
    carrier = _carrier_param(carrier or request.GET.get("carrier"), options)
    slots = selectors.slot_list(carrier=carrier)
    slot = _chosen_slot(slots, slot_ms)
    chosen_ms = ms_of_datetime(slot) if slot is not None else None
    context: dict[str, Any] = {
        "slot": slot,
        "slot_ms": chosen_ms,
        "slot_label": slot_label(slot) if slot is not None else "",
        "household": user.role in TRADING_ROLES,
        "errors": errors or {},
        "rule_preview": rule_preview,
        "order_warnings": order_warnings or [],
        "offer_warnings": offer_warnings or [],
        **_carriers_context(options, carrier),
        **_slots_context(slots, chosen_ms, carrier),
        **_book_context(slot, options, carrier),
    }
    if context["household"]:
        initial = {"carrier": carrier}
        pick: dict[str, Any] = {"options": options, "slots": slots, "pick_by_hour": True}
        if chosen_ms is not None:
            initial["slot"] = str(chosen_ms)
        context |= {
            "money": selectors.money(user=user),
            "order_form": order_form or OrderForm(prefix="order", initial=initial, **pick),
            "offer_form": offer_form or OfferForm(prefix="offer", initial=initial, **pick),
            "accept": accept,
            **_orders_context(user),
            **_offers_context(user, options, accept),
            **_my_offers_context(user),
            **_contracts_context(user),
            **_rules_context(user),
            # The order form says what would refuse an order now (supervision, the grid).
            "trading_stop": _trading_stop(user),
        }
    status = 400 if errors or accept or _has_errors(order_form, offer_form) else 200
    return render(request, "market/trade.html", context, status=status)


def _has_errors(*forms: OrderForm | OfferForm | None) -> bool:
    return any(form is not None and bool(form.errors) for form in forms)


def _back(slot: datetime | int | None, carrier: str = ELECTRICITY) -> HttpResponse:
    """Post/redirect/get: back to the market page, showing ``slot``'s book of ``carrier``."""
    if isinstance(slot, datetime):
        slot = ms_of_datetime(slot)
    query: dict[str, str | int] = {"slot": slot} if slot is not None else {}
    if carrier != ELECTRICITY:
        query["carrier"] = carrier
    url = reverse("market")
    return redirect(f"{url}?{urlencode(query)}" if query else url)


def _submitted(request: HttpRequest, what: str, tx_id: str) -> None:
    messages.success(request, f"{what} was submitted (transaction {tx_id[:12]}…). {TAKES_EFFECT}")


def _add_refusal(form: OrderForm | OfferForm | AcceptForm, error: DomainError) -> None:
    field = FIELD_OF_CODE.get(error.code)
    form.add_error(field if field in form.fields else None, error.message)


# --- pages and their live partials -------------------------------------------------------------


@login_required
@require_GET
def trade(request: HttpRequest) -> HttpResponse:
    """The trading page (households) and the market's open slots and books (everyone)."""
    return _trade_page(request, slot_ms=_slot_param(request.GET.get("slot")))


@login_required
@require_GET
def slot_rows(request: HttpRequest) -> HttpResponse:
    carrier = _carrier_param(request.GET.get("carrier"), selectors.options())
    slots = selectors.slot_list(carrier=carrier)
    context = _slots_context(slots, _slot_param(request.GET.get("slot")), carrier)
    return render(request, "market/_slots.html", context)


@login_required
@require_GET
def book(request: HttpRequest) -> HttpResponse:
    slot_ms = _slot_param(request.GET.get("slot"))
    if slot_ms is None:
        return HttpResponseBadRequest("Name a slot: ?slot=<start in ms>.")
    options = selectors.options()
    carrier = _carrier_param(request.GET.get("carrier"), options)
    context = _book_context(datetime_of_ms(slot_ms), options, carrier)
    return render(request, "market/_book.html", context)


@role_required(*TRADING_ROLES)
@require_GET
def money(request: HttpRequest) -> HttpResponse:
    return render(request, "market/_money.html", {"money": selectors.money(user=request.user)})


@role_required(*TRADING_ROLES)
@require_GET
def order_rows(request: HttpRequest) -> HttpResponse:
    return render(request, "market/_orders.html", _orders_context(request.user))


@role_required(*TRADING_ROLES)
@require_GET
def offer_rows(request: HttpRequest) -> HttpResponse:
    context = _offers_context(request.user, selectors.options())
    return render(request, "market/_offers.html", context)


@role_required(*TRADING_ROLES)
@require_GET
def my_offer_rows(request: HttpRequest) -> HttpResponse:
    return render(request, "market/_my_offers.html", _my_offers_context(request.user))


@role_required(*TRADING_ROLES)
@require_GET
def contract_rows(request: HttpRequest) -> HttpResponse:
    return render(request, "market/_contracts.html", _contracts_context(request.user))


# --- actions -----------------------------------------------------------------------------------


@require_POST
@role_required(*TRADING_ROLES)
def order_place(request: HttpRequest) -> HttpResponse:
    form = OrderForm(
        request.POST,
        prefix="order",
        options=selectors.options(),
        slots=selectors.slot_list(),
        pick_by_hour=True,
    )
    if form.is_valid():
        data = form.cleaned_data
        second_look = _second_look(request, form, "order", data["side"])
        if second_look is not None:
            return second_look
        try:
            tx = services.order_place(
                user=request.user,
                slot=data["slot_start"],
                side=data["side"],
                energy_wh=data["energy_wh"],
                price=data["price_minor"],
                carrier=data["carrier"],
            )
        except DomainError as error:
            _add_refusal(form, error)
        else:
            what = (
                f"Your order to {data['side']} {energy_text(data['energy_wh'], data['carrier'])}"
                f" at {price_text(data['price_minor'], data['carrier'])} for "
                f"{slot_label(data['slot_start'])}"
            )
            _submitted(request, what, tx.id)
            return _back(data["slot"], data["carrier"])
    return _refused_form_page(request, order_form=form)


def _second_look(
    request: HttpRequest, form: OrderForm | OfferForm, prefix: str, side: str
) -> HttpResponse | None:
    """The market page again with the form and its warnings (``market.warnings``) when a price
    or an amount looks like a mistake and the household has not confirmed it ("... anyway"):
    None when it may be sent."""
    data = form.cleaned_data
    if request.POST.get(f"{prefix}-confirmed") == "yes":
        return None
    warnings = order_warnings(
        user=request.user,
        slot=data["slot_start"],
        slot_ms=selectors.options().carrier(data["carrier"]).slot_ms,
        side=side,
        energy_wh=data["energy_wh"],
        price=data["price_minor"],
        carrier=data["carrier"],
    )
    if not warnings:
        return None
    if isinstance(form, OfferForm):
        return _trade_page(
            request,
            slot_ms=data["slot"],
            carrier=data["carrier"],
            offer_form=form,
            offer_warnings=warnings,
        )
    return _trade_page(
        request,
        slot_ms=data["slot"],
        carrier=data["carrier"],
        order_form=form,
        order_warnings=warnings,
    )


@require_POST
@role_required(*TRADING_ROLES)
def order_cancel(request: HttpRequest, order_id: str) -> HttpResponse:
    order: Order | None = selectors.order_list(user=request.user).filter(id=order_id).first()
    try:
        tx = services.order_cancel(user=request.user, order_id=order_id)
    except DomainError as error:
        return _trade_page(
            request,
            slot_ms=ms_of_datetime(order.slot) if order else None,
            errors={"orders": error.message},
            carrier=order.carrier if order else None,
        )
    _submitted(request, "The cancellation of your order", tx.id)
    return _back(order.slot, order.carrier) if order else _back(None)


@require_POST
@role_required(*TRADING_ROLES)
def offer_post(request: HttpRequest) -> HttpResponse:
    form = OfferForm(
        request.POST,
        prefix="offer",
        options=selectors.options(),
        slots=selectors.slot_list(),
        pick_by_hour=True,
    )
    if form.is_valid():
        data = form.cleaned_data
        second_look = _second_look(request, form, "offer", "sell")  # an offer is an ask
        if second_look is not None:
            return second_look
        try:
            tx = services.offer_post(
                user=request.user,
                slot=data["slot_start"],
                energy_wh=data["energy_wh"],
                price=data["price_minor"],
                buyer=data["buyer"],
                carrier=data["carrier"],
            )
        except DomainError as error:
            _add_refusal(form, error)
        else:
            to = f"to {data['buyer']}" if data["buyer"] else "to anyone"
            what = (
                f"Your offer of {energy_text(data['energy_wh'], data['carrier'])} at "
                f"{price_text(data['price_minor'], data['carrier'])} for "
                f"{slot_label(data['slot_start'])} {to}"
            )
            _submitted(request, what, tx.id)
            return _back(data["slot"], data["carrier"])
    return _refused_form_page(request, offer_form=form)


def _refused_form_page(
    request: HttpRequest,
    *,
    order_form: OrderForm | None = None,
    offer_form: OfferForm | None = None,
) -> HttpResponse:
    """The market page with a refused order or offer form, on the slot and carrier it chose."""
    form = order_form or offer_form
    assert form is not None
    chosen = form.cleaned_data
    return _trade_page(
        request,
        slot_ms=chosen.get("slot"),
        order_form=order_form,
        offer_form=offer_form,
        carrier=chosen.get("carrier"),
    )


@require_POST
@role_required(*TRADING_ROLES)
def offer_accept(request: HttpRequest, offer_id: str) -> HttpResponse:
    # Only an offer this household may see: another buyer's offer is "no such offer" here.
    offer: Offer | None = selectors.offers_to_accept(user=request.user).filter(id=offer_id).first()
    if offer is None:
        return _trade_page(request, errors={"offers": services.MESSAGES["unknown_offer"]})
    form = _accept_form(offer, selectors.options(), request.POST)
    if form.is_valid():
        energy_wh = form.cleaned_data["energy_wh"]
        try:
            tx = services.offer_accept(user=request.user, offer_id=offer.id, energy_wh=energy_wh)
        except DomainError as error:
            _add_refusal(form, error)
        else:
            what = (
                f"Your acceptance of {energy_text(energy_wh, offer.carrier)} of the offer at "
                f"{price_text(offer.price, offer.carrier)} for {slot_label(offer.slot)}"
            )
            _submitted(request, what, tx.id)
            return _back(offer.slot, offer.carrier)
    return _trade_page(
        request, slot_ms=ms_of_datetime(offer.slot), accept=(offer, form), carrier=offer.carrier
    )


@require_POST
@role_required(*TRADING_ROLES)
def offer_withdraw(request: HttpRequest, offer_id: str) -> HttpResponse:
    address = selectors.address_of(request.user) or "-"
    offer: Offer | None = (
        selectors.offer_list(user=request.user).filter(id=offer_id, owner=address).first()
    )
    try:
        tx = services.offer_withdraw(user=request.user, offer_id=offer_id)
    except DomainError as error:
        return _trade_page(
            request,
            slot_ms=ms_of_datetime(offer.slot) if offer else None,
            errors={"my_offers": error.message},
            carrier=offer.carrier if offer else None,
        )
    _submitted(request, "The withdrawal of your offer", tx.id)
    return _back(offer.slot, offer.carrier) if offer else _back(None)


# --- standing rules (trigger trading) -------------------------------------------------------------


def _rule_fields(data: Any) -> dict[str, Any]:
    """The rule form's kind, energy (Wh) and price; ``RuleError`` for numbers it cannot read."""
    try:
        energy_wh = scaled(data.get("energy_kwh", ""), 3)
        price = scaled(data.get("price_cents", ""), 0)
    except (NotANumber, Inexact):
        raise rules.RuleError(
            "Enter the energy in kWh (up to 3 decimals) and the price in whole cents per kWh.",
            code="bad_number",
        ) from None
    return {"kind": data.get("kind", ""), "energy_wh": energy_wh, "price": price}


@require_POST
@role_required(Role.HOUSEHOLD)
def rule_create(request: HttpRequest) -> HttpResponse:
    try:
        rule = rules.rule_create(owner=request.user, **_rule_fields(request.POST))
    except DomainError as error:
        return _trade_page(request, errors={"rules": error.message})
    messages.success(
        request,
        f"Standing rule set: {rule.get_kind_display().lower()} {energy_text(rule.energy_wh)} "
        f"per slot at {price_text(rule.price)}. It places orders when your meter readings call "
        "for them.",
    )
    return redirect(f"{reverse('market')}#rules")


@require_GET
@role_required(Role.HOUSEHOLD)
def rule_preview(request: HttpRequest) -> HttpResponse:
    """The market page with what the rule in the form would have done over the last day."""
    try:
        fields = _rule_fields(request.GET)
        orders = rules.rule_preview(owner=request.user, now=timezone.now(), **fields)
    except DomainError as error:
        return _trade_page(request, errors={"rules": error.message})
    preview = {
        "kind": fields["kind"],
        "energy_kwh": request.GET.get("energy_kwh", ""),
        "price_cents": request.GET.get("price_cents", ""),
        "orders": orders,
        "energy_wh": sum(order.energy_wh for order in orders),
    }
    return _trade_page(request, rule_preview=preview)


@require_POST
@role_required(Role.HOUSEHOLD)
def rule_stop(request: HttpRequest, rule_id: int) -> HttpResponse:
    try:
        rules.rule_stop(owner=request.user, rule_id=rule_id)
    except DomainError as error:
        return _trade_page(request, errors={"rules": error.message})
    messages.success(request, "The standing rule is stopped; its orders stay as they are.")
    return redirect(f"{reverse('market')}#rules")


# --- statements ----------------------------------------------------------------------------------


# --- tariffs --------------------------------------------------------------------------------------

_BAND_LINE = re.compile(r"(\d{1,2}):(\d{2})\s+(\d+)\s+(\d+)\s+(\d+)")


def _bands_of(text: str) -> list[dict[str, int]]:
    """The publish form's bands: a line "HH:MM retail feed-in fee" each, prices in cents/kWh."""
    bands = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        found = _BAND_LINE.fullmatch(line)
        if found is None:
            raise TransactionRejected(
                "bad_bands",
                "Write one band a line: its start (HH:MM, UTC) and its retail, feed-in and "
                "network fee in cents per kWh, e.g. “07:00 32 8 5”.",
            )
        hours, minutes, retail, feed_in, fee = (int(group) for group in found.groups())
        bands.append(
            {
                "from_minute": hours * 60 + minutes,
                "retail": retail,
                "feed_in": feed_in,
                "network_fee": fee,
            }
        )
    return bands


def _band_rows(bands: list[dict[str, int]]) -> list[dict[str, Any]]:
    """A tariff's bands with their end (the next band's start, or midnight), for the page."""
    ends = [band["from_minute"] for band in bands[1:]] + [1_440]
    return [
        band
        | {
            "from": f"{band['from_minute'] // 60:02d}:{band['from_minute'] % 60:02d}",
            "to": f"{end // 60:02d}:{end % 60:02d}",
        }
        for band, end in zip(bands, ends, strict=True)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def tariffs(request: HttpRequest) -> HttpResponse:
    """The supplier of last resort's tariffs: the one of each carrier in force, the history; the
    grid operator publishes a new one here (for the carrier it chooses, where the market trades
    more than one)."""
    errors = ""
    options = selectors.options()
    if request.method == "POST":
        if request.user.role != Role.GRID_OPERATOR:
            raise PermissionDenied("Only the grid operator publishes tariffs.")
        try:
            from_slot = parse_slot(request.POST.get("from_slot", ""))
            if from_slot is None:
                raise TransactionRejected("bad_slot", MESSAGES["bad_slot"])
            tx = services.tariff_publish(
                operator=request.user,
                from_slot=from_slot,
                bands=_bands_of(request.POST.get("bands", "")),
                carrier=request.POST.get("carrier", ELECTRICITY),
            )
        except TransactionRejected as error:
            errors = error.message
        else:
            _submitted(request, "The tariff", tx.id)
            return redirect("market-tariffs")
    now = timezone.now()
    in_force = [
        found
        for carrier in options.carriers
        if (found := selectors.tariff_in_force(at=now, carrier=carrier)) is not None
    ]
    rows = [(tariff, _band_rows(tariff.bands)) for tariff in selectors.tariff_list()[:50]]
    context = {
        "current": in_force[0] if in_force and in_force[0].carrier == ELECTRICITY else None,
        "in_force": in_force,
        "in_force_pks": {tariff.pk for tariff in in_force},
        "carrier_choices": carrier_choices(options) if len(options.carriers) > 1 else [],
        "tariffs": rows,
        "errors": errors,
        "may_publish": request.user.role == Role.GRID_OPERATOR,
        "posted": request.POST if errors else {},
    }
    return render(request, "market/tariffs.html", context, status=400 if errors else 200)


@role_required(*TRADING_ROLES)
@require_GET
def statement_page(request: HttpRequest) -> HttpResponse:
    """The household's settled contracts, each in its carrier's unit, and, where it traded more
    than one carrier, their totals per carrier side by side; where it settled with the supplier
    of last resort in more than one carrier, that per carrier too."""
    found = selectors.statement(user=request.user)
    lines = [(line, statements.penalty_explained(line)) for line in found]
    supplier = statements.supplier_totals(address=selectors.address_of(request.user))
    context = {
        "lines": lines,
        "carrier_totals": statements.carrier_totals(found),
        # Shown where a carrier beside electricity settled with the supplier: side by side.
        "supplier_totals": supplier if any(t.carrier != ELECTRICITY for t in supplier) else [],
    }
    return render(request, "market/statements.html", context)


@role_required(*TRADING_ROLES)
@require_GET
def statement_csv(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(
        statements.statement_csv(selectors.statement(user=request.user)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="statement.csv"'
    return response


# --- bills ---------------------------------------------------------------------------------------


def _bill(request: HttpRequest) -> bills.Bill:
    """The bill the query asks for (``period`` day or month, ``date`` YYYY-MM-DD), in the
    user's own time zone. Raises ``bills.BadPeriod``."""
    zone = timezone.get_current_timezone()
    assert isinstance(zone, ZoneInfo)
    period = request.GET.get("period") or bills.MONTH
    day = bills.parse_day(request.GET.get("date"), zone)
    return bills.household_bill(user=request.user, period=period, day=day, zone=zone)


@role_required(Role.HOUSEHOLD)
@require_GET
def bill_page(request: HttpRequest) -> HttpResponse:
    """A household's bill for a day or a month, and what it saved (``?print=1``: printable)."""
    try:
        bill = _bill(request)
    except bills.BadPeriod as error:
        failed: dict[str, Any] = {"error": str(error), "periods": bills.PERIODS}
        return render(request, "market/bill.html", failed, status=400)
    penalties = [(line, statements.penalty_explained(line)) for line in bill.penalties]
    context: dict[str, Any] = {"bill": bill, "penalties": penalties, "periods": bills.PERIODS}
    template = "market/bill_print.html" if request.GET.get("print") else "market/bill.html"
    return render(request, template, context)


@role_required(Role.HOUSEHOLD)
@require_GET
def bill_csv(request: HttpRequest) -> HttpResponse:
    try:
        bill = _bill(request)
    except bills.BadPeriod as error:
        return HttpResponse(str(error), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(bills.bill_csv(bill), content_type="text/csv; charset=utf-8")
    name = f"bill-{bill.period}-{bill.start:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- the household's energy (its dashboard's charts) -------------------------------------------


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


def _this_month(zone: ZoneInfo) -> tuple[datetime, datetime]:
    return bills.period_bounds(bills.MONTH, timezone.now().astimezone(zone).date(), zone)


def month_context(*, user: User) -> dict[str, Any]:
    """The dashboard's "This month": the household's bill so far (what it saved) and its
    figures beside its community's, per day (``market.figures``), in its own time zone."""
    zone = timezone.get_current_timezone()
    assert isinstance(zone, ZoneInfo)
    start, end = _this_month(zone)
    bill = bills.household_bill(user=user, period=bills.MONTH, day=start.date(), zone=zone)
    address = selectors.address_of(user) or "-"
    mine = figures.figures(address=address, start=start, end=end, zone=zone)
    community = figures.figures(address=None, start=start, end=end, zone=zone)
    days = [
        (day, you, everyone)
        for (day, you), (_, everyone) in zip(mine.days, community.days, strict=True)
    ]
    return {"month_bill": bill, "figures_you": mine, "figures_all": community, "figure_days": days}


def community_context() -> dict[str, Any]:
    """The operator console's community figures for this month, per day."""
    zone = timezone.get_current_timezone()
    assert isinstance(zone, ZoneInfo)
    start, end = _this_month(zone)
    return {"community": figures.figures(address=None, start=start, end=end, zone=zone)}


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
