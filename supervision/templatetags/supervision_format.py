"""``{% load supervision_format %}``: supervision's records as people read them.

``{{ act|act_what }}`` (an audit-log row as a sentence), ``{{ stop|stop_text }}`` (why an order
would be refused now, for the order form), ``{{ bps|percent }}`` (4512 -> ``"45.12 %"``),
``{{ scope|scope_text }}``, ``{{ moment|when }}``, ``{{ role|role_text }}``,
``{{ wh|scaled:3 }}`` (1500 -> ``"1.5"``, a plain number for a chart to read), and
``{% unread_notifications user as count %}`` (for the nav).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils import dateformat, timezone

from gridplatform.accounts.models import Role
from gridplatform.money import text_from_minor
from ledger.models import TransactionRecord
from ledger.projection import datetime_of_ms
from market.chain.options import ELECTRICITY, HEAT
from market.forms import energy_text, power_text, price_text
from market.models import contract_carrier
from meters.models import Meter
from supervision import selectors

register = template.Library()

GRID_STATE_WORDS = {"normal": "normal", "high_load": "under high load", "unstable": "unstable"}


def when(moment: datetime) -> str:
    """A time in the site's zone: ``"14:30"`` today, ``"Sat 31 Jan, 14:30"`` another day."""
    local = timezone.localtime(moment)
    same_day = local.date() == timezone.localdate()
    text: str = dateformat.format(local, "H:i" if same_day else "D j M, H:i")
    return text


def scope_text(scope: object) -> str:
    """``market`` -> ``"the whole market"``, ``grid`` -> ``"the whole grid"``,
    ``feeder:f2`` -> ``"feeder f2"``."""
    if not isinstance(scope, str):
        return "—"
    if scope.startswith("feeder:"):
        return f"feeder {scope[len('feeder:') :]}"
    return f"the whole {scope}"


def _until(value: object) -> str:
    if isinstance(value, datetime):
        return f" (until {when(value)})"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return f" (until {when(datetime_of_ms(value))})"
    return ""


def power(value: object, carrier: str = "electricity") -> str:
    """A limit in W as kW, exactly: ``{{ feeder.export_limit_w|power }}``; a heat segment's
    in kW thermal: ``{{ feeder.export_limit_w|power:feeder.carrier }}``."""
    return power_text(value, carrier) if isinstance(value, int) else "—"


def act_what(act: Any) -> str:
    """What a supervisory act (``supervision.models.SupervisoryAct``) did, in a sentence."""
    payload = act.payload if isinstance(act.payload, dict) else {}
    contract, address = act.contract or payload.get("contract", ""), payload.get("address", "")
    scope = payload.get("scope", act.scope)
    match act.type:
        case "supervision.contract.veto":
            return f"Vetoed contract {contract}"
        case "supervision.contract.curtail":
            energy = payload.get("energy_wh")
            unit = contract_carrier(contract)
            cut = f" to {energy_text(energy, unit)}" if isinstance(energy, int) else ""
            return f"Curtailed contract {contract}{cut}"
        case "supervision.review.clear":
            return f"Cleared contract {contract} after review"
        case "supervision.trading.suspend":
            where = "in the whole market" if scope == "market" else f"on {scope_text(scope)}"
            return f"Suspended trading {where}{_until(payload.get('until'))}"
        case "supervision.trading.resume":
            where = "in the whole market" if scope == "market" else f"on {scope_text(scope)}"
            return f"Resumed trading {where}"
        case "supervision.account.restrict":
            return f"Restricted account {address}"
        case "supervision.account.reinstate":
            return f"Reinstated account {address}"
        case "supervision.defaults.reset":
            return f"Reset the unsettled defaults of account {address}"
        case "grid.feeder.publish":
            return (
                f"Published feeder {payload.get('feeder', '')}: export limit "
                f"{power(payload.get('export_limit_w'))}, import limit "
                f"{power(payload.get('import_limit_w'))}"
            )
        case "grid.state.declare":
            state = GRID_STATE_WORDS.get(payload.get("state", ""), payload.get("state", ""))
            return f"Declared {scope_text(scope)} {state}"
        case "account.register":
            return f"Put household {address} on the ledger"
        case "grid.feeder.assign":
            return f"Assigned household {address} to feeder {payload.get('feeder', '')}"
        case "credit.issue":
            amount = payload.get("amount")
            credits = text_from_minor(amount) if isinstance(amount, int) else "credits"
            return f"Topped up household {payload.get('to', '')} with {credits}"
        case "meter.register":
            return (
                f"Registered meter {payload.get('meter', '')} ({payload.get('kind', '')}) of "
                f"household {payload.get('owner', '')} on {payload.get('feeder', '')}"
            )
        case "market.tariff.publish":
            return _tariff_text(payload)
        case "market.requirement.post":
            return _requirement_text(payload)
        case "market.requirement.accept":
            return _acceptance_text(payload)
        case "market.storage.register":
            return _store_text(payload)
    return str(act.type)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _energy(value: object, carrier: str = ELECTRICITY) -> str:
    wh = _int(value)
    return "—" if wh is None else energy_text(wh, carrier)


