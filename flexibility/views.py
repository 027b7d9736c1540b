"""The pages of requirements and stores.

* ``/flexibility/`` (households): enrol per carrier, the baseline for the upcoming slots, the
  open requirements on the household's feeder or heat segment with the time left to answer and
  a form to answer each, its answers, its flexibility contracts with their results, its store's
  state of charge.
* ``/console/operator/flexibility/`` (the grid operator; an admin reads it): post a
  requirement, every requirement with its answers (household, energy, price, baseline) and a
  form to accept each (all or part, confirmed on a page of its own), the flexibility contracts
  with baseline, measured and delivered energy, paid and penalty once settled; register a
  household's store and see every store's state of charge and commitments.

Every list that changes with the chain is a live region re-fetched on every block
(``static/js/live.js``): requirements and answers come and go with blocks the page's own
account did not sign. Every action signs one transaction (``flexibility.services``) and answers
at once with what the site knows: refused (the page again, status 400, the reason beside the
field) or submitted (redirect back with a message: it takes effect when its block commits).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from flexibility import selectors, services
from flexibility.errors import MESSAGES
from flexibility.forms import FIELD_OF_CODE, AnswerForm, RequirementForm, StoreForm
from flexibility.models import Answer, AnswerStatus, Requirement, RequirementStatus
from gridplatform.accounts.models import TRADING_ROLES, Role, User
from gridplatform.actions import signed_form, submitted
from gridplatform.decorators import role_required
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from ledger.projection import datetime_of_ms, ms_of_datetime
from market import selectors as market_selectors
from market.forms import WH, AcceptForm, energy_text, price_text, slot_label
from supervision.views import live_partial, names_of

# The newest this many closed requirements, answers and contracts are listed (open ones always).
HISTORY_SHOWN = 50
OPERATORS = (Role.GRID_OPERATOR, Role.ADMIN)


def _gate_closure(slot: datetime) -> datetime:
    """When trading for the slot starting at ``slot`` closes: answers and acceptances until then."""
    return datetime_of_ms(ms_of_datetime(slot) - market_selectors.options().gate_closure_ms)


# --- what the household's page shows -------------------------------------------------------------


def household_requirements(
    user: User, bound: tuple[Requirement, AnswerForm] | None = None
) -> dict[str, Any]:
    """The open requirements on the household's feeder or heat segment that it may still
    answer, each with the time left and its answer form (``bound``: the one just refused)."""
    options = market_selectors.options()
    rows = []
    for requirement in selectors.open_requirements(user=user):
        form = (
            bound[1]
            if bound and bound[0].id == requirement.id
            else AnswerForm(options=options, requirement=requirement)
        )
        rows.append(
            {
                "requirement": requirement,
                "gate_closure": _gate_closure(requirement.slot),
                "form": form,
            }
        )
    return {"requirement_rows": rows, "now": timezone.now()}


def household_answers(user: User) -> dict[str, Any]:
    answers = selectors.answer_list(user=user).order_by("-height", "id")
    open_answers = list(answers.filter(status=AnswerStatus.OPEN))
    closed = list(answers.exclude(status=AnswerStatus.OPEN)[:HISTORY_SHOWN])
    return {"answers": open_answers + closed}


def contracts(user: User) -> dict[str, Any]:
    """Flexibility contracts with their results, and (for the grid operator) who sells each."""
    rows = list(selectors.contract_list(user=user)[:HISTORY_SHOWN])
    names = names_of(row.contract.seller for row in rows) if selectors.is_operator(user) else {}
    return {
        "flexibility_contracts": [(row, names.get(row.contract.seller, "")) for row in rows],
        "operator_view": selectors.is_operator(user),
    }


def stores(user: User) -> dict[str, Any]:
    """The stores ``user`` may see with their latest charges, and their owners' names."""
    found = list(selectors.store_list(user=user))
    names = names_of(store.address for store in found) if selectors.is_operator(user) else {}
    return {
        "stores": [
            (store, list(selectors.store_charges(store=store)), names.get(store.address, ""))
            for store in found
        ],
        "operator_view": selectors.is_operator(user),
    }


def _household_page(
    request: HttpRequest,
    *,
    bound: tuple[Requirement, AnswerForm] | None = None,
    errors: dict[str, str] | None = None,
) -> HttpResponse:
    user = request.user
    address = market_selectors.address_of(user) or ""
    enrolled = selectors.enrolled_carriers(user=user)
    networks = selectors.household_networks(address=address) if address else {}
    context = {
        "address": address,
        "carriers": [
            (carrier, carrier in enrolled, networks.get(carrier, ""))
            for carrier in market_selectors.options().carriers
        ],
        "baselines": selectors.baselines(user=user),
        "errors": errors or {},
        "refused_answer": bound,
        **household_requirements(user, bound),
        **household_answers(user),
        **contracts(user),
        **stores(user),
    }
    status = 400 if bound or errors else 200
    return render(request, "flexibility/household.html", context, status=status)


