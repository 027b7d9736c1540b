"""Supervision's pages: the consoles' supervision sections, the acts, and what households see.

* The regulator console (``dashboards.views.regulator_console``) shows the review queue, the
  forms of the acts, the market's statistics per slot, alerts, suspensions and the audit log;
  the grid operator console adds feeder loading, alerts, the topology and the grid state. The
  context of those sections is built here (:func:`regulator_context`, :func:`operator_context`).
* ``/supervision/`` is a household's transparency page: every act that touched its orders or
  contracts, the suspensions and grid declarations that stop its trading, its notifications.
* Every list that changes with the chain is a live region: it re-fetches its partial when a
  block commits (``static/js/live.js``).

Every act signs one transaction (``supervision.services``) in two steps: the form is checked
(errors beside their fields, status 400, nothing signed), then a confirmation page shows exactly
what will be signed; only its "Confirm" button signs. A refusal shows the plain message beside
the field it is about; a success goes back to the console with a message: the act takes effect
when its block commits. Households get 403 on the acts, other roles 403 on the household pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from gridplatform.accounts.models import TRADING_ROLES, Identity, Role, User
from gridplatform.decorators import View, role_required
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from market.chain.options import ELECTRICITY
from market.forms import energy_text, power_text
from market.models import Contract, MarketAccount, contract_carrier
from market.selectors import address_of
from market.selectors import options as market_options
from market.templatetags.market_format import price
from supervision import selectors, services
from supervision.errors import MESSAGES
from supervision.forms import (
    FIELD_OF_CODE,
    AccountActForm,
    ContractActForm,
    ContractDecisionForm,
    FeederPublishForm,
    GridStateForm,
    ResumeForm,
    ReviewDecisionForm,
    SuspendForm,
)
from supervision.models import SupervisoryAct
from supervision.projection import review_limits
from supervision.templatetags.supervision_format import GRID_STATE_WORDS, scope_text, when

# The audit log and a household's lists show the newest this many entries.
ACTS_SHOWN = 100
AUDIT_SHOWN = 50  # the regulator console's audit log: new acts are prepended as they commit
# The market statistics (table and chart) show the newest this many slots with contracts.
STATISTICS_SLOTS = 24
TAKES_EFFECT = "It takes effect when its block commits."


# --- what the sections show ----------------------------------------------------------------------


def names_of(addresses: Iterable[str]) -> dict[str, str]:
    """The names of the accounts at ``addresses`` (for the regulator's pages)."""
    rows = Identity.objects.filter(address__in=set(addresses)).values_list("address", "user__name")
    return dict(rows)


def households_at(addresses: Iterable[str]) -> dict[str, int]:
    """The user ids of the households among ``addresses`` (for links to their pages)."""
    rows = Identity.objects.filter(
        address__in=set(addresses), user__role=Role.HOUSEHOLD
    ).values_list("address", "user_id")
    return dict(rows)


def _staff_names(addresses: Iterable[str]) -> dict[str, str]:
    """The names of the regulators and grid operators among ``addresses``: a household may read
    who acted on it, never another household's name."""
    rows = (
        Identity.objects.filter(address__in=set(addresses))
        .exclude(user__role=Role.HOUSEHOLD)
        .values_list("address", "user__name")
    )
    return dict(rows)


@dataclass(frozen=True)
class ActRow:
    act: SupervisoryAct
    by_name: str


def _act_rows(
    acts: Iterable[SupervisoryAct], *, names: Callable[..., dict[str, str]]
) -> list[ActRow]:
    shown = list(acts)
    known = names(act.actor for act in shown)
    return [ActRow(act=act, by_name=known.get(act.actor, "")) for act in shown]


def feeder_names(carrier: str | None = None) -> list[str]:
    """The published feeders' names, for the forms that pick one: of ``carrier``'s network
    (feeders, or heat segments), or of every network (None)."""
    return [feeder.name for feeder in selectors.topology(carrier=carrier)]


def scopes() -> list[tuple[str, str]]:
    """Every published feeder and heat segment, with its carrier: what a suspension or a grid
    state declaration may name (``feeder:<name>`` stops heat trading on a segment too)."""
    return [(feeder.name, feeder.carrier) for feeder in selectors.topology()]


def _preserved(form: forms.Form) -> forms.Form:
    """A form inside a live region: htmx keeps what is typed when the region is re-fetched."""
    for field in form.fields.values():
        field.widget.attrs["hx-preserve"] = "true"
    return form


def review_rows(user: User) -> dict[str, Any]:
    items = list(selectors.review_queue(user=user))
    contracts = [item.contract for item in items]
    names = names_of([c.seller for c in contracts] + [c.buyer for c in contracts])
    households = households_at([c.seller for c in contracts] + [c.buyer for c in contracts])
    rows = [
        {
            "item": item,
            "contract": item.contract,
            "seller_name": names.get(item.contract.seller, ""),
            "buyer_name": names.get(item.contract.buyer, ""),
            # A party a regulator may restrict (a household, not the grid operator).
            "seller_household": households.get(item.contract.seller),
            "buyer_household": households.get(item.contract.buyer),
            "form": _preserved(
                ReviewDecisionForm(
                    prefix=f"review-{item.contract.id}",
                    contract_energy_wh=item.contract.energy_wh,
                    carrier=item.contract.carrier,
                )
            ),
        }
        for item in items
    ]
    return {"review_rows": rows, "can_act": user.role == Role.REGULATOR, "now": timezone.now()}


def audit_rows(user: User, after: int | None = None) -> dict[str, Any]:
    """The audit log: the supervisory acts and the grid operator's acts, merged newest first
    (``selectors.audit_log``), and the height they were read through (the page's cursor). With
    ``after``, only the acts committed since that height: the rows a page that shows the log
    up to it prepends (``static/js/audit.js``), so a block's act costs its row, not the log."""
    found, through = selectors.audit_log(user=user, limit=AUDIT_SHOWN, after=after)
    return {
        "act_rows": _act_rows(found, names=names_of),
        "audit_through": through,
        "audit_after": after,
        "audit_shown": AUDIT_SHOWN,
    }


def statistics_rows(user: User) -> dict[str, Any]:
    """The statistics table's rows, newest slot first; its chart (``static/js/statistics.js``)
    is drawn from them, so it follows the rows when a block re-fetches them."""
    return {
        "statistics": selectors.slot_statistics(user=user, limit=STATISTICS_SLOTS),
        "slots_shown": STATISTICS_SLOTS,
        "threshold_bps": review_limits()["seller_share_bps"],
        "price_unit": f"{settings.CURRENCY_SYMBOL} per kWh",
    }


def alert_inbox(user: User, desk: str) -> dict[str, Any]:
    """A console's alerts, open and acknowledged, with the acknowledge form's target."""
    return {"inbox": selectors.alert_inbox(user=user, desk=desk), "desk": desk}


def regulator_alerts(user: User) -> dict[str, Any]:
    return {
        **alert_inbox(user, selectors.REGULATOR_DESK),
        "suspensions": list(selectors.suspensions_in_force()),
    }


@dataclass(frozen=True)
class Prefill:
    """What a row action fills the console's act forms with (``?account=&account_act=``,
    ``?contract=&contract_act=``): anything unknown is left out, never an error."""

    account: str = ""
    account_act: str = ""
    contract: str = ""
    contract_act: str = ""

    @classmethod
    def of(cls, query: Any) -> Prefill:
        def pick(name: str, choices: Iterable[tuple[str, str]]) -> str:
            value = str(query.get(name, ""))
            return value if value in dict(choices) else ""

        return cls(
            account=str(query.get("account", ""))[:60],
            account_act=pick("account_act", AccountActForm.ACTS),
            contract=str(query.get("contract", ""))[:40],
            contract_act=pick("contract_act", ContractDecisionForm.DECISIONS),
        )


def regulator_context(user: User, prefill: Prefill | None = None) -> dict[str, Any]:
    """The supervision sections of the regulator console (regulators and admins; only a
    regulator signs acts, so an admin sees no forms); ``prefill``: what a row action fills the
    act forms with."""
    feeders = scopes()
    prefill = prefill or Prefill()
    context = {
        **review_rows(user),
        **audit_rows(user),
        **statistics_rows(user),
        **regulator_alerts(user),
    }
    if user.role == Role.REGULATOR:
        contract_form = ContractActForm(
            prefix="contract",
            initial={"contract": prefill.contract, "act": prefill.contract_act or None},
        )
        account_form = AccountActForm(
            prefix="account",
            initial={"address": prefill.account, "act": prefill.account_act or None},
        )
        contract_form.fields["contract"].widget.attrs["data-picker"] = reverse(
            "supervision-contract-picks"
        )
        account_form.fields["address"].widget.attrs["data-picker"] = reverse(
            "supervision-account-picks"
        )
        context |= {
            "contract_form": contract_form,
            "suspend_form": SuspendForm(prefix="suspend", feeders=feeders),
            "resume_form": ResumeForm(prefix="resume", feeders=feeders),
            "account_form": account_form,
            **pickers(user),
        }
    return context


def _contract_pick(contract: Contract, names: dict[str, str]) -> dict[str, Any]:
    """A contract as its picker names it: slot, parties, size and price."""
    label = (
        f"{date_format(timezone.localtime(contract.slot), 'D j M H:i')} · "
        f"{names.get(contract.seller, 'a household')} to "
        f"{names.get(contract.buyer, 'a household')} · "
        f"{energy_text(contract.energy_wh, contract.carrier)} at "
        f"{price(contract.price, contract.carrier)}"
    )
    if contract.kind == "flexibility":
        label += " · flexibility"
    return {"value": contract.id, "label": label}


def _contract_picks(user: User, search: str = "") -> list[dict[str, Any]]:
    contracts = selectors.contract_picks(user=user, search=search)
    names = names_of([c.seller for c in contracts] + [c.buyer for c in contracts])
    return [_contract_pick(contract, names) for contract in contracts]


def _account_picks(user: User, search: str = "") -> list[dict[str, Any]]:
    households = selectors.household_picks(user=user, search=search)
    return [{"value": address, "label": name} for address, name in households]


def pickers(user: User) -> dict[str, Any]:
    """What the act forms offer to pick from instead of a pasted id: the first households on
    the ledger by name, and the first contracts not yet delivered by slot, parties and size;
    as the regulator types, ``static/js/picker.js`` asks :func:`account_picks` and
    :func:`contract_picks` for those that match."""
    return {"account_picks": _account_picks(user), "contract_picks": _contract_picks(user)}


def _search_refusal(text: str) -> str | None:
    """Why ``text`` is no search (too long, or a control character), or None."""
    if len(text) > selectors.SEARCH_MAX:
        return f"Search for at most {selectors.SEARCH_MAX} characters."
    if any(not character.isprintable() for character in text):
        return "Search for printable text only."
    return None


def _picks_view(picks: Callable[[User, str], list[dict[str, Any]]]) -> View:
    """A picker's search: ``?q=`` what the regulator typed, answered as JSON
    ``{"picks": [{"value": ..., "label": ...}]}`` (at most ``selectors.PICKS_SHOWN``). For
    regulators only (403 ``forbidden`` otherwise, signed in or not); a search that is no text
    is a 400 ``bad_search`` with its message."""

    @require_GET
    def view(request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated or request.user.role != Role.REGULATOR:
            return JsonResponse(
                {"code": "forbidden", "message": "Only a regulator picks accounts and contracts."},
                status=403,
            )
        text = request.GET.get("q", "")
        refusal = _search_refusal(text)
        if refusal is not None:
            return JsonResponse({"code": "bad_search", "message": refusal}, status=400)
        return JsonResponse({"picks": picks(request.user, text)})

    return view


account_picks = _picks_view(_account_picks)
contract_picks = _picks_view(_contract_picks)


# --- the contracts list (the regulator console) and a household's contracts ----------------------


def contract_rows(user: User, contracts: Iterable[Contract], *, back: str) -> list[dict[str, Any]]:
    """Rows of a list of contracts with, for a regulator, each contract's veto and curtail form
    (while it may still be changed): its parties' names and household pages, and where the
    act goes back to once signed (``back``, a path on the consoles)."""
    shown = list(contracts)
    parties = {c.seller for c in shown} | {c.buyer for c in shown}
    households = households_at(parties)
    names = names_of(parties)
    now = timezone.now()
    rows = []
    for contract in shown:
        form = None
        if user.role == Role.REGULATOR and selectors.actionable(contract, now=now):
            form = _preserved(
                ContractDecisionForm(
                    prefix=f"row-{contract.id}",
                    contract_energy_wh=contract.energy_wh,
                    carrier=contract.carrier,
                )
            )
        rows.append(
            {
                "contract": contract,
                "seller_name": names.get(contract.seller, ""),
                "buyer_name": names.get(contract.buyer, ""),
                "seller_household": households.get(contract.seller),
                "buyer_household": households.get(contract.buyer),
                "form": form,
                "action": reverse("supervision-contract-decide", args=[contract.id])
                + "?"
                + urlencode({"next": back}),
            }
        )
    return rows


CONTRACTS_ANCHOR = "#contracts-heading"


def contract_list(user: User, query: Any) -> dict[str, Any]:
    """The regulator console's contracts section: one page of the contracts of the open and
    upcoming slots (``?contracts_q=`` the search, ``?contracts=`` the page), each row with its
    acts."""
    search = str(query.get("contracts_q", ""))[: selectors.SEARCH_MAX]
    if _search_refusal(search) is not None:
        search = ""
    page = selectors.contract_page(user=user, search=search, page=query.get("contracts"))
    shown = {"contracts_q": search, "contracts": page.number if page.number > 1 else ""}
    query_string = urlencode({name: value for name, value in shown.items() if value})
    back = reverse("regulator-console") + (f"?{query_string}" if query_string else "")
    return {
        "contract_rows": contract_rows(user, page.object_list, back=back + CONTRACTS_ANCHOR),
        "contracts_page": page,
        "contracts_q": search,
        "now": timezone.now(),
    }


def loading_rows(user: User) -> dict[str, Any]:
    return {
        "loading": selectors.feeder_loading(user=user),
        "threshold_bps": review_limits()["feeder_load_bps"],
    }


def operator_alerts(user: User) -> dict[str, Any]:
    return alert_inbox(user, selectors.OPERATOR_DESK)


def grid_rows(user: User) -> dict[str, Any]:
    return {"feeders": list(selectors.topology()), "declaration": selectors.grid_declaration()}


def operator_context(user: User) -> dict[str, Any]:
    """The grid sections of the grid operator console (grid operator and admins; only the grid
    operator signs, so an admin sees no forms)."""
    context = {**loading_rows(user), **operator_alerts(user), **grid_rows(user)}
    if user.role == Role.GRID_OPERATOR:
        context |= {
            "publish_form": FeederPublishForm(prefix="feeder", carriers=market_options().carriers),
            "state_form": GridStateForm(prefix="grid", feeders=scopes()),
        }
    return context


def live_partial(
    template: str,
    context_of: Callable[[User], dict[str, Any]],
    *roles: object,
    get_only: bool = False,
) -> View:
    """A live region's partial, re-fetched when a block commits: ``template`` rendered with
    ``context_of(user)``, for ``roles`` only (and only on GET if ``get_only``)."""

    def partial(request: HttpRequest) -> HttpResponse:
        return render(request, template, context_of(request.user))

    return role_required(*roles)(require_GET(partial) if get_only else partial)


# Where each desk's alerts are, to go back to after an acknowledgement.
DESK_CONSOLES = {
    selectors.OPERATOR_DESK: ("operator-console", "#grid-alerts-heading"),
    selectors.REGULATOR_DESK: ("regulator-console", "#alerts-heading"),
}


@require_POST
@role_required(*selectors.WATCHERS)
def alert_acknowledge(request: HttpRequest) -> HttpResponse:
    """Acknowledge one alert (``key``, as the page showed it: ``fingerprint``) for the desk of
    the console it was shown on (``desk``); back to that console with what happened. A desk the
    user does not work at is a 403; anything else wrong is a message, and nothing changes."""
    desk = request.POST.get("desk", "")
    if desk not in DESK_CONSOLES:
        home = selectors.HOME_DESK.get(request.user.role, selectors.OPERATOR_DESK)
        messages.error(request, MESSAGES["bad_desk"])
        return redirect(DESK_CONSOLES[home][0])
    console, anchor = DESK_CONSOLES[desk]
    fingerprint = request.POST.get("fingerprint")
    try:
        acknowledgement = services.alert_acknowledge(
            user=request.user,
            desk=desk,
            key=request.POST.get("key", "")[:128],
            fingerprint=fingerprint[:128] if fingerprint is not None else None,
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Acknowledged: “{acknowledgement.text}”. It stays under “Acknowledged” until it "
            "gets worse or comes back.",
        )
    return redirect(reverse(console) + anchor)


# --- the household's transparency page -----------------------------------------------------------


def _household_stops(user: User) -> dict[str, Any]:
    """What stops or may stop this household's trading: its feeder's (and heat segment's) and
    the market's suspensions, and the grid operator's declarations for them and the whole
    grid."""
    address = address_of(user)
    networks = selectors.networks_of(address) if address else []
    feeder = (
        MarketAccount.objects.filter(address=address).values_list("feeder", flat=True).first()
        if address
        else None
    )
    scopes = {"market"} | {f"feeder:{name}" for name in networks}
    suspensions = [s for s in selectors.suspensions_in_force() if s.scope in scopes]
    declarations = []
    grid = selectors.grid_declaration()
    if grid is not None:
        declarations.append(
            {"scope": "grid", "state": grid.state, "reason": grid.reason, "since": grid.since}
        )
    for row in selectors.topology().filter(name__in=networks).exclude(state="normal"):
        declarations.append(
            {
                "scope": f"feeder:{row.name}",
                "state": row.state,
                "reason": row.state_reason,
                "since": row.state_since,
            }
        )
    for declaration in declarations:
        declaration["words"] = GRID_STATE_WORDS.get(declaration["state"], declaration["state"])
    return {
        "feeder": feeder,
        "stop": selectors.trading_stop(address=address) if address else None,
        "suspensions": suspensions,
        "declarations": declarations,
    }


def household_acts(user: User) -> dict[str, Any]:
    acts = selectors.acts_touching(user=user)[:ACTS_SHOWN]
    return {"act_rows": _act_rows(acts, names=_staff_names)}


def household_notifications(user: User) -> dict[str, Any]:
    return {
        "notifications": list(selectors.notifications(user=user)[:ACTS_SHOWN]),
        "unread": selectors.unread_count(user=user),
    }


@role_required(Role.HOUSEHOLD)
@require_GET
def transparency(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        **_household_stops(user),
        **household_acts(user),
        **household_notifications(user),
    }
    return render(request, "supervision/transparency.html", context)


transparency_stops = live_partial(
    "supervision/_stops.html", _household_stops, Role.HOUSEHOLD, get_only=True
)
transparency_acts = live_partial(
    "supervision/_household_acts.html", household_acts, Role.HOUSEHOLD, get_only=True
)
transparency_notifications = live_partial(
    "supervision/_notifications.html", household_notifications, Role.HOUSEHOLD, get_only=True
)


@require_POST
@role_required(Role.HOUSEHOLD)
def notifications_read(request: HttpRequest) -> HttpResponse:
    count = services.notifications_mark_read(user=request.user)
    if count:
        messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} read.")
    return redirect("supervision")


def trading_stop_context(user: User) -> dict[str, Any]:
    """For the market's order form: what would refuse this household's order now."""
    address = address_of(user)
    return {"trading_stop": selectors.trading_stop(address=address) if address else None}


# The order form's notice (``/market/``), re-fetched on every block.
trading_stop = live_partial(
    "supervision/_trading_stop.html", trading_stop_context, *TRADING_ROLES, get_only=True
)


# --- acts: check, confirm, sign ------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmation:
    """A checked act, shown before it is signed: exactly what the transaction will say."""

    title: str
    rows: list[tuple[str, str]]
    button: str


@dataclass(frozen=True)
class Act:
    """One kind of act: its page's heading, where it goes back to, how it is confirmed, signed
    and announced."""

    heading: str
    back: str  # URL name of the console, or a path on it
    confirm: Callable[[dict[str, Any]], Confirmation]
    sign: Callable[[User, dict[str, Any]], Transaction]
    submitted: Callable[[dict[str, Any]], str]


def _act_page(
    request: HttpRequest,
    act: Act,
    form: forms.Form,
    *,
    confirmation: Confirmation | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "heading": act.heading,
        "action": request.get_full_path(),
        "back": resolve_url(act.back),
        "confirmation": confirmation,
    }
    return render(request, "supervision/act.html", context, status=status)


def _add_refusal(form: forms.Form, error: DomainError) -> None:
    field = FIELD_OF_CODE.get(error.code)
    form.add_error(field if field in form.fields else None, error.message)


def _perform(request: HttpRequest, act: Act, form: forms.Form) -> HttpResponse:
    """Check ``form``; without ``confirmed=yes``, show what would be signed; with it, sign."""
    if not form.is_valid():
        return _act_page(request, act, form, status=400)
    data = form.cleaned_data
    if request.POST.get("confirmed") != "yes":
        return _act_page(request, act, form, confirmation=act.confirm(data))
    try:
        tx = act.sign(request.user, data)
    except DomainError as error:
        _add_refusal(form, error)
        return _act_page(request, act, form, status=400)
    messages.success(
        request, f"{act.submitted(data)} was submitted (transaction {tx.id[:12]}…). {TAKES_EFFECT}"
    )
    return redirect(act.back)


def _act_view(role: object, act: Act, form_of: Callable[[Any], forms.Form]) -> View:
    """The page of an act only ``role`` signs: its form, filled from the POST by ``form_of``,
    checked, confirmed, signed (:func:`_perform`)."""

    @require_POST
    @role_required(role)
    def view(request: HttpRequest) -> HttpResponse:
        return _perform(request, act, form_of(request.POST))

    return view


def _until_text(data: dict[str, Any]) -> str:
    until = data.get("until")
    return when(until) if until is not None else "until a regulator resumes trading"


def _review_act(
    contract: Contract, back: str = "regulator-console", heading: str = "Review contract"
) -> Act:
    def confirm(data: dict[str, Any]) -> Confirmation:
        decision = data["decision"]
        rows = [
            ("Contract", contract.id),
            ("Energy now", energy_text(contract.energy_wh, contract.carrier)),
            ("Decision", dict(ReviewDecisionForm.DECISIONS)[decision]),
        ]
        if decision == "curtail":
            rows.append(("Energy after", energy_text(data["energy_wh"], contract.carrier)))
        rows.append(("Reason", data["reason"]))
        button = {
            "clear": "Confirm: clear the contract",
            "veto": "Confirm: veto the contract",
            "curtail": "Confirm: curtail the contract",
        }[decision]
        return Confirmation(
            f"{dict(ReviewDecisionForm.DECISIONS)[decision]} contract {contract.id}?", rows, button
        )

    def sign(user: User, data: dict[str, Any]) -> Transaction:
        return services.review_decide(
            regulator=user,
            contract_id=contract.id,
            decision=data["decision"],
            reason=data["reason"],
            energy_wh=data.get("energy_wh"),
        )

    def submitted(data: dict[str, Any]) -> str:
        verb = {"clear": "clearing", "veto": "veto", "curtail": "curtailment"}[data["decision"]]
        return f"The {verb} of contract {contract.id}"

    return Act(f"{heading} {contract.id}", back, confirm, sign, submitted)


@require_POST
@role_required(Role.REGULATOR)
def review_decide(request: HttpRequest, contract_id: str) -> HttpResponse:
    """Clear, veto or curtail a contract of the review queue."""
    item = selectors.review_queue(user=request.user).filter(contract_id=contract_id).first()
    if item is None:
        messages.error(request, "That contract is not waiting for review (decided already?).")
        return redirect("regulator-console")
    contract = item.contract
    form = ReviewDecisionForm(
        request.POST,
        prefix=f"review-{contract.id}",
        contract_energy_wh=contract.energy_wh,
        carrier=contract.carrier,
    )
    return _perform(request, _review_act(contract), form)


def _back(request: HttpRequest) -> str:
    """Where a row's act goes back to: its ``?next=``, a path on the consoles; else the
    regulator console's contracts."""
    back = request.GET.get("next", "")
    if back.startswith("/console/") and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return back
    return reverse("regulator-console") + CONTRACTS_ANCHOR


@require_POST
@role_required(Role.REGULATOR)
def contract_decide(request: HttpRequest, contract_id: str) -> HttpResponse:
    """Veto or curtail a contract from a row of a list (the console's contracts, a household's
    page), through the review queue's steps: checked, confirmed, signed; then back where the
    row was (``?next=``). A contract already vetoed or delivering is a message, nothing signed."""
    back = _back(request)
    contract = Contract.objects.filter(id=contract_id[:40]).first()
    if contract is None:
        raise Http404("No such contract.")
    if not selectors.actionable(contract):
        messages.error(
            request,
            f"Contract {contract.id} is vetoed already or its delivery has started: it stands "
            "as it is.",
        )
        return redirect(back)
    form = ContractDecisionForm(
        request.POST,
        prefix=f"row-{contract.id}",
        contract_energy_wh=contract.energy_wh,
        carrier=contract.carrier,
    )
    return _perform(request, _review_act(contract, back, "Veto or curtail contract"), form)


def _contract_confirm(data: dict[str, Any]) -> Confirmation:
    rows = [("Contract", data["contract"])]
    contract = Contract.objects.filter(id=data["contract"]).first()
    carrier = contract_carrier(data["contract"])
    if contract is not None:
        rows.append(("Energy now", energy_text(contract.energy_wh, carrier)))
    if data["act"] == "curtail":
        rows.append(("Energy after", energy_text(data["energy_wh"], carrier)))
    rows.append(("Reason", data["reason"]))
    if data["act"] == "veto":
        return Confirmation(
            f"Veto contract {data['contract']}?", rows, "Confirm: veto the contract"
        )
    return Confirmation(
        f"Curtail contract {data['contract']}?", rows, "Confirm: curtail the contract"
    )


def _contract_sign(user: User, data: dict[str, Any]) -> Transaction:
    if data["act"] == "veto":
        return services.contract_veto(
            regulator=user, contract_id=data["contract"], reason=data["reason"]
        )
    return services.contract_curtail(
        regulator=user,
        contract_id=data["contract"],
        energy_wh=data["energy_wh"],
        reason=data["reason"],
    )


CONTRACT_ACT = Act(
    "Veto or curtail a contract",
    "regulator-console",
    _contract_confirm,
    _contract_sign,
    lambda data: (
        f"The {'veto' if data['act'] == 'veto' else 'curtailment'} of contract {data['contract']}"
    ),
)


contract_act = _act_view(
    Role.REGULATOR, CONTRACT_ACT, lambda post: ContractActForm(post, prefix="contract")
)


SUSPEND_ACT = Act(
    "Suspend trading",
    "regulator-console",
    lambda data: Confirmation(
        f"Suspend trading in {scope_text(data['scope'])}?",
        [
            ("Where", scope_text(data["scope"])),
            ("Until", _until_text(data)),
            ("Reason", data["reason"]),
        ],
        "Confirm: suspend trading",
    ),
    lambda user, data: services.trading_suspend(
        regulator=user, scope=data["scope"], reason=data["reason"], until=data.get("until")
    ),
    lambda data: f"The suspension of trading in {scope_text(data['scope'])}",
)


trading_suspend = _act_view(
    Role.REGULATOR,
    SUSPEND_ACT,
    lambda post: SuspendForm(post, prefix="suspend", feeders=scopes()),
)


RESUME_ACT = Act(
    "Resume trading",
    "regulator-console",
    lambda data: Confirmation(
        f"Resume trading in {scope_text(data['scope'])}?",
        [("Where", scope_text(data["scope"])), ("Reason", data["reason"])],
        "Confirm: resume trading",
    ),
    lambda user, data: services.trading_resume(
        regulator=user, scope=data["scope"], reason=data["reason"]
    ),
    lambda data: f"The resumption of trading in {scope_text(data['scope'])}",
)


trading_resume = _act_view(
    Role.REGULATOR,
    RESUME_ACT,
    lambda post: ResumeForm(post, prefix="resume", feeders=scopes()),
)


_ACCOUNT_WORDS = {
    "restrict": ("Restrict account", "Confirm: restrict the account", "The restriction"),
    "reinstate": ("Reinstate account", "Confirm: reinstate the account", "The reinstatement"),
    "defaults_reset": (
        "Reset the unsettled defaults of account",
        "Confirm: reset the defaults",
        "The reset of the defaults",
    ),
}
_ACCOUNT_SERVICES: dict[str, Callable[..., Transaction]] = {
    "restrict": services.account_restrict,
    "reinstate": services.account_reinstate,
    "defaults_reset": services.defaults_reset,
}


def _account_confirm(data: dict[str, Any]) -> Confirmation:
    title, button, _ = _ACCOUNT_WORDS[data["act"]]
    name = names_of([data["address"]]).get(data["address"])
    rows = [
        ("Account", data["address"] + (f" ({name})" if name else "")),
        ("Reason", data["reason"]),
    ]
    return Confirmation(f"{title} {data['address']}?", rows, button)


ACCOUNT_ACT = Act(
    "Restrict, reinstate or reset an account",
    "regulator-console",
    _account_confirm,
    lambda user, data: _ACCOUNT_SERVICES[data["act"]](
        regulator=user, address=data["address"], reason=data["reason"]
    ),
    lambda data: f"{_ACCOUNT_WORDS[data['act']][2]} of account {data['address']}",
)


account_act = _act_view(
    Role.REGULATOR, ACCOUNT_ACT, lambda post: AccountActForm(post, prefix="account")
)


def _what(data: dict[str, Any]) -> str:
    """What a publication names: "feeder", or "heat segment" (``selectors.network_part``)."""
    return selectors.network_part(_carrier(data)).lower()


def _carrier(data: dict[str, Any]) -> str:
    """The network a publication is for: the form's choice, or electricity without one."""
    carrier: str = data.get("carrier", ELECTRICITY)
    return carrier


PUBLISH_ACT = Act(
    "Publish a feeder or a heat segment",
    "operator-console",
    lambda data: Confirmation(
        f"Publish {_what(data)} {data['feeder']}?",
        [
            (_what(data).capitalize(), data["feeder"]),
            ("Export limit", power_text(data["export_limit_w"], _carrier(data))),
            ("Import limit", power_text(data["import_limit_w"], _carrier(data))),
        ],
        f"Confirm: publish the {_what(data)}",
    ),
    lambda user, data: services.feeder_publish(
        operator=user,
        feeder=data["feeder"],
        export_limit_w=data["export_limit_w"],
        import_limit_w=data["import_limit_w"],
        carrier=_carrier(data),
    ),
    lambda data: f"The publication of {_what(data)} {data['feeder']}",
)


feeder_publish = _act_view(
    Role.GRID_OPERATOR,
    PUBLISH_ACT,
    lambda post: FeederPublishForm(post, prefix="feeder", carriers=market_options().carriers),
)


DECLARE_ACT = Act(
    "Declare the grid state",
    "operator-console",
    lambda data: Confirmation(
        f"Declare {scope_text(data['scope'])} {GRID_STATE_WORDS[data['state']]}?",
        [
            ("Where", scope_text(data["scope"])),
            ("State", GRID_STATE_WORDS[data["state"]]),
            ("Reason", data["reason"]),
        ],
        "Confirm: declare the state",
    ),
    lambda user, data: services.grid_state_declare(
        operator=user, scope=data["scope"], state=data["state"], reason=data["reason"]
    ),
    lambda data: (
        f"The declaration of {scope_text(data['scope'])} {GRID_STATE_WORDS[data['state']]}"
    ),
)


grid_state_declare = _act_view(
    Role.GRID_OPERATOR,
    DECLARE_ACT,
    lambda post: GridStateForm(post, prefix="grid", feeders=scopes()),
)