def _price(value: object, carrier: str = ELECTRICITY) -> str:
    minor = _int(value)
    return "—" if minor is None else price_text(minor, carrier)


def _slot(value: object) -> str:
    ms = _int(value)
    return "—" if ms is None or ms < 0 else when(datetime_of_ms(ms))


def _tariff_text(payload: dict[str, Any]) -> str:
    """``"Published the electricity tariff in force from Mon 7 Dec, 14:00: from 00:00 UTC,
    retail €0.30/kWh, feed-in €0.08/kWh, network fee €0.05/kWh; from 07:00 UTC, ..."``
    (the bands' minutes are UTC, as the ledger keeps them); heat's, ``"Published the heat
    tariff ...: ... retail €0.10/kWh thermal, ..."``."""
    carrier = str(payload.get("carrier") or ELECTRICITY)
    bands = payload.get("bands")
    parts = []
    for band in bands if isinstance(bands, list) else []:
        if not isinstance(band, dict):
            continue
        minute = _int(band.get("from_minute")) or 0
        parts.append(
            f"from {minute // 60:02d}:{minute % 60:02d} UTC, retail "
            f"{_price(band.get('retail'), carrier)}, feed-in {_price(band.get('feed_in'), carrier)}"
            f", network fee {_price(band.get('network_fee'), carrier)}"
        )
    return (
        f"Published the {carrier} tariff in force from {_slot(payload.get('from_slot'))}: "
        + "; ".join(parts)
    )


def _requirement_text(payload: dict[str, Any]) -> str:
    """``"Asked for flexibility: import on feeder north reduced by up to 2 kWh in the slot of
    14:00, paying up to €0.50/kWh"``."""
    carrier = str(payload.get("carrier") or ELECTRICITY)
    network = "feeder" if carrier == ELECTRICITY else f"{carrier} segment"
    return (
        f"Asked for flexibility: {payload.get('direction', '')} on {network} "
        f"{payload.get('feeder', '')} reduced by up to {_energy(payload.get('energy_wh'), carrier)}"
        f" in the slot of {_slot(payload.get('slot'))}, paying up to "
        f"{_price(payload.get('price'), carrier)}"
    )


def _payload_of(tx_id: str) -> tuple[str, dict[str, Any]]:
    """The sender and payload of a committed transaction (("", {}) if the site has none)."""
    record = TransactionRecord.objects.filter(tx_id=tx_id).values_list("sender", "body").first()
    if record is None or not isinstance(record[1], dict):
        return "", {}
    payload = record[1].get("payload")
    return str(record[0]), payload if isinstance(payload, dict) else {}