@require_GET
@role_required(*TRADING_ROLES)
def household_page(request: HttpRequest) -> HttpResponse:
    return _household_page(request)


requirement_rows = live_partial(
    "flexibility/_requirements.html", household_requirements, *TRADING_ROLES, get_only=True
)
answer_rows = live_partial(
    "flexibility/_answers.html", household_answers, *TRADING_ROLES, get_only=True
)
contract_rows = live_partial(
    "flexibility/_contracts.html", contracts, *TRADING_ROLES, *OPERATORS, get_only=True
)
store_rows = live_partial(
    "flexibility/_stores.html", stores, *TRADING_ROLES, *OPERATORS, get_only=True
)


@require_POST
@role_required(*TRADING_ROLES)
def enrol(request: HttpRequest) -> HttpResponse:
    carrier = request.POST.get("carrier", "")
    try:
        tx = services.flexibility_enroll(user=request.user, carrier=carrier)
    except DomainError as error:
        return _household_page(request, errors={"enrol": error.message})
    submitted(request, f"Your enrolment for {carrier} flexibility", tx.id)
    return redirect("flexibility")


@require_POST
@role_required(*TRADING_ROLES)
def answer(request: HttpRequest, requirement_id: str) -> HttpResponse:
    """Answer one open requirement on the household's feeder: the reduction and its price."""
    requirement = selectors.open_requirements(user=request.user).filter(id=requirement_id).first()
    if requirement is None:
        message = MESSAGES["unknown_requirement"]
        return _household_page(request, errors={"requirements": message})
    form = AnswerForm(request.POST, options=market_selectors.options(), requirement=requirement)

    def sign(data: dict[str, Any]) -> Transaction:
        return services.answer_post(
            user=request.user,
            requirement_id=requirement.id,
            energy_wh=data["energy_wh"],
            price=data["price_minor"],
        )

    def what(data: dict[str, Any]) -> str:
        return (
            f"Your answer of {energy_text(data['energy_wh'])} at "
            f"{price_text(data['price_minor'])} for {slot_label(requirement.slot)}"
        )

    return signed_form(
        request,
        form,
        sign=sign,
        what=what,
        done=f"{reverse('flexibility')}#answers-heading",
        again=lambda: _household_page(request, bound=(requirement, form)),
        field_of_code=FIELD_OF_CODE,
    )


# --- the grid operator's page --------------------------------------------------------------------


def _accept_form(answer: Answer, data: Any = None) -> AcceptForm:
    options = market_selectors.options().carrier(answer.carrier)
    most = selectors.acceptable_wh(answer)
    form = AcceptForm(
        data,
        prefix=f"accept-{answer.id}",
        options=options,
        remaining_wh=most,
        initial={"energy": str(most), "energy_unit": WH},
    )
    for field in form.fields.values():
        field.widget.attrs["hx-preserve"] = "true"
    return form


def operator_requirements(
    user: User, bound: tuple[Answer, AcceptForm] | None = None
) -> dict[str, Any]:
    """Every open requirement and the newest closed ones, each with its answers (the
    household, its energy, price and baseline) and, for an open answer, its acceptance form
    (``bound``: the one just refused)."""
    found = selectors.requirement_list(user=user).order_by("-slot", "-height")
    shown = list(found.filter(status=RequirementStatus.OPEN)) + list(
        found.exclude(status=RequirementStatus.OPEN)[:HISTORY_SHOWN]
    )
    answers: dict[str, list[Answer]] = {}
    for row in selectors.answer_list(user=user).filter(requirement__in=[r.id for r in shown]):
        answers.setdefault(row.requirement_id, []).append(row)
    names = names_of(row.owner for rows in answers.values() for row in rows)
    can_accept = user.role == Role.GRID_OPERATOR
    rows = []
    for requirement in shown:
        answer_rows = []
        for row in answers.get(requirement.id, []):
            acceptable = (
                can_accept
                and row.status == AnswerStatus.OPEN
                and requirement.status == RequirementStatus.OPEN
            )
            form = None
            if acceptable:
                form = bound[1] if bound and bound[0].id == row.id else _accept_form(row)
            answer_rows.append({"answer": row, "name": names.get(row.owner, ""), "form": form})
        rows.append(
            {
                "requirement": requirement,
                "gate_closure": _gate_closure(requirement.slot),
                "answers": answer_rows,
            }
        )
    return {"operator_rows": rows, "now": timezone.now()}


