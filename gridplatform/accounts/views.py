from __future__ import annotations

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from gridplatform.accounts import selectors, services
from gridplatform.accounts.forms import RegistrationForm
from gridplatform.accounts.models import SUPERVISORY_ROLES
from gridplatform.decorators import role_required


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.household_register(
                name=form.cleaned_data["name"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                household_kind=form.cleaned_data["household_kind"],
            )
        except services.AccountError as error:
            form.add_error(None, error.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard")
    status = 400 if form.errors else 200
    return render(request, "registration/register.html", {"form": form}, status=status)


@role_required(*SUPERVISORY_ROLES)
def account_rows(request: HttpRequest) -> HttpResponse:
    """The rows of the console's account table: what the live page reloads on a push."""
    accounts = selectors.account_list(user=request.user)
    return render(request, "console/_account_rows.html", {"accounts": accounts})
