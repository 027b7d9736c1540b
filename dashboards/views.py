"""The landing redirect, the household dashboard and the consoles: pages that gather what every app
below shows, each section from its owner (its selectors and its views' contexts and partials).

The consoles' live sections each re-fetch a partial when a block commits (``/ws/ledger/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from gridplatform.accounts import views as account_views
from gridplatform.accounts.models import TRADING_ROLES, HouseholdKind, Role, User
from gridplatform.decorators import role_required
from gridplatform.money import MoneyError, minor_from_text, text_from_minor
from ledger import config as ledger_config
from ledger import read_model_audit
from ledger import selectors as ledger_selectors
from ledger import services as ledger_services
from market import flows as market_flows
from market import selectors as market_selectors
from market import services as market_services
from market import views as market_views
from market.chain.options import ELECTRICITY, HEAT
from meters import selectors as meter_selectors
from supervision import selectors as supervision_selectors
from supervision import services as supervision_services
from supervision import views as supervision_views
from supervision.views import live_partial

_HOME_BY_ROLE = {
    Role.HOUSEHOLD: "dashboard",
    Role.STORAGE_PROVIDER: "market",
    Role.RETAILER: "retail-customers",
    Role.GRID_OPERATOR: "operator-console",
    Role.REGULATOR: "regulator-console",
    Role.ADMIN: "operator-console",
}


def home(request: HttpRequest) -> HttpResponse:
    """The landing page, which says what the platform is and how joining works; a logged-in
    user goes on to its own start page."""
    if not request.user.is_authenticated:
        return render(request, "landing.html")
    return redirect(_HOME_BY_ROLE[request.user.role])


@dataclass(frozen=True)
class Step:
    """One step of joining, as the household's dashboard lists it."""

    title: str
    done: bool
    text: str
    link: str = ""  # a URL name: where to do it


def joining_steps(user: User, money: Any) -> list[Step]:
    """Where a household stands on its way to a first trade, and what comes next; empty once
    every step is done."""
    feeder = supervision_selectors.feeder_of(user=user)
    approved = money is not None and bool(feeder)
    waiting = (
        f"The grid operator finds your feeder from where you said you are connected "
        f"(“{user.connection_point}”), then puts you on the ledger. You get an email."
        if user.connection_point
        else "The grid operator finds your feeder, then puts you on the ledger. You get an email."
    )
    steps = [
        Step("Register", True, "Your account and its signing key exist."),
        Step(
            "Approval by the grid operator",
            approved,
            f"Approved: your connection is on feeder {feeder}." if approved else waiting,
        ),
        Step(
            "Credits",
            bool(money and money.balance > 0),
            "You have credits to trade with."
            if money and money.balance > 0
            else "Pay in with your grid operator: it tops up your credits on the ledger.",
        ),
        Step(
            "Your meter",
            meter_selectors.meter_list(user=user).exists(),
            "Register your meter with the public key from its vendor's app; its readings "
            "settle your trades.",
            "meters",
        ),
        Step(
            "First trade",
            market_selectors.order_list(user=user).exists()
            or market_selectors.contract_list(user=user).exists(),
            "Buy from or sell to your neighbours, or set a standing rule.",
            "market",
        ),
    ]
    return [] if all(step.done for step in steps) else steps


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {"account": request.user}
    if request.user.role == Role.HOUSEHOLD:
        # Balance, locked margin and free balance; None: not on the ledger yet. Read between two
        # reads of the newest block: a block's rows and its record are projected in one
        # transaction, so the same height before and after means the figures are that block's,
        # and the browser compares them with a proof of the same block (static/js/stateproof.js).
        newest = ledger_selectors.block_list().values_list("height", flat=True)
        before = newest.first()
        context["money"] = market_selectors.money(user=request.user)
        genesis = ledger_config.load_genesis()
        if context["money"] is not None and genesis is not None:
            after = newest.first()
            context["state_proof"] = {
                "height": after if after == before else None,
                "chain": genesis.chain,
                "validators": genesis.validators,
                "genesis_hash": genesis.document_hash(),
                "currency": settings.CURRENCY_SYMBOL,
            }
        context["joining"] = joining_steps(request.user, context["money"])
        # "Your energy": the charts' tables; static/js/flows.js draws them from flows.json.
        context |= market_views.flows_context(user=request.user, period=request.GET.get("period"))
        # "This month": the bill so far, what it saved, and the community figures.
        context |= market_views.month_context(user=request.user)
    return render(request, "dashboard.html", context)