def _operator_page(
    request: HttpRequest,
    *,
    requirement_form: RequirementForm | None = None,
    store_form: StoreForm | None = None,
    accept: tuple[Answer, AcceptForm] | None = None,
) -> HttpResponse:
    user = request.user
    options = market_selectors.options()
    may_sign = user.role == Role.GRID_OPERATOR
    context: dict[str, Any] = {
        "may_sign": may_sign,
        "accept": accept,
        **operator_requirements(user, accept),
        **contracts(user),
        **stores(user),
    }
    if may_sign:
        context["requirement_form"] = requirement_form or RequirementForm(
            prefix="requirement",
            options=options,
            slots=market_selectors.slot_list(),
            networks=selectors.networks(),
        )
        context["store_form"] = store_form or StoreForm(
            prefix="store", meters=selectors.storage_meters(user=user)
        )
    failed = accept or any(f is not None and f.errors for f in (requirement_form, store_form))
    return render(request, "flexibility/operator.html", context, status=400 if failed else 200)


@require_GET
@role_required(*OPERATORS)
def operator_page(request: HttpRequest) -> HttpResponse:
    return _operator_page(request)


operator_requirement_rows = live_partial(
    "flexibility/_operator_requirements.html", operator_requirements, *OPERATORS, get_only=True
)


@require_POST
@role_required(Role.GRID_OPERATOR)
def requirement_post(request: HttpRequest) -> HttpResponse:
    form = RequirementForm(
        request.POST,
        prefix="requirement",
        options=market_selectors.options(),
        slots=market_selectors.slot_list(),
        networks=selectors.networks(),
    )

    def sign(data: dict[str, Any]) -> Transaction:
        return services.requirement_post(
            operator=request.user,
            slot=data["slot_start"],
            feeder=data["network"],
            direction=data["direction"],
            energy_wh=data["energy_wh"],
            price=data["price_minor"],
            carrier=data["carrier"],
        )

    def what(data: dict[str, Any]) -> str:
        return (
            f"Your requirement to reduce {data['direction']} on {data['network']} by up to "
            f"{energy_text(data['energy_wh'])} at up to {price_text(data['price_minor'])} "
            f"for {slot_label(data['slot_start'])}"
        )

    return signed_form(
        request,
        form,
        sign=sign,
        what=what,
        done=reverse("operator-flexibility"),
        again=lambda: _operator_page(request, requirement_form=form),
        field_of_code=FIELD_OF_CODE,
    )


@require_POST
@role_required(Role.GRID_OPERATOR)
def answer_accept(request: HttpRequest, answer_id: str) -> HttpResponse:
    """Accept all or part of an answer in two steps: the energy typed is shown back with what
    the contract will be, and only the confirmation's button signs."""
    try:
        found = selectors.access_open_answer(user=request.user, answer_id=answer_id)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("operator-flexibility")
    form = _accept_form(found, request.POST)
    if form.is_valid():
        energy_wh = form.cleaned_data["energy_wh"]
        if request.POST.get("confirmed") != "yes":
            context = {
                "answer": found,
                "requirement": found.requirement,
                "name": names_of([found.owner]).get(found.owner, ""),
                "form": form,
                "energy_wh": energy_wh,
            }
            return render(request, "flexibility/accept_confirm.html", context)
    return signed_form(
        request,
        form,
        sign=lambda data: services.answer_accept(
            operator=request.user, answer_id=found.id, energy_wh=data["energy_wh"]
        ),
        what=lambda data: (
            f"Your acceptance of {energy_text(data['energy_wh'])} at {price_text(found.price)} "
            f"for {slot_label(found.slot)}"
        ),
        done=reverse("operator-flexibility"),
        again=lambda: _operator_page(request, accept=(found, form)),
        field_of_code=FIELD_OF_CODE,
    )


@require_POST
@role_required(Role.GRID_OPERATOR)
def store_register(request: HttpRequest) -> HttpResponse:
    form = StoreForm(
        request.POST, prefix="store", meters=selectors.storage_meters(user=request.user)
    )

    def sign(data: dict[str, Any]) -> Transaction:
        meter = data["store_meter"]
        return services.store_register(
            operator=request.user,
            address=meter.address,
            meter_id=meter.meter_id,
            capacity_wh=data["capacity_wh"],
            soc_wh=data["soc_wh"],
        )

    def what(data: dict[str, Any]) -> str:
        meter = data["store_meter"]
        return (
            f"The store of {meter.household or meter.address} ({meter.meter_id}, "
            f"{energy_text(data['capacity_wh'])} at {energy_text(data['soc_wh'])})"
        )

    return signed_form(
        request,
        form,
        sign=sign,
        what=what,
        done=reverse("operator-flexibility"),
        again=lambda: _operator_page(request, store_form=form),
        field_of_code=FIELD_OF_CODE,
    )
