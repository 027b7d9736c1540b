from __future__ import annotations

from django import forms

from gridplatform.accounts.models import User
from meters import selectors
from meters.models import MeterKind

# The field a service's refusal code belongs to (the others are shown above the form).
FIELD_OF_CODE = {
    "bad_meter_id": "meter_id",
    "meter_id_taken": "meter_id",
    "bad_kind": "kind",
    "bad_public_key": "public_key",
    "public_key_taken": "public_key",
    "bad_feeder": "feeder",
    "feeder_not_assigned": "feeder",
    "bad_interval": "interval_s",
    "interval_not_in_slot": "interval_s",
}


class MeterForm(forms.Form):
    meter_id = forms.CharField(
        max_length=64,
        label="Meter id",
        help_text="Lowercase letters, digits, “_” and “-”, e.g. “roof-pv-1”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    kind = forms.ChoiceField(choices=MeterKind.choices, label="Kind")
    public_key = forms.CharField(
        max_length=64,
        label="Device public key",
        help_text="The meter's Ed25519 public key: 64 hex characters, from its vendor's app.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    feeder = forms.CharField(max_length=64, label="Feeder", required=False)
    interval_s = forms.TypedChoiceField(choices=(), coerce=int, label="Reading interval")

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        """The form for ``user``'s meters: its own feeder, the intervals this network allows."""
        super().__init__(*args, **kwargs)
        feeder = self.fields["feeder"]
        own = selectors.household_feeder(user=user)
        if own:
            # The grid operator assigned it on approval: the household never types it.
            feeder.initial = own
            feeder.disabled = True
            feeder.help_text = "Your connection's feeder, as the grid operator assigned it."
        else:
            feeder.help_text = (
                "Not assigned yet: the grid operator assigns your feeder when it approves your "
                "household. Leave it empty until then."
            )
        interval = self.fields["interval_s"]
        assert isinstance(interval, forms.TypedChoiceField)
        slot_minutes = selectors.network_slot_ms() // 60_000
        interval.choices = [(s, f"{s // 60} min") for s in selectors.intervals_allowed()]
        interval.initial = selectors.default_interval_s()
        interval.help_text = (
            f"How often the meter reports; it must divide this network's {slot_minutes}-minute "
            "delivery slot."
        )

    def clean_feeder(self) -> str | None:
        feeder: str = (self.cleaned_data.get("feeder") or "").strip()
        return feeder or None

    def clean_meter_id(self) -> str:
        meter_id: str = self.cleaned_data["meter_id"].strip()
        return meter_id

    def clean_public_key(self) -> str:
        # Vendors print keys in either case; the platform writes them in lowercase.
        public_key: str = self.cleaned_data["public_key"].strip().lower()
        return public_key
