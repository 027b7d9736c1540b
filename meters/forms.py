from __future__ import annotations

from django import forms

from meters.models import DEFAULT_INTERVAL_S, INTERVALS, MeterKind

# The field a service's refusal code belongs to (the others are shown above the form).
FIELD_OF_CODE = {
    "bad_meter_id": "meter_id",
    "meter_id_taken": "meter_id",
    "bad_kind": "kind",
    "bad_public_key": "public_key",
    "public_key_taken": "public_key",
    "bad_feeder": "feeder",
    "bad_interval": "interval_s",
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
    feeder = forms.CharField(
        max_length=64,
        label="Feeder",
        help_text="The feeder your connection is on, as the grid operator names it.",
    )
    interval_s = forms.TypedChoiceField(
        choices=[(s, f"{s // 60} min") for s in INTERVALS],
        coerce=int,
        initial=DEFAULT_INTERVAL_S,
        label="Reading interval",
    )

    def clean_meter_id(self) -> str:
        meter_id: str = self.cleaned_data["meter_id"].strip()
        return meter_id

    def clean_public_key(self) -> str:
        # Vendors print keys in either case; the platform writes them in lowercase.
        public_key: str = self.cleaned_data["public_key"].strip().lower()
        return public_key