@dataclass(frozen=True)
class Summary:
    """The band at the top of the operator console: the community and the grid at a glance."""

    households: int
    waiting: int
    traded_today_wh: int
    feeders: int
    feeders_near_limit: int  # in the slots shown, at the review threshold or more
    busiest_pct: int  # the highest load of a feeder, either way, in those slots
    alerts: int  # open at the grid operator's desk (not acknowledged, or re-opened)
    validators_up: int
    validators: int
    traded_heat_today_wh: int = 0  # heat, in Wh thermal: never added to electricity's


def _summary(user: User, households: int, waiting: int, validators: list[Any]) -> Summary:
    loading = supervision_selectors.feeder_loading(user=user)
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return Summary(
        households=households,
        waiting=waiting,
        traded_today_wh=market_selectors.energy_traded(since=today),
        traded_heat_today_wh=market_selectors.energy_traded(since=today, carrier=HEAT),
        feeders=len({row.feeder for row in loading} or supervision_views.feeder_names()),
        feeders_near_limit=len({row.feeder for row in loading if row.alert}),
        busiest_pct=max((max(r.export_pct, r.import_pct) for r in loading), default=0),
        alerts=supervision_selectors.open_alert_count(
            user=user, desk=supervision_selectors.OPERATOR_DESK
        ),
        validators_up=sum(1 for v in validators if v.up),
        validators=len(validators),
    )


@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_console(request: HttpRequest) -> HttpResponse:
    validators = ledger_selectors.validator_list()
    households = _households(request)
    context = {
        **account_views.account_table_context(request),
        "validators": validators,
        "history_blocks": ledger_selectors.HISTORY_BLOCKS,
        "summary": _summary(
            request.user, households["households_total"], households["waiting"], validators
        ),
        **households,
        **_latest_flows(request),
        # The grid: feeder loading, alerts, topology and grid state (supervision.views).
        **supervision_views.operator_context(request.user),
        # Read models that differ from the chain, in the alerts (ledger.read_model_audit).
        "audit_alert": read_model_audit.audit_alert(user=request.user),
        # Self-sufficiency, self-consumption and prices of the community this month.
        **market_views.community_context(),
    }
    return render(request, "console/operator.html", context)


# The grid sections' live partials: each re-fetched when a block commits.


_OPERATORS = (Role.GRID_OPERATOR, Role.ADMIN)


def _operator_alerts(user: User) -> dict[str, Any]:
    """The grid's alerts and, when the latest read-model audit found differences, that one."""
    return {
        **supervision_views.operator_alerts(user),
        "audit_alert": read_model_audit.audit_alert(user=user),
    }


operator_loading_rows = live_partial(
    "console/_feeder_loading_rows.html", supervision_views.loading_rows, *_OPERATORS
)
operator_alerts = live_partial("console/_alert_list.html", _operator_alerts, *_OPERATORS)
operator_grid_rows = live_partial(
    "console/_grid_rows.html", supervision_views.grid_rows, *_OPERATORS
)


def _households(request: HttpRequest) -> dict[str, Any]:
    """The households section: one page of the households as the operator searched, filtered
    and sorted them (``market_selectors.household_page``), and the published feeders, to
    filter by and, for the grid operator (who approves households), to choose from."""
    names = ("q", "feeder", "state", "kind", "sort")
    query = {name: request.GET.get(name, "")[:100] for name in names}
    found = market_selectors.household_page(
        user=request.user,
        search=query["q"],
        feeder=query["feeder"],
        state=query["state"],
        kind=query["kind"],
        sort=query["sort"] or "name",
        page=request.GET.get("page"),
    )
    published = supervision_views.feeder_names(ELECTRICITY)
    return {
        "households": found.rows,
        "households_page": found.page,
        "household_query": query,
        "household_states": market_selectors.HOUSEHOLD_STATES,
        "household_kinds": HouseholdKind.choices,
        "published_feeders": published,
        "feeders": published if request.user.role == Role.GRID_OPERATOR else [],
        "heat_segments": _heat_segments(request.user),
        "waiting": found.waiting,
        "households_total": found.total,
    }


