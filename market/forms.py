"""The market's forms: what people type, turned into the integers the ledger signs.

Energy is typed in kWh or Wh and becomes integer Wh; a price is typed in cents or currency per kWh
and becomes integer minor units per kWh. The conversion is exact: the decimal text is split into its
digits (no float, and no ``Decimal`` context whose precision could round a long fraction), and
anything finer than a Wh or a cent is refused rather than rounded. The bounds are the market's
options (genesis), so a number the validators would refuse is refused here first, with the limits in
words: the chosen carrier's (``Options.carrier``), in its unit (``market.chain.options.UNITS``: "kWh
thermal" for heat). An order or an offer has a carrier field only when the market trades more than
one; otherwise it is electricity. Everything else (the slot still open, the free balance, ...) is
the contract's to say, through the services' refusal codes (:data:`FIELD_OF_CODE` puts them next to
the field they are about).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.forms.utils import flatatt
from django.utils import dateformat, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from gridplatform.money import text_from_minor
from ledger.identity import IdentityError, validate_address
from ledger.projection import datetime_of_ms, ms_of_datetime
from market.chain.options import ELECTRICITY, UNITS, Options
from market.errors import MESSAGES
from market.models import Carrier, Side
from market.selectors import Slot

KWH, WH = "kWh", "Wh"
CENTS, MAJOR = "cents", "major"
# Decimals that still give a whole Wh (1 kWh = 1000 Wh) or a whole cent (1 major = 100 minor).
_PLACES = {KWH: 3, WH: 0, CENTS: 0, MAJOR: 2}
_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_MAX_LENGTH = 40  # far beyond any bound; keeps int() of typed text small

# The services' refusal codes that are about one field, to show the message next to it.
FIELD_OF_CODE = {
    "bad_slot": "slot",
    "slot_misaligned": "slot",
    "slot_past": "slot",
    "slot_closed": "slot",
    "beyond_horizon": "slot",
    "bad_side": "side",
    "opposite_side_open": "side",
    "bad_energy": "energy",
    "energy_out_of_bounds": "energy",
    "exceeds_offer": "energy",
    "bad_price": "price",
    "price_out_of_bounds": "price",
    "bad_carrier": "carrier",
    "bad_address": "buyer",
    "unknown_account": "buyer",
    "own_offer": "buyer",
}


class NotANumber(ValueError):
    """Not a plain decimal number (digits and at most one point)."""


class Inexact(ValueError):
    """A number with more decimals than the unit allows: it would have to be rounded."""


def scaled(text: str, places: int) -> int:
    """``"1.5"``, 3 -> 1500: a non-negative decimal text times ``10**places``, exactly.

    Raises NotANumber or Inexact (``"1.0005"``, 3): never rounds. Trailing zeros are fine.
    """
    text = text.strip()
    match = _NUMBER.fullmatch(text)
    if match is None or len(text) > _MAX_LENGTH or not any(c.isdigit() for c in text):
        raise NotANumber(text)
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    if len(fraction) > places:
        raise Inexact(text)
    scale: int = 10**places
    return int(whole or "0") * scale + int(fraction.ljust(places, "0") or "0")


def _thousandths(value: int, unit: str) -> str:
    whole, rest = divmod(value, 1000)
    fraction = f"{rest:03d}".rstrip("0")
    return f"{whole:,}{'.' + fraction if fraction else ''} {unit}"


def energy_text(energy_wh: int, carrier: str = ELECTRICITY) -> str:
    """1500 -> ``"1.5 kWh"``, 2000 -> ``"2 kWh"``, 1 -> ``"0.001 kWh"`` (exact); in the
    carrier's unit (``UNITS``): 1500 of heat -> ``"1.5 kWh thermal"``."""
    return _thousandths(energy_wh, UNITS.get(carrier, KWH))


def power_text(power_w: int, carrier: str = ELECTRICITY) -> str:
    """60000 -> ``"60 kW"``, 7500 -> ``"7.5 kW"`` (exact): a feeder's limit; a heat segment's
    in the power of heat's unit, ``"60 kW thermal"``."""
    return _thousandths(power_w, "kW" + UNITS.get(carrier, KWH).removeprefix(KWH))


def price_text(price: int, carrier: str = ELECTRICITY) -> str:
    """25 (minor units per kWh) -> ``"€0.25/kWh"``; of heat, ``"€0.25/kWh thermal"``."""
    return f"{text_from_minor(price)}/{UNITS.get(carrier, KWH)}"


def slot_label(start: datetime) -> str:
    """A slot's start as people read it, in the site's time zone."""
    text: str = dateformat.format(timezone.localtime(start), "D j M, H:i T")
    return text


