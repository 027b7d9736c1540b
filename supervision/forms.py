"""Supervision's forms: what a regulator or the grid operator types, checked before signing.

Every act says why (:class:`ReasonField`, 1-500 characters, as ``supervision.chain.grid.reason_of``
requires), energy is typed in kWh or Wh and becomes integer Wh exactly (``market.forms.scaled``:
never rounded, never a float), and a feeder's limits are typed in kW and become integer W the
same way. What the ledger alone can say (the contract
is vetoed already, the feeder is not suspended, ...) comes back from the services as a refusal
code; :data:`FIELD_OF_CODE` puts its message next to the field it is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone

from ledger.identity import IdentityError, validate_address
from market.chain.options import ELECTRICITY, HEAT
from market.forms import KWH, WH, Inexact, NotANumber, energy_text, power_text, scaled
from supervision.chain.grid import MAX_REASON
from supervision.errors import MESSAGES
from supervision.selectors import network_part

# The services' refusal codes that are about one field (the rest go above the form).
FIELD_OF_CODE = {
    "reason_required": "reason",
    "unknown_contract": "contract",
    "bad_energy": "energy",
    "not_a_curtailment": "energy",
    "bad_scope": "scope",
    "unknown_feeder": "scope",
    "bad_until": "until",
    "bad_address": "address",
    "unknown_account": "address",
    "not_household": "address",
    "bad_feeder": "feeder",
    "carrier_mismatch": "feeder",
    "bad_carrier": "carrier",
    "bad_limit": "export_limit_kw",
    "bad_state": "state",
}
_FEEDER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # as the ledger names it
_MAX_LIMIT_W = 10**12  # a terawatt: far beyond any feeder, keeps the integers small
_PLACES = {KWH: 3, WH: 0}
# A contract's id: its slot (ms) and number, after its carrier for another than electricity.
CONTRACT_ID = re.compile(r"(?:[a-z]{1,16}-)?[0-9]{1,16}-[0-9]{1,9}")


class ReasonField(forms.CharField):
    """Why: every supervisory act records its reason, and the households it touches read it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Reason")
        kwargs.setdefault(
            "help_text", "Required. The households this act touches will read it (at most 500)."
        )
        super().__init__(
            max_length=MAX_REASON,
            widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
            error_messages={
                "required": "Give a reason: every supervisory act records why.",
                "max_length": f"The reason is at most {MAX_REASON} characters.",
            },
            **kwargs,
        )


def _energy_fields(required: bool) -> tuple[forms.CharField, forms.ChoiceField]:
    energy = forms.CharField(
        label="Energy it is cut to",
        required=required,
        max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 8}),
        error_messages={"required": "Enter the energy the contract is cut to."},
    )
    unit = forms.ChoiceField(
        label="Energy unit", choices=[(KWH, "kWh"), (WH, "Wh")], initial=KWH, required=False
    )
    return energy, unit


def energy_wh_of(
    form: forms.Form, *, below: int | None = None, carrier: str = ELECTRICITY
) -> int | None:
    """The ``energy`` field in integer Wh (with its unit), or None with the error added
    (``carrier``: whose unit the words say)."""
    text, unit = form.cleaned_data.get("energy"), form.cleaned_data.get("energy_unit") or KWH
    if not text or unit not in _PLACES:
        form.add_error("energy", "Enter the energy the contract is cut to.")
        return None
    try:
        energy_wh = scaled(text, _PLACES[unit])
    except NotANumber:
        form.add_error("energy", "Enter the energy as a number, such as 1.5 (kWh) or 800 (Wh).")
        return None
    except Inexact:
        form.add_error("energy", "Energy is in whole Wh: at most three decimals in kWh.")
        return None
    if energy_wh < 1:
        form.add_error("energy", "A curtailment leaves at least 1 Wh; to cancel it all, veto.")
        return None
    if below is not None and energy_wh >= below:
        form.add_error(
            "energy",
            f"A curtailment cuts the contract below its {energy_text(below, carrier)}; "
            f"enter at most {energy_text(below - 1, carrier)}.",
        )
        return None
    return energy_wh


def _choice_field(label: str, choices: list[tuple[str, str]], message: str) -> forms.ChoiceField:
    """Radio buttons; ``message`` when none or an unknown one is chosen."""
    return forms.ChoiceField(
        label=label,
        choices=choices,
        widget=forms.RadioSelect,
        error_messages={"required": message, "invalid_choice": message},
    )