@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_household_rows(request: HttpRequest) -> HttpResponse:
    """The rows of the households table (the page and filters of the query string): what the
    live console re-fetches when a block commits."""
    return render(request, "console/_household_rows.html", _households(request))


@require_GET
@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_household_row(request: HttpRequest, user_id: int) -> HttpResponse:
    """One row of the households table: what a live update re-fetches when a block changed
    that household's account (``ledger.live``)."""
    row = market_selectors.household_row(user=request.user, household_id=user_id)
    if row is None:
        raise Http404("No such household.")
    published = supervision_views.feeder_names(ELECTRICITY) if not row.approved else []
    context = {
        "row": row,
        "feeders": published if request.user.role == Role.GRID_OPERATOR else [],
        "heat_segments": _heat_segments(request.user),
    }
    return render(request, "console/_household_row.html", context)


def _heat_segments(user: User) -> list[str]:
    """The published heat segments, for the grid operator to assign a household to (none for
    anyone else, and none where the market trades no heat)."""
    if user.role != Role.GRID_OPERATOR or HEAT not in market_selectors.options().carriers:
        return []
    return supervision_views.feeder_names(HEAT)


@require_POST
@role_required(Role.GRID_OPERATOR)
def operator_household_heat_segment(request: HttpRequest, user_id: int) -> HttpResponse:
    """Assign a household to a segment of the heating network (``grid.feeder.assign`` with
    ``carrier`` heat): without one it cannot trade heat."""
    household = _household(user_id)
    segment = request.POST.get("segment", "")
    try:
        tx = market_services.feeder_assign(
            operator=request.user, household=household, feeder=segment, carrier=HEAT
        )
    except ledger_services.TransactionRejected as error:
        messages.error(request, f"Heat segment for {household.name}: {error.message}")
    else:
        messages.success(
            request,
            f"{household.name} is being assigned heat segment {segment} (transaction "
            f"{tx.id[:12]}…); it can trade heat once its block commits.",
        )
    return redirect("operator-console")


def _latest_flows(request: HttpRequest) -> dict[str, Any]:
    found = meter_selectors.latest_flow_page(user=request.user, page=request.GET.get("flows"))
    return {"latest_flows": found.flows, "latest_flows_page": found.page}


@require_GET
@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_latest_flow_rows(request: HttpRequest) -> HttpResponse:
    """One page of the latest-flows rows (``?flows=`` the page), re-read every 30 s."""
    return render(request, "console/_latest_flow_rows.html", _latest_flows(request))


@require_GET
@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_latest_flow_row(request: HttpRequest, user_id: int) -> HttpResponse:
    """One household's latest-flows row: what a live update re-fetches when a block changed
    its account, meters included (``ledger.live``)."""
    found = meter_selectors.latest_flow_list(user=request.user, household_ids=[user_id])
    if not found:
        raise Http404("No such household.")
    return render(request, "console/_latest_flow_row.html", {"row": found[0]})


@require_GET
@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_summary(request: HttpRequest) -> HttpResponse:
    """The summary band's figures, re-read on every block (their size does not grow with the
    community's)."""
    return render(request, "console/_summary.html", {"summary": _operator_summary(request)})


def _operator_summary(request: HttpRequest) -> Summary:
    households = market_selectors.household_counts(user=request.user)
    validators = ledger_selectors.validator_list()
    return _summary(request.user, households.total, households.waiting, validators)


def _household(user_id: int) -> User:
    return get_object_or_404(User, pk=user_id, role__in=TRADING_ROLES, email_confirmed=True)