def _acceptance_text(payload: dict[str, Any]) -> str:
    """``"Accepted 1 kWh of household <address>'s answer at €0.40/kWh: a flexibility
    contract"``; the household, the price and the carrier are read from the answer's
    transaction and its requirement's."""
    answer = str(payload.get("answer", ""))
    household, answered = _payload_of(answer)
    _, requirement = _payload_of(str(answered.get("requirement", "")))
    carrier = str(requirement.get("carrier") or ELECTRICITY)
    whose = f"household {household}'s answer" if household else f"answer {answer}"
    return (
        f"Accepted {_energy(payload.get('energy_wh'), carrier)} of {whose} at "
        f"{_price(answered.get('price'), carrier)}: a flexibility contract"
    )


def _store_text(payload: dict[str, Any]) -> str:
    """``"Registered the store of household <address> (meter ben-battery): 10 kWh capacity,
    4.5 kWh charged"``; in heat's unit for a thermal store."""
    meter = str(payload.get("meter", ""))
    kind = Meter.objects.filter(meter_id=meter).values_list("kind", flat=True).first()
    carrier = HEAT if kind == "thermal_storage" else ELECTRICITY
    return (
        f"Registered the store of household {payload.get('address', '')} (meter {meter}): "
        f"{_energy(payload.get('capacity_wh'), carrier)} capacity, "
        f"{_energy(payload.get('soc_wh'), carrier)} charged"
    )


def stop_text(stop: Any) -> str:
    """Why the household's orders would be refused now (``supervision.selectors.trading_stop``),
    e.g. ``"Trading on feeder f2 is suspended: storm damage (until 14:30)"``."""
    until = _until(stop.until)
    reason = stop.reason
    match stop.code:
        case "market_suspended":
            return f"Trading in the whole market is suspended: {reason}{until}"
        case "feeder_suspended":
            return f"Trading on {scope_text(stop.scope)} is suspended: {reason}{until}"
        case "account_restricted":
            return f"A regulator restricted your account; it may not trade: {reason}{until}"
        case "grid_high_load" | "grid_unstable":
            state = GRID_STATE_WORDS[stop.code.removeprefix("grid_")]
            return f"The grid operator declared {scope_text(stop.scope)} {state}: {reason}{until}"
    return f"Trading is stopped for your account: {reason}{until}"


def role_text(role: object) -> str:
    """``grid_operator`` -> ``"Grid operator"`` (an account's role, as the site names it)."""
    return str(Role(role).label) if role in Role.values else str(role)


def percent(bps: object) -> str:
    """Basis points as a percentage with two decimals, exactly: 4512 -> ``"45.12 %"``."""
    if isinstance(bps, bool) or not isinstance(bps, int):
        return "—"
    whole, rest = divmod(abs(bps), 100)
    return f"{'-' if bps < 0 else ''}{whole}.{rest:02d} %"


def scaled(value: object, places: object) -> str:
    """An integer over ``10**places`` as a plain decimal, exactly: ``1500|scaled:3`` -> ``"1.5"``,
    ``25|scaled:2`` -> ``"0.25"``. For the numbers a chart reads from its table's rows (kWh from
    Wh, major units from minor): no thousands separator, no unit, ``""`` for no value."""
    if isinstance(value, bool) or not isinstance(value, int) or not isinstance(places, int):
        return ""
    whole, rest = divmod(abs(value), 10**places)
    fraction = f"{rest:0{places}d}".rstrip("0") if places else ""
    return f"{'-' if value < 0 else ''}{whole}{'.' + fraction if fraction else ''}"


def unread_notifications(user: Any) -> int:
    """How many of the household's notifications are unread (0 for anyone else)."""
    if not getattr(user, "is_authenticated", False) or user.role != "household":
        return 0
    return selectors.unread_count(user=user)


# Registered by call, not as decorators: Django's are untyped, and this module is type-checked.
register.filter("act_what", act_what)
register.filter("stop_text", stop_text)
register.filter("percent", percent)
register.filter("scaled", scaled)
register.filter("power", power)
register.filter("scope_text", scope_text)
register.filter("when", when)
register.filter("role_text", role_text)
register.simple_tag(unread_notifications)
