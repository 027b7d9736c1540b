from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gridplatform.accounts import selectors, services
from gridplatform.accounts.forms import ApiTokenForm, RegistrationForm
from gridplatform.accounts.models import SUPERVISORY_ROLES
from gridplatform.decorators import role_required

REGISTERED_EMAIL = "registration_email"


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    """Step one of registering: the answer is "check your email" whether or not the address
    already has an account (``services.registration_start``)."""
    if request.user.is_authenticated:
        return redirect("home")
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.registration_start(
            name=form.cleaned_data["name"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            household_kind=form.cleaned_data["household_kind"],
            connection_point=form.cleaned_data["connection_point"],
            time_zone=form.cleaned_data["time_zone"],
            site_url=f"{request.scheme}://{request.get_host()}",
        )
        request.session[REGISTERED_EMAIL] = form.cleaned_data["email"]
        return redirect("register-sent")
    status = 400 if form.errors else 200
    return render(request, "registration/register.html", {"form": form}, status=status)


@require_GET
def register_sent(request: HttpRequest) -> HttpResponse:
    context = {
        "email": request.session.get(REGISTERED_EMAIL, ""),
        "hours": settings.REGISTRATION_CONFIRM_TIMEOUT // 3600,
        "outbox": settings.OUTBOX_PAGE,
    }
    return render(request, "registration/register_sent.html", context)


@require_http_methods(["GET", "POST"])
def register_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """Step two: the link from the email shows whom it is for; its button finishes (a GET
    changes nothing, so a mail scanner that opens links confirms nothing)."""
    try:
        if request.method == "POST":
            user = services.registration_confirm(token=token)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session.pop(REGISTERED_EMAIL, None)
            messages.success(request, "Your email address is confirmed: welcome!")
            return redirect("dashboard")
        pending = services.registration_pending(token=token)
    except services.BadRegistrationLink as error:
        context = {"error": error.message}
        return render(request, "registration/register_confirm.html", context, status=400)
    return render(request, "registration/register_confirm.html", {"pending": pending})


def account_table_context(request: HttpRequest) -> dict[str, object]:
    """The consoles' account table: one page of the accounts (``?accounts=`` the page) matching
    ``?accounts_q=``."""
    search = request.GET.get("accounts_q", "")[:100]
    page = selectors.account_page(
        user=request.user, search=search, page=request.GET.get("accounts")
    )
    return {"accounts": page.object_list, "accounts_page": page, "accounts_q": search}


@require_GET
@role_required(*SUPERVISORY_ROLES)
def account_rows(request: HttpRequest) -> HttpResponse:
    """The rows of the console's account table: what the live page reloads on a push."""
    return render(request, "console/_account_rows.html", account_table_context(request))


def _settings_page(
    request: HttpRequest, *, form: ApiTokenForm, new_token: str = "", status: int = 200
) -> HttpResponse:
    tokens = selectors.api_token_list(user=request.user)
    context = {
        "form": form,
        "tokens": tokens,
        "new_token": new_token,
        "time_zones": services.time_zones(),
    }
    response = render(request, "accounts/settings.html", context, status=status)
    if new_token:
        # The one page that ever shows the token: no cache may keep a copy.
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def account_settings(request: HttpRequest) -> HttpResponse:
    """The account's settings: its API tokens, a form to make one, and a button to revoke."""
    return _settings_page(request, form=ApiTokenForm())


@login_required
@require_POST
def time_zone_set(request: HttpRequest) -> HttpResponse:
    """Show this user times in the zone it picked (empty: the site's)."""
    try:
        services.time_zone_set(user=request.user, zone=request.POST.get("time_zone", ""))
    except services.BadTimeZone as error:
        messages.error(request, error.message)
        return redirect("account-settings")
    messages.success(request, "Times are shown in your zone from now on.")
    return redirect("account-settings")


@login_required
@require_POST
def display_name_set(request: HttpRequest) -> HttpResponse:
    """The name this household shows its trading counterparties (empty: none)."""
    try:
        user = services.display_name_set(user=request.user, name=request.POST.get("name", ""))
    except services.BadDisplayName as error:
        messages.error(request, error.message)
        return redirect("account-settings")
    if user.display_name:
        messages.success(request, f"Your counterparties see you as “{user.display_name}”.")
    else:
        messages.success(request, "Your counterparties see you as a neighbour on your feeder.")
    return redirect("account-settings")


@login_required
@require_POST
def api_token_create(request: HttpRequest) -> HttpResponse:
    """Make a token and show it, once: the response to this POST is the only place it appears."""
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        try:
            token, plaintext = services.api_token_create(
                user=request.user, name=form.cleaned_data["name"]
            )
        except services.AccountError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                f"Token “{token.name}” created. Copy it now: it is shown only this once.",
            )
            return _settings_page(request, form=ApiTokenForm(), new_token=plaintext)
    return _settings_page(request, form=form, status=400)


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the account's own tokens (another account's is a 404)."""
    token = services.api_token_revoke(user=request.user, token_id=token_id)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) is revoked.")
    return redirect("account-settings")


def _tokens_revoked(request: HttpRequest, user: Any) -> None:
    revoked = services.api_tokens_revoke_all(user=user)
    if revoked:
        messages.info(
            request,
            f"Your password changed, so your {revoked} API token{'s' if revoked > 1 else ''} "
            f"{'were' if revoked > 1 else 'was'} revoked: whoever held "
            f"{'them' if revoked > 1 else 'it'} can no longer use the API as you. Make a new "
            "one on Settings where you need one.",
        )


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change; the account's API tokens are revoked with the old password."""

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        _tokens_revoked(self.request, form.user)
        return response


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's new password from a reset link; the account's API tokens are revoked too."""

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        _tokens_revoked(self.request, form.user)
        return response