HOUSEHOLD_DETAIL_ROWS = 50


@require_GET
@role_required(Role.GRID_OPERATOR, Role.REGULATOR, Role.ADMIN)
def household_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    """One household as the grid operator and regulators see it: where it is connected, its
    money, its meters, its newest contracts, the supervisory acts that touched it and its
    transactions on the ledger (each list its newest ``HOUSEHOLD_DETAIL_ROWS``)."""
    household = _household(user_id)
    address = household.identity.address
    contracts = list(market_selectors.contract_list(user=household)[:HOUSEHOLD_DETAIL_ROWS])
    acts = supervision_selectors.acts_naming(address=address, contracts=[c.id for c in contracts])[
        :HOUSEHOLD_DETAIL_ROWS
    ]
    # Its flows over the last day: the dashboard's "Your energy", as the console reads it.
    energy = market_views.flows_context(user=household, period="day")
    series = (*market_flows.ENERGY_SERIES, *market_flows.TRADE_SERIES)
    context = {
        "household": household,
        "address": address,
        "flows": energy["flows"],
        "flow_totals": {
            name: sum(getattr(s, name) for s in energy["flows"].slots) for name in series
        },
        "flow_rows": [
            row for row in energy["flow_rows"] if any(v != "0" for v in row.energy + row.trade)
        ],
        "money": market_selectors.money(user=household),
        "meters": meter_selectors.meter_list(user=household),
        # A regulator vetoes or curtails them from their rows, and comes back here.
        "contract_rows": supervision_views.contract_rows(
            request.user, contracts, back=request.path + "#contracts-heading"
        ),
        "now": timezone.now(),
        "acts": acts,
        "transactions": ledger_selectors.address_transactions(address=address)[
            :HOUSEHOLD_DETAIL_ROWS
        ],
    }
    return render(request, "console/household.html", context)


@require_POST
@role_required(Role.GRID_OPERATOR)
def operator_participant_register(request: HttpRequest) -> HttpResponse:
    """Open an account for a storage provider or a retailer and register it on the ledger
    (``supervision.services.participant_register``)."""
    name = request.POST.get("name", "")
    try:
        user = supervision_services.participant_register(
            operator=request.user,
            name=name,
            email=request.POST.get("email", ""),
            role=request.POST.get("role", ""),
        )
    except ledger_services.TransactionRejected as error:
        messages.error(request, f"Registering {name or 'the account'}: {error.message}")
    else:
        messages.success(
            request,
            f"{user.name} ({user.get_role_display().lower()}) is being registered on the "
            "ledger; an email tells them how to choose a password.",
        )
    return redirect(reverse("operator-console") + "#participants-heading")


@require_POST
@role_required(Role.GRID_OPERATOR)
def operator_household_enrol(request: HttpRequest, user_id: int) -> HttpResponse:
    household = _household(user_id)
    try:
        tx = ledger_services.household_enrol(operator=request.user, household=household)
    except ledger_services.TransactionRejected as error:
        messages.error(request, f"{household.name}: {error.message}")
    else:
        messages.success(
            request,
            f"{household.name} is being registered on the ledger (transaction {tx.id[:12]}…).",
        )
    return redirect("operator-console")


@require_POST
@role_required(Role.GRID_OPERATOR)
def operator_household_approve(request: HttpRequest, user_id: int) -> HttpResponse:
    """Approve a household that asked to join: on the ledger, on the feeder the operator picked
    from the published topology, with its first credits if an amount is given."""
    household = _household(user_id)
    feeder = request.POST.get("feeder", "")
    amount = request.POST.get("top_up", "").strip()
    try:
        top_up = minor_from_text(amount) if amount else 0
        supervision_services.household_approve(
            operator=request.user, household=household, feeder=feeder, top_up=top_up
        )
    except MoneyError as error:
        messages.error(request, f"Approving {household.name}: {error}")
    except ledger_services.TransactionRejected as error:
        messages.error(request, f"Approving {household.name}: {error.message}")
    else:
        credits = f" with {text_from_minor(top_up)} of credits" if top_up else ""
        messages.success(
            request,
            f"{household.name} approved on feeder {feeder}{credits}: on the ledger with the "
            "next block. The household was told by email.",
        )
    return redirect("operator-console")


