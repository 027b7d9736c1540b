from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from gridplatform.accounts.models import HouseholdKind, User


class RegistrationForm(forms.Form):
    name = forms.CharField(max_length=150, label="Your name")
    email = forms.EmailField(label="Email address")
    household_kind = forms.ChoiceField(
        choices=HouseholdKind.choices,
        initial=HouseholdKind.PROSUMER,
        label="Your household",
        widget=forms.RadioSelect,
        help_text="A consumer buys from neighbours; a prosumer has rooftop PV and sells its "
        "surplus too; a storage owner also has a battery, to sell later what it stored.",
    )
    connection_point = forms.CharField(
        max_length=200,
        label="Where you are connected",
        help_text="Your street address, or the connection point's number on your electricity "
        "bill. The grid operator finds your feeder from it when it approves you.",
    )
    # Filled by the browser (static/js/timezone.js): the pages then show its own time.
    time_zone = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)
    password1 = forms.CharField(
        label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        # Whether the address has an account is not said here: the email answers that
        # (services.registration_start), so the form tells no one which addresses are taken.
        return str(self.cleaned_data["email"]).strip().lower()

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            probe = User(email=cleaned.get("email", ""), name=cleaned.get("name", ""))
            try:
                validate_password(p1, probe)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Token name",
        help_text="What the token is for, e.g. “home battery controller”.",
    )
