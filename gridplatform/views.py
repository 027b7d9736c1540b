"""The dashboards shell: the landing redirect, the household dashboard and the consoles."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from gridplatform.accounts import selectors
from gridplatform.accounts.models import Role
from gridplatform.decorators import role_required
from ledger import selectors as ledger_selectors

_HOME_BY_ROLE = {
    Role.HOUSEHOLD: "dashboard",
    Role.GRID_OPERATOR: "operator-console",
    Role.REGULATOR: "regulator-console",
    Role.ADMIN: "operator-console",
}


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect(_HOME_BY_ROLE[request.user.role])


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard.html", {"account": request.user})


@role_required(Role.GRID_OPERATOR, Role.ADMIN)
def operator_console(request: HttpRequest) -> HttpResponse:
    accounts = selectors.account_list(user=request.user)
    context = {"accounts": accounts, "validators": ledger_selectors.validator_list()}
    return render(request, "console/operator.html", context)


@role_required(Role.REGULATOR, Role.ADMIN)
def regulator_console(request: HttpRequest) -> HttpResponse:
    accounts = selectors.account_list(user=request.user)
    return render(request, "console/regulator.html", {"accounts": accounts})


def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers and the run command: the web process answers."""
    return HttpResponse("ok", content_type="text/plain")