def _name_field(label: str, max_length: int, required: str, **kwargs: Any) -> forms.CharField:
    """A name or id typed exactly (no autocompletion, no spelling check)."""
    attrs = {"autocomplete": "off", "spellcheck": "false"} | kwargs.pop("attrs", {})
    return forms.CharField(
        label=label,
        max_length=max_length,
        widget=forms.TextInput(attrs=attrs),
        error_messages={"required": required},
        **kwargs,
    )


class LimitField(forms.Field):
    """A feeder's limit one way, typed in kW with up to three decimals, cleaned to integer W
    exactly (``"7.5"`` -> 7500): the ledger keeps limits in W and nothing is rounded."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        super().__init__(
            label=f"{direction.capitalize()} limit (kW)",
            widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
            error_messages={"required": f"Enter the {direction} limit in kW."},
        )

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        try:
            watts = scaled(str(value), 3)
        except NotANumber:
            raise forms.ValidationError(
                "Enter the limit in kW as a number of 0 or more, such as 50 or 7.5."
            ) from None
        except Inexact:
            raise forms.ValidationError(
                "A limit has at most three decimals in kW (whole W), such as 7.125."
            ) from None
        if watts > _MAX_LIMIT_W:
            raise forms.ValidationError(
                f"That limit is beyond any feeder (at most {power_text(_MAX_LIMIT_W)})."
            )
        return watts


def _scope_field(required: str, invalid_choice: str) -> forms.ChoiceField:
    """Where an act applies; its choices are set per form (:class:`_ScopedForm`)."""
    return forms.ChoiceField(
        label="Where", error_messages={"required": required, "invalid_choice": invalid_choice}
    )


class _CurtailingForm(forms.Form):
    """A form whose ``CHOICE`` field may say ``curtail``: then its energy is required, below
    ``below`` Wh if set, and cleaned into ``energy_wh``."""

    CHOICE = "act"
    below: int | None = None
    carrier: str = ELECTRICITY  # the contract's: its unit in the words

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get(self.CHOICE) == "curtail":
            energy_wh = energy_wh_of(self, below=self.below, carrier=self.carrier)
            if energy_wh is not None:
                cleaned["energy_wh"] = energy_wh
        return cleaned


class ReviewDecisionForm(_CurtailingForm):
    """A regulator's decision on a contract in the review queue: clear, veto or curtail it."""

    DECISIONS = [("clear", "Clear"), ("veto", "Veto"), ("curtail", "Curtail")]
    CHOICE = "decision"

    decision = _choice_field("Decision", DECISIONS, "Choose clear, veto or curtail.")
    reason = ReasonField()
    energy, energy_unit = _energy_fields(required=False)

    def __init__(
        self, *args: Any, contract_energy_wh: int, carrier: str = ELECTRICITY, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.below = self.contract_energy_wh = contract_energy_wh
        self.carrier = carrier
        self.fields["energy"].help_text = "Only to curtail: less than the contract's energy."


class ContractDecisionForm(ReviewDecisionForm):
    """A regulator's act on a contract from a row of a list (the console's contracts, a
    household's page): veto or curtail it, as from the review queue but without "clear"."""

    DECISIONS = [("veto", "Veto"), ("curtail", "Curtail")]

    decision = _choice_field("Decision", DECISIONS, "Choose veto or curtail.")


class ContractActForm(_CurtailingForm):
    """Veto or curtail a contract named by its id."""

    act = _choice_field(
        "Act",
        [("veto", "Veto (cancel it)"), ("curtail", "Curtail (cut its energy)")],
        "Choose veto or curtail.",
    )
    contract = _name_field(
        "Contract id",
        40,
        "Enter the contract's id, such as 1767225600000-0.",
        attrs={"list": "contract-picker"},  # pick one by slot, parties and size (the console)
    )
    energy, energy_unit = _energy_fields(required=False)
    reason = ReasonField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["energy"].help_text = "Only to curtail."

    def clean_contract(self) -> str:
        contract: str = self.cleaned_data["contract"].strip()
        if not CONTRACT_ID.fullmatch(contract):
            raise forms.ValidationError(
                "A contract id is its slot and number, such as 1767225600000-0."
            )
        return contract


def _scope_choices(
    feeders: Iterable[str | tuple[str, str]], *, whole: str, label: str
) -> list[tuple[str, str]]:
    """``feeders``: names, or (name, carrier) pairs, whose heat segments say so."""
    choices = [(whole, label)]
    for feeder in feeders:
        name, carrier = (feeder, ELECTRICITY) if isinstance(feeder, str) else feeder
        choices.append((f"feeder:{name}", f"{network_part(carrier)} {name}"))
    return choices


class _ScopedForm(forms.Form):
    """A form whose ``scope`` is ``WHOLE`` (value, label) or one of ``feeders``."""

    WHOLE = ("market", "The whole market")

    def __init__(self, *args: Any, feeders: Iterable[str | tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        whole, label = self.WHOLE
        self.fields["scope"].choices = _scope_choices(feeders, whole=whole, label=label)


class _MarketScopedForm(_ScopedForm):
    scope = _scope_field(
        "Choose the market or a feeder.",
        "Choose the market or a feeder the grid operator published.",
    )


class SuspendForm(_MarketScopedForm):
    """Suspend trading in the whole market or on one feeder, until resumed or until a time."""

    until = forms.DateTimeField(
        label="Until (optional)",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty to suspend until a regulator resumes trading.",
        error_messages={"invalid": "Enter a date and time, such as 2026-01-31 14:30."},
    )
    reason = ReasonField()

    def clean_until(self) -> datetime | None:
        until: datetime | None = self.cleaned_data["until"]
        if until is not None and until <= timezone.now():
            raise forms.ValidationError("The end of a suspension is a time in the future.")
        return until


class ResumeForm(_MarketScopedForm):
    """End a suspension."""

    reason = ReasonField()


class AccountActForm(forms.Form):
    """Restrict or reinstate a household's account, or reset its unsettled defaults."""

    ACTS = [
        ("restrict", "Restrict (it may not trade; its open orders and offers are cancelled)"),
        ("reinstate", "Reinstate (it may trade again)"),
        ("defaults_reset", "Reset its unsettled defaults"),
    ]

    act = _choice_field("Act", ACTS, "Choose restrict, reinstate or reset defaults.")
    address = _name_field(
        "Account address",
        60,
        "Enter the account's address.",
        attrs={"size": 52, "list": "account-picker"},  # pick one by name (the console)
    )
    reason = ReasonField()

    def clean_address(self) -> str:
        address: str = self.cleaned_data["address"].strip().lower()
        try:
            validate_address(address)
        except IdentityError:
            raise forms.ValidationError(MESSAGES["bad_address"]) from None
        return address


class FeederPublishForm(forms.Form):
    """The grid operator publishes a feeder or changes its limits (typed in kW; cleaned, as the
    ledger takes them, to ``export_limit_w`` and ``import_limit_w`` in W). Where the market
    trades heat (``carriers``), it picks the network (``carrier``): a feeder of the grid or a
    segment of the heating network (limits in kW thermal); without the field, a feeder."""

    feeder = _name_field(
        "Feeder",
        64,
        "Enter the feeder's name.",
        help_text="1-64 of a-z, 0-9, '.', '_' and '-'.",
    )
    export_limit_kw = LimitField("export")
    import_limit_kw = LimitField("import")

    NETWORKS = {ELECTRICITY: "A feeder of the electricity grid", HEAT: "A heating network segment"}

    def __init__(self, *args: Any, carriers: Iterable[str] = (ELECTRICITY,), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if len(tuple(carriers)) > 1:
            self.fields["carrier"] = forms.ChoiceField(
                label="Network",
                choices=[(c, self.NETWORKS.get(c, c)) for c in carriers],
                initial=ELECTRICITY,
                widget=forms.RadioSelect,
                error_messages={
                    "required": MESSAGES["bad_carrier"],
                    "invalid_choice": MESSAGES["bad_carrier"],
                },
            )
            self.order_fields(["carrier", "feeder"])

    def clean_feeder(self) -> str:
        feeder: str = self.cleaned_data["feeder"].strip()
        if not _FEEDER_NAME.fullmatch(feeder):
            raise forms.ValidationError(MESSAGES["bad_feeder"])
        return feeder

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for direction in ("export", "import"):
            if f"{direction}_limit_kw" in data:
                data[f"{direction}_limit_w"] = data.pop(f"{direction}_limit_kw")
        return data


class GridStateForm(_ScopedForm):
    """The grid operator declares the grid, or one feeder, normal, under high load or unstable."""

    STATES = [("normal", "Normal"), ("high_load", "High load"), ("unstable", "Unstable")]
    WHOLE = ("grid", "The whole grid")

    scope = _scope_field(
        "Choose the whole grid or a feeder.", "Choose the whole grid or a published feeder."
    )
    state = _choice_field("State", STATES, "Choose normal, high load or unstable.")
    reason = ReasonField(
        help_text="Required. While not normal, trading in its scope is refused with this reason."
    )
