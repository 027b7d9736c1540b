"""The forms of energy sellers, in the market page's units (``market.forms``): energy in kWh (or
Wh for an order), prices in the currency per kWh (or cents for an order), turned exactly into the
integers the ledger signs. The validators' refusals come back with their code, which
:data:`FIELD_OF_CODE` puts beside the field it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from market.chain.options import Options
from market.forms import FIELD_OF_CODE as MARKET_FIELD_OF_CODE
from market.forms import Inexact, NotANumber, OrderForm, scaled
from market.selectors import Slot
from retail.errors import MESSAGES

FIELD_OF_CODE = MARKET_FIELD_OF_CODE | {
    "bad_address": "retailer",
    "unknown_retailer": "retailer",
    "unknown_account": "retailer",
    "own_grant": "retailer",
    "bad_carrier": "carrier",
    "bad_grant_limit": "max_energy",
    "not_a_customer": "household",
    "no_grant": "household",
    "exceeds_grant": "energy",
    "price_outside_grant": "price",
}
_INPUT = {"inputmode": "decimal", "autocomplete": "off"}


def _carrier_choices(options: Options) -> list[tuple[str, str]]:
    return [(carrier, carrier.capitalize()) for carrier in options.carriers]


class GrantForm(forms.Form):
    """A household's grant to a retailer: who, in which carrier, and its limits."""

    retailer = forms.CharField(
        label="Retailer's email or address",
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        error_messages={"required": "Enter the retailer's email or its account's address."},
    )
    carrier = forms.ChoiceField(label="Carrier")
    max_energy = forms.CharField(
        label="Largest order (kWh)", max_length=20, widget=forms.TextInput(attrs=_INPUT)
    )
    max_price = forms.CharField(
        label=f"Highest buy price ({settings.CURRENCY_SYMBOL} per kWh)",
        max_length=20,
        widget=forms.TextInput(attrs=_INPUT),
    )
    min_price = forms.CharField(
        label=f"Lowest sell price ({settings.CURRENCY_SYMBOL} per kWh)",
        max_length=20,
        widget=forms.TextInput(attrs=_INPUT),
    )

    def __init__(self, *args: Any, options: Options, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["carrier"].choices = _carrier_choices(options)

    def _scaled(self, name: str, places: int, example: str) -> int | None:
        try:
            return scaled(self.cleaned_data.get(name, ""), places)
        except (NotANumber, Inexact):
            self.add_error(name, f"{MESSAGES['bad_grant_limit']} Type it like {example}.")
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        limits = {
            "max_energy_wh": self._scaled("max_energy", 3, "2.5 (kWh)"),
            "max_price": self._scaled("max_price", 2, "0.30"),
            "min_price": self._scaled("min_price", 2, "0.10"),
        }
        if limits["max_energy_wh"] == 0:
            self.add_error("max_energy", MESSAGES["bad_grant_limit"])
        elif None not in limits.values():
            cleaned |= limits
        return cleaned


class RetailOrderForm(OrderForm):
    """An order a retailer places for one of its customers, in a carrier."""

    household = forms.ChoiceField(
        label="For",
        error_messages={
            "required": MESSAGES["not_a_customer"],
            "invalid_choice": MESSAGES["not_a_customer"],
        },
    )
    carrier = forms.ChoiceField(label="Carrier")

    field_order = ["household", "carrier", *OrderForm.field_order]

    def __init__(
        self,
        *args: Any,
        options: Options,
        slots: list[Slot],
        customers: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, options=options, slots=slots, **kwargs)
        self.market_options = options
        self.fields["household"].choices = customers
        self.fields["carrier"].choices = _carrier_choices(options)

    def clean(self) -> dict[str, Any]:
        # The bounds are the carrier's: known once the carrier field is.
        carrier = self.cleaned_data.get("carrier", "electricity")
        self.options = self.market_options.carrier(carrier)
        return super().clean()