@require_POST
@role_required(Role.GRID_OPERATOR)
def operator_household_top_up(request: HttpRequest, user_id: int) -> HttpResponse:
    """A top-up in two steps: the amount typed on the console is shown back, beside what the
    household was given in the last 24 hours and the limits, and only its **Confirm** sends it.
    An amount past a limit is refused at either step (``ledger_services.top_up_check``)."""
    household = _household(user_id)
    try:
        amount = minor_from_text(request.POST.get("amount", ""))
        if request.POST.get("confirm") != "yes":
            top_up = ledger_services.top_up_check(
                operator=request.user, household=household, amount=amount
            )
            context = {
                "household": household,
                "top_up": top_up,
                "amount_text": f"{amount // 100}.{amount % 100:02d}",
                "limit": settings.TOP_UP_LIMIT_MINOR,
            }
            return render(request, "console/top_up_confirm.html", context)
        tx = ledger_services.credits_top_up(
            operator=request.user, household=household, amount=amount
        )
    except MoneyError as error:
        messages.error(request, f"Top-up for {household.name}: {error}")
    except ledger_services.TransactionRejected as error:
        messages.error(request, f"Top-up for {household.name}: {error.message}")
    else:
        messages.success(
            request,
            f"Top-up of {text_from_minor(amount)} for {household.name} submitted "
            f"(transaction {tx.id[:12]}…); the balance changes when its block commits.",
        )
    return redirect("operator-console")


@role_required(Role.REGULATOR, Role.ADMIN)
def regulator_console(request: HttpRequest) -> HttpResponse:
    context = {
        **account_views.account_table_context(request),
        # Review queue, acts, statistics, alerts, audit log (supervision.views).
        **supervision_views.regulator_context(
            request.user, supervision_views.Prefill.of(request.GET)
        ),
        # The contracts of the open and upcoming slots, each row with its acts.
        **supervision_views.contract_list(request.user, request.GET),
    }
    return render(request, "console/regulator.html", context)


@require_GET
@role_required(Role.REGULATOR, Role.ADMIN)
def regulator_contract_rows(request: HttpRequest) -> HttpResponse:
    """The rows of the contracts list (the page and search of the query string): what the live
    console re-fetches when an act commits."""
    context = supervision_views.contract_list(request.user, request.GET)
    return render(request, "console/_contract_rows.html", context)


# The supervision sections' live partials: each re-fetched when a block commits.


_REGULATORS = (Role.REGULATOR, Role.ADMIN)
regulator_review_rows = live_partial(
    "console/_review_rows.html", supervision_views.review_rows, *_REGULATORS
)
_HEIGHT = re.compile(r"-?[0-9]{1,18}")


@require_GET
@role_required(*_REGULATORS)
def regulator_audit_rows(request: HttpRequest) -> HttpResponse:
    """The audit log's rows: all it shows, or with ``?after=<height>`` only the acts of the
    blocks after that height (``static/js/audit.js`` puts them on top). The height they were
    read through is the header ``X-Audit-Through``: the next ``after``. An ``after`` that is not
    a height is a 400 with a plain message, and nothing is read."""
    text = request.GET.get("after")
    after = None
    if text is not None:
        if _HEIGHT.fullmatch(text) is None:
            return HttpResponse(
                "after must be a block height (a whole number).",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        after = int(text)
    context = supervision_views.audit_rows(request.user, after=after)
    response = render(request, "console/_audit_rows.html", context)
    response["X-Audit-Through"] = str(context["audit_through"])
    return response


regulator_statistics_rows = live_partial(
    "console/_statistics_rows.html", supervision_views.statistics_rows, *_REGULATORS
)
regulator_alerts = live_partial(
    "console/_regulator_alert_list.html", supervision_views.regulator_alerts, *_REGULATORS
)
