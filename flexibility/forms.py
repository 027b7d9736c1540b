"""The forms of requirements, answers, acceptances and stores: what people type, turned into the
integers the ledger signs, in the market page's units (``market.forms``).

Energy is typed in kWh or Wh and a price in the currency or cents per kWh, exactly as on the
market page (the same fields and conversion: no float, nothing rounded), within the bounds of
the carrier the requirement is in (a heat segment's requirement takes heat's bounds). A store's
capacity and state of charge are typed in kWh. What only the validators can say (the slot still
open, the baseline, the free balance) comes back as their refusal code, which
:data:`FIELD_OF_CODE` puts beside the field it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms

from flexibility.errors import MESSAGES
from flexibility.models import Direction, Requirement
from flexibility.selectors import Network, StorageMeter
from market.chain.options import Options
from market.forms import FIELD_OF_CODE as MARKET_FIELD_OF_CODE
from market.forms import Inexact, NotANumber, _PricedForm, energy_text, scaled
from market.selectors import Slot

FIELD_OF_CODE = MARKET_FIELD_OF_CODE | {
    "bad_feeder": "network",
    "bad_network": "network",
    "bad_carrier": "network",
    "bad_direction": "direction",
    "exceeds_requirement": "energy",
    "exceeds_baseline": "energy",
    "exceeds_answer": "energy",
    "price_above_requirement": "price",
    "unknown_meter": "meter",
    "not_storage_meter": "meter",
    "not_household": "meter",
    "bad_capacity": "capacity",
    "bad_state_of_charge": "soc",
}
_KWH_PLACES = 3


def major_text(price: int) -> str:
    """Minor units as typed in the currency: 50 -> ``"0.50"`` (a form's initial price)."""
    return f"{price // 100}.{price % 100:02d}"


def network_label(network: Network) -> str:
    kind = "feeder" if network.carrier == "electricity" else f"{network.carrier} segment"
    return f"{network.name} ({kind})"


class RequirementForm(_PricedForm):
    """The grid operator's requirement: a feeder or heat segment, a slot, the flow to reduce,
    how much and the most it pays per kWh."""

    network = forms.ChoiceField(
        label="Feeder or heat segment",
        error_messages={
            "required": MESSAGES["bad_network"],
            "invalid_choice": MESSAGES["bad_network"],
        },
    )
    direction = forms.ChoiceField(
        label="Flow to reduce",
        choices=Direction.choices,
        initial=Direction.IMPORT,
        widget=forms.RadioSelect,
        error_messages={
            "required": MESSAGES["bad_direction"],
            "invalid_choice": MESSAGES["bad_direction"],
        },
    )

    field_order = ["network", "slot", "direction", "energy", "energy_unit", "price", "price_unit"]
    chooses_carrier = False  # the network's

    def __init__(
        self,
        *args: Any,
        options: Options,
        slots: list[Slot],
        networks: list[Network],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, options=options, slots=slots, **kwargs)
        self.carriers = {network.name: network.carrier for network in networks}
        self.fields["network"].choices = [(n.name, network_label(n)) for n in networks]
        self.fields["energy"].label = "Reduction"
        self.fields["price"].label = "Highest price"

    def clean(self) -> dict[str, Any]:
        # The bounds are the network's carrier's: known once the network is.
        self._for_carrier(self.carriers.get(self.cleaned_data.get("network", ""), "electricity"))
        return super().clean()


class AnswerForm(_PricedForm):
    """A household's answer to one requirement: the reduction it offers and its price."""

    chooses_carrier = False  # the requirement's

    def __init__(self, *args: Any, options: Options, requirement: Requirement, **kwargs: Any):
        kwargs.setdefault(
            "initial",
            {"energy": str(requirement.remaining_wh), "energy_unit": "Wh"}
            | {"price": major_text(requirement.price)},
        )
        super().__init__(
            *args,
            options=options,
            carrier=requirement.carrier,
            slots=[],
            prefix=f"answer-{requirement.id}",
            **kwargs,
        )
        del self.fields["slot"]
        self.fields["energy"].label = "Reduction you offer"
        self.fields["price"].label = "Your price"
        # A block refreshes the list while someone types: htmx keeps these elements as they are.
        for field in self.fields.values():
            field.widget.attrs["hx-preserve"] = "true"


class StoreForm(forms.Form):
    """The grid operator registers a household's store: its battery or thermal store meter (the
    household is the meter's), its capacity and its state of charge now, in kWh."""

    meter = forms.ChoiceField(
        label="Household and storage meter",
        error_messages={
            "required": MESSAGES["unknown_meter"],
            "invalid_choice": MESSAGES["unknown_meter"],
        },
    )
    capacity = forms.CharField(
        label="Capacity (kWh)",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    soc = forms.CharField(
        label="State of charge now (kWh)",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, meters: list[StorageMeter], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meters = {meter.meter_id: meter for meter in meters}
        self.fields["meter"].choices = [
            (m.meter_id, f"{m.household or m.address[:12]} — {m.meter_id} ({m.kind})")
            for m in meters
        ]

    def _kwh(self, name: str, code: str) -> int | None:
        try:
            return scaled(self.cleaned_data.get(name, ""), _KWH_PLACES)
        except (NotANumber, Inexact):
            self.add_error(name, f"{MESSAGES[code]} Type kWh, e.g. 13.5 (at most 3 decimals).")
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        capacity = self._kwh("capacity", "bad_capacity") if "capacity" in cleaned else None
        soc = self._kwh("soc", "bad_state_of_charge") if "soc" in cleaned else None
        if capacity is not None and soc is not None:
            if capacity <= 0:
                self.add_error("capacity", MESSAGES["bad_capacity"])
            elif soc > capacity:
                self.add_error(
                    "soc", f"The state of charge is at most the capacity, {energy_text(capacity)}."
                )
            cleaned |= {"capacity_wh": capacity, "soc_wh": soc}
        meter = self.meters.get(cleaned.get("meter", ""))
        if meter is not None:
            cleaned["store_meter"] = meter
        return cleaned