def carrier_choices(options: Options) -> list[tuple[str, str]]:
    """The carriers the market trades, each with its unit: ``("heat", "Heat (kWh thermal)")``."""
    return [
        (carrier, f"{Carrier(carrier).label} ({UNITS[carrier]})") for carrier in options.carriers
    ]


def slot_choices(slots: list[Slot]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The open slots, soonest first, grouped by the hour they start in (``<optgroup>``s): a
    day of five-minute slots is 24 groups to scan, not 288 options."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for slot in slots:
        hour = dateformat.format(timezone.localtime(slot.start), "D j M, H:00 T")
        groups.setdefault(hour, []).append(
            (str(ms_of_datetime(slot.start)), slot_label(slot.start))
        )
    return [(f"From {hour}", options) for hour, options in groups.items()]


# A slot's start as the slot picker names it: its hour ("2026-12-07T14", local time, grouped by
# day) and its minute ("05").
SLOT_PARTS = (("hour", "Day and hour"), ("minute", "Minute"))


def _parts_of(start: datetime) -> tuple[str, str]:
    local = timezone.localtime(start)
    return f"{local.date().isoformat()}T{local:%H}", f"{local:%M}"


def _relative_day(start: datetime) -> str:
    """ "today", "tomorrow" or "" for ``start``'s day, in the user's time zone."""
    day, today = timezone.localtime(start).date(), timezone.localtime().date()
    return {today: "today", today + timedelta(days=1): "tomorrow"}.get(day, "")


def day_text(start: datetime) -> str:
    """A slot's day as people read it: "Today, Mon 7 Dec", "Tomorrow, Tue 8 Dec", "Wed 9 Dec"."""
    label: str = dateformat.format(timezone.localtime(start), "D j M")
    relative = _relative_day(start)
    return f"{relative.capitalize()}, {label}" if relative else label


def _hour_text(start: datetime) -> str:
    """An hour as the picker offers it, its day said too (a closed select shows no group):
    "07:00 today", "00:00 tomorrow", "09:00 Wed 9 Dec"."""
    local = timezone.localtime(start)
    day = _relative_day(start) or dateformat.format(local, "D j M")
    return f"{local:%H}:00 {day}"


class SlotPicker(forms.Widget):
    """A delivery slot chosen by its day and hour, then its minute: two short selects (the open
    hours, grouped by day, and an hour's five-minute starts) instead of one of 288 options, in
    the user's time zone. Two, not three: the keyboard path to "Place the order" stays short.

    Its value is the slot's start in ms, as the field's choices (the open slots) name it: the
    hour and minute of an open slot give its start; a combination that is no open slot gives
    the start it names, which the field refuses as not open. A form that sends the start itself
    (``<name>=<ms>``) is read as before. In the night a clock goes back, an hour's wall-clock
    times name its first occurrence.
    """

    def __init__(self, slots: list[Slot], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.starts: dict[tuple[str, str], int] = {}
        days: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        minutes: set[str] = set()
        for slot in slots:
            hour, minute = parts = _parts_of(slot.start)
            self.starts.setdefault(parts, ms_of_datetime(slot.start))
            hours = days.setdefault(hour[:10], (day_text(slot.start), []))[1]
            if not hours or hours[-1][0] != hour:
                hours.append((hour, _hour_text(slot.start)))
            minutes.add(minute)
        self.hours = list(days.values())
        self.minutes = sorted(minutes)
        # For static/js/slots.js, which greys out what is not open: local "YYYY-MM-DDTHH:MM".
        self.bounds = ("", "")
        if slots:
            first, last = (":".join(_parts_of(slot.start)) for slot in (slots[0], slots[-1]))
            self.bounds = (first, last)

    def id_for_label(self, id_: str) -> str:
        return f"{id_}_hour" if id_ else id_

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> str | None:
        if name in data:  # the start itself
            start: str | None = data.get(name)
            return start
        hour, minute = (data.get(f"{name}_{part}") or "" for part, _ in SLOT_PARTS)
        if not (hour or minute):
            return None
        found = self.starts.get((hour, minute))
        if found is not None:
            return str(found)
        try:  # the start it names: shown back as chosen, refused as not open
            named = datetime.fromisoformat(f"{hour}:{minute}")
            return str(ms_of_datetime(timezone.make_aware(named)))
        except (ValueError, OverflowError):
            return "?"

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return name not in data and not any(f"{name}_{part}" in data for part, _ in SLOT_PARTS)

    def chosen(self, value: Any) -> tuple[str, str]:
        """The hour and minute of ``value`` (a start in ms); empty for anything else."""
        text = str(value) if value is not None else ""
        if not text.isascii() or not text.isdigit() or len(text) > 16:
            return "", ""
        try:
            return _parts_of(datetime_of_ms(int(text)))
        except (OverflowError, ValueError):
            return "", ""

    @staticmethod
    def _options(options: list[tuple[str, str]], selected: str) -> SafeString:
        return format_html_join(
            "",
            "<option{}>{}</option>",
            (
                (flatatt({"value": value, "selected": value == selected}), text)
                for value, text in options
            ),
        )

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        built = self.build_attrs(self.attrs, attrs)
        base_id = built.pop("id", None) or f"id_{name}"
        hour, minute = self.chosen(value)
        hours = format_html_join(
            "",
            '<optgroup label="{}">{}</optgroup>',
            ((day, self._options(options, hour)) for day, options in self.hours),
        )
        minutes = self._options([(m, m) for m in self.minutes], minute)
        selects = format_html_join(
            "",
            '<div class="field"><label for="{}">{}</label>'
            '<select name="{}" id="{}" data-slot-part="{}"{}>{}</select></div>',
            (
                (
                    f"{base_id}_{part}",
                    label,
                    f"{name}_{part}",
                    f"{base_id}_{part}",
                    part,
                    flatatt(built),
                    options,
                )
                for (part, label), options in zip(SLOT_PARTS, (hours, minutes), strict=True)
            ),
        )
        first, last = self.bounds
        return format_html(
            '<div class="slot-picker" data-slot-picker data-first="{}" data-last="{}">{}</div>',
            first,
            last,
            selects,
        )


class _MarketForm(forms.Form):
    """Energy (and, in subclasses, a price and a slot) with the market's bounds."""

    energy = forms.CharField(
        label="Energy",
        max_length=_MAX_LENGTH,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": "Enter the energy."},
    )
    energy_unit = forms.ChoiceField(
        label="Energy unit", choices=[(KWH, "kWh"), (WH, "Wh")], initial=KWH
    )

    def __init__(
        self, *args: Any, options: Options, carrier: str = ELECTRICITY, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.market = options
        self._for_carrier(carrier)

    def _for_carrier(self, carrier: str) -> None:
        """Check amounts against ``carrier``'s bounds, and word them in its unit."""
        self.carrier = carrier
        self.options = self.market.carrier(carrier)

    def _energy_wh(self, cleaned: dict[str, Any]) -> None:
        text, unit = cleaned.get("energy"), cleaned.get("energy_unit")
        if text is None or unit is None:
            return
        try:
            energy_wh = scaled(text, _PLACES[unit])
        except NotANumber:
            self.add_error("energy", "Enter the energy as a number, such as 1.5 (kWh) or 800 (Wh).")
            return
        except Inexact:
            message = (
                "Energy is traded in whole Wh: at most three decimals in kWh."
                if unit == KWH
                else "Energy in Wh must be a whole number."
            )
            self.add_error("energy", message)
            return
        low, high = self.options.energy_min_wh, self.options.energy_max_wh
        if not low <= energy_wh <= high:
            self.add_error(
                "energy",
                f"The energy must be from {energy_text(low, self.carrier)} to "
                f"{energy_text(high, self.carrier)}.",
            )
            return
        step = self.options.energy_step_wh
        if energy_wh % step:
            self.add_error(
                "energy",
                f"This energy is traded in whole steps of {energy_text(step, self.carrier)}.",
            )
            return
        cleaned["energy_wh"] = energy_wh

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._energy_wh(cleaned)
        return cleaned


class _PricedForm(_MarketForm):
    """A slot, energy and a price: an order or an offer."""

    slot = forms.TypedChoiceField(
        label="Delivery slot",
        coerce=int,
        error_messages={
            "required": "Choose a delivery slot.",
            "invalid_choice": "That slot is not open for trading now; choose one from the list.",
        },
    )
    price = forms.CharField(
        label="Price",
        max_length=_MAX_LENGTH,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": "Enter the price per kWh."},
    )
    # The pages show prices per kWh in the currency (€0.25/kWh): a price is typed the same way
    # unless the household picks cents.
    price_unit = forms.ChoiceField(label="Price unit", initial=MAJOR)

    field_order = [
        "carrier",
        "slot",
        "side",
        "energy",
        "energy_unit",
        "price",
        "price_unit",
        "buyer",
    ]

    # Whether the user chooses the carrier (a field, when the market trades more than one); a
    # form whose carrier is given (``carrier=``: an answer to a heat requirement) has none.
    chooses_carrier = True

    def __init__(
        self,
        *args: Any,
        options: Options,
        slots: list[Slot],
        pick_by_hour: bool = False,
        **kwargs: Any,
    ) -> None:
        """``pick_by_hour``: the slot is chosen by its day, hour and minute (``SlotPicker``),
        not from one list of every open slot."""
        super().__init__(*args, options=options, **kwargs)
        if self.chooses_carrier and len(options.carriers) > 1:
            self.fields["carrier"] = forms.ChoiceField(
                label="Energy carrier",
                choices=carrier_choices(options),
                initial=ELECTRICITY,
                widget=forms.RadioSelect,
                error_messages={
                    "required": MESSAGES["bad_carrier"],
                    "invalid_choice": MESSAGES["bad_carrier"],
                },
            )
            self.order_fields(self.field_order)
        if pick_by_hour:
            self.fields["slot"].widget = SlotPicker(slots)
            if slots:
                first, last = slot_label(slots[0].start), slot_label(slots[-1].start)
                self.fields["slot"].help_text = f"Open from {first} to {last}."
        self.fields["slot"].choices = slot_choices(slots)
        self.fields["price_unit"].choices = [
            (MAJOR, f"{settings.CURRENCY_SYMBOL} per kWh"),
            (CENTS, "cents per kWh"),
        ]

    def _price(self, cleaned: dict[str, Any]) -> None:
        text, unit = cleaned.get("price"), cleaned.get("price_unit")
        if text is None or unit is None:
            return
        try:
            price = scaled(text, _PLACES[unit])
        except NotANumber:
            example = "25 (cents)" if unit == CENTS else f"0.25 ({settings.CURRENCY_SYMBOL})"
            self.add_error("price", f"Enter the price per kWh as a number, such as {example}.")
            return
        except Inexact:
            message = (
                "Prices are whole cents per kWh: no decimals in cents."
                if unit == CENTS
                else "Prices are whole cents per kWh: at most two decimals."
            )
            self.add_error("price", message)
            return
        low, high = self.options.price_min, self.options.price_max
        if not low <= price <= high:
            self.add_error(
                "price",
                f"The price must be from {price_text(low, self.carrier)} to "
                f"{price_text(high, self.carrier)}.",
            )
            return
        cleaned["price_minor"] = price

    def clean(self) -> dict[str, Any]:
        # The carrier field is cleaned before clean(): the amounts are checked against its own
        # bounds. A refused carrier (bad_carrier) is none: nothing is checked against it.
        if "carrier" not in self.fields:
            self.cleaned_data["carrier"] = self.carrier  # given, or electricity
        elif "carrier" not in self.cleaned_data:
            refused: dict[str, Any] = self.cleaned_data
            return refused
        else:
            self._for_carrier(self.cleaned_data["carrier"])
        cleaned = super().clean()
        self._price(cleaned)
        if isinstance(cleaned.get("slot"), int):
            if cleaned["slot"] % self.options.slot_ms:  # heat's slots may be longer (hourly)
                self.add_error("slot", MESSAGES["slot_misaligned"])  # drops cleaned["slot"]
            else:
                cleaned["slot_start"] = datetime_of_ms(cleaned["slot"])
        return cleaned


class OrderForm(_PricedForm):
    """A limit order: buy or sell energy in a slot at a price per kWh or better."""

    side = forms.ChoiceField(
        label="Buy or sell",
        choices=Side.choices,
        widget=forms.RadioSelect,
        error_messages={"required": MESSAGES["bad_side"], "invalid_choice": MESSAGES["bad_side"]},
    )


class OfferForm(_PricedForm):
    """A bilateral offer to sell, to one named buyer or to anyone."""

    buyer = forms.CharField(
        label="Buyer's address",
        required=False,
        max_length=60,
        help_text="Leave empty to offer to anyone.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_buyer(self) -> str:
        buyer: str = self.cleaned_data["buyer"].strip().lower()
        if buyer:
            try:
                validate_address(buyer)
            except IdentityError:
                raise forms.ValidationError(MESSAGES["bad_address"]) from None
        return buyer


class AcceptForm(_MarketForm):
    """How much of an offer to take: all of what it has left, or part of it."""

    def __init__(self, *args: Any, remaining_wh: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remaining_wh = remaining_wh

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("energy_wh", 0) > self.remaining_wh:
            left = energy_text(self.remaining_wh, self.carrier)
            self.add_error("energy", f"The offer has {left} left.")
            del cleaned["energy_wh"]
        return cleaned
