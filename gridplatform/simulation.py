"""The demo community alive: its households' meters report plausible flows through the real
meters API, and their standing rules trade on them (``manage.py simulate_community``).

Each demo household gets one bidirectional meter at its connection (1-minute intervals) with a
device key and token kept under ``var/demo-meters/`` (mode 0600), and a standing rule:

* rooftop PV: sell the surplus at no less than 10 cents per kWh;
* battery: sell the surplus (the battery discharges in the evening) at no less than 14 cents;
* plain consumers: buy what they need, up to 1 kWh per slot, at no more than 35 cents.

Every minute, each meter sends the minute that just ended, signed by its device, over HTTP to
``/api/v1/meters/<id>/readings``; the site stores it, relays it to the ledger and lets the rules
place orders, which match, clear, settle and show in the charts and statements like anyone's.
Flows are a deterministic function of the household and the time (no randomness): a clear-sky
PV curve between 06:00 and 20:00 and a household load with a morning and an evening peak.

**Heat.** The households of the demo's heat loop (``gridplatform.demo.DEMO_HEAT``) also get a
heat meter at their heat connection (kind ``heat``; ``thermal_storage`` for the thermal store),
reporting the same way, and trade heat on the market: for the slot after next, a heat prosumer
(solar-thermal roof, heat pump with a buffer tank) sells 90 % of the heat its meter will feed
in, a heat consumer bids for 80 % of what it will draw, and the thermal store sells in the
evening what it charged during the day, within its state of charge; each once per slot. The
grid operator registers the store (10 kWh thermal) once its meter is on the ledger.

**Flexibility.** Mill Lane's feeder is the tight one: its households enrol for flexibility, and
for every slot after next the grid operator asks them to reduce their import on it by up to
400 Wh at up to 3.00 per kWh. Each enrolled household with a baseline answers with half of its
baseline import at 2.50, the operator accepts what the requirement can still take,
and the household keeps its word: in the slot its meter's import stays below its baseline less
what it sold, so the reduction is measured, paid and shows on both pages.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from gridplatform.accounts.models import HouseholdKind, Role, User
from gridplatform.demo import DEMO_DOMAIN, DEMO_HEAT, DEMO_HEAT_TOPOLOGY
from ledger.identity import KeyPair
from ledger.services import TransactionRejected

log = logging.getLogger(__name__)
INTERVAL_S = 60
RULES = {
    HouseholdKind.PROSUMER: ("sell_surplus", 0, 10),
    HouseholdKind.STORAGE: ("sell_surplus", 0, 14),
    HouseholdKind.CONSUMER: ("buy_up_to", 1_000, 35),
}


# Each heat role's meter kind, and its order: side and price in minor units per kWh thermal.
HEAT_KINDS = {"thermal_store": "thermal_storage"}  # the others: "heat"
HEAT_PRICES = {"solar_thermal": 6, "heat_pump": 7, "thermal_store": 8, "heat_consumer": 10}
STORE_CAPACITY_WH, STORE_CHARGE_WH = 10_000, 5_000
# The grid operator's requirement on the tight feeder, each slot, and the households' answers.
FLEX_FEEDER = "feeder-mill-lane"
# Prices of scarcity (a 5-minute slot holds a few tens of Wh a household): up to 3.00 per kWh.
FLEX_REQUIREMENT_WH, FLEX_REQUIREMENT_PRICE = 400, 300
FLEX_ANSWER_PRICE = 250


@dataclass(frozen=True)
class DemoMeter:
    household: User
    meter_id: str
    device: KeyPair
    token: str
    heat_role: str = ""  # a heat meter's household's role in the heat loop; "" electricity


def _directory() -> Path:
    path = Path(settings.VAR_DIR) / "demo-meters"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def demo_meters() -> list[DemoMeter]:
    """Each demo household's meter, and the heat loop's households' heat meters, registered
    (and their keys and tokens saved) the first time."""
    from market import rules

    meters = []
    households = User.objects.filter(role=Role.HOUSEHOLD, email__endswith=f"@{DEMO_DOMAIN}")
    for household in households.order_by("id"):
        found = _meter(household, "home", "bidirectional", _feeder(household))
        if found is None:
            continue
        if not rules.rules_of(user=household):
            kind, energy_wh, price = RULES[HouseholdKind(household.household_kind)]
            rules.rule_create(owner=household, kind=kind, energy_wh=energy_wh, price=price)
        meters.append(found)
        role = DEMO_HEAT.get(household.name, "")
        if role:
            (segment,) = DEMO_HEAT_TOPOLOGY
            heat = _meter(household, "heat", HEAT_KINDS.get(role, "heat"), segment, role)
            if heat is not None:
                meters.append(heat)
    return meters


def _meter(
    household: User, name: str, kind: str, feeder: str, heat_role: str = ""
) -> DemoMeter | None:
    """The household's meter ``<first name>-<name>``, registered with a new device key the
    first time (the key and token saved under var/demo-meters/); None if its key is lost."""
    from meters import services
    from meters.models import Meter

    meter_id = f"{household.email.split('@')[0]}-{name}"
    saved = _directory() / f"{meter_id}.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        device, token = KeyPair(private_key=bytes.fromhex(data["key"])), data["token"]
    elif Meter.objects.filter(meter_id=meter_id).exists():
        log.warning("meter %s exists but its device key is lost; skipped", meter_id)
        return None
    else:
        device = KeyPair.generate()
        _, token = services.meter_register(
            by=household,
            owner=household,
            meter_id=meter_id,
            kind=kind,
            public_key=device.public_key_hex,
            feeder=feeder,
            interval_s=INTERVAL_S,
        )
        fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump({"key": device.private_key.hex(), "token": token}, file)
    return DemoMeter(household, meter_id, device, token, heat_role)


def _feeder(household: User) -> str:
    from market.models import MarketAccount

    feeder = (
        MarketAccount.objects.filter(address=household.identity.address)
        .values_list("feeder", flat=True)
        .first()
    )
    return feeder or "feeder-north"


def flow(household: User, start: datetime, seconds: int) -> tuple[int, int]:
    """(import_wh, export_wh) at the household's connection over ``seconds`` from ``start``."""
    hour = start.astimezone(UTC).hour + start.minute / 60
    seed = household.pk % 7
    load_w = (
        300
        + 40 * seed
        + 900 * math.exp(-((hour - 7.5) ** 2))
        + 1_400 * math.exp(-(((hour - 19) / 1.5) ** 2))
    )
    pv_w = 0.0
    kind = household.household_kind
    if kind in (HouseholdKind.PROSUMER, HouseholdKind.STORAGE) and 6 <= hour <= 20:
        pv_w = (3_000 + 250 * seed) * math.sin(math.pi * (hour - 6) / 14)
    if kind == HouseholdKind.STORAGE and (hour >= 18 or hour < 1):
        pv_w += 2_500  # the battery discharges in the evening
    net_wh = round((pv_w - load_w) * seconds / 3_600)
    return (0, net_wh) if net_wh > 0 else (-net_wh, 0)


def heat_flow(household: User, role: str, start: datetime, seconds: int) -> tuple[int, int]:
    """(import_wh, export_wh) at the household's heat connection over ``seconds`` from
    ``start``, kWh thermal in Wh: its demand for space heating and hot water against what its
    roof collects or its heat pump makes; the thermal store charges by day and gives by night."""
    hour = start.astimezone(UTC).hour + start.minute / 60
    if role == "thermal_store":
        net_w = 1_200.0 if 9 <= hour < 16 else -1_500.0 if 17 <= hour < 23 else 0.0
        net_wh = round(-net_w * seconds / 3_600)
    else:
        seed = household.pk % 5
        demand_w = (
            500
            + 50 * seed
            + 700 * math.exp(-((hour - 7) ** 2))
            + 900 * math.exp(-(((hour - 19) / 2) ** 2))
        )
        supply_w = 0.0
        if role == "solar_thermal" and 7 <= hour <= 19:
            supply_w = 3_200 * math.sin(math.pi * (hour - 7) / 12)
        elif role == "heat_pump":
            supply_w = 2_600.0  # runs steadily, its buffer tank taking up the peaks
        net_wh = round((supply_w - demand_w) * seconds / 3_600)
    return (0, net_wh) if net_wh > 0 else (-net_wh, 0)


def heat_order(meter: DemoMeter, slot: datetime, slot_s: int) -> tuple[str, int, int] | None:
    """What the heat meter's household offers or bids for ``slot``: (side, Wh, price), from
    what its meter will read then; None when it has nothing to trade."""
    import_wh, export_wh = heat_flow(meter.household, meter.heat_role, slot, slot_s)
    price = HEAT_PRICES[meter.heat_role]
    if export_wh:
        return "sell", export_wh * 9 // 10, price
    if import_wh and meter.heat_role != "thermal_store":
        return "buy", import_wh * 8 // 10, price
    if import_wh:  # the store charges: buys what it takes in
        return "buy", import_wh, price
    return None


def heat_trade(meters: list[DemoMeter], now: datetime) -> int:
    """Each heat meter's household places its heat order for the slot after next, once (a
    restart finds the orders it placed); how many it placed."""
    from market import services
    from market.models import Order
    from market.selectors import options

    slot_s = options().slot_ms // 1_000
    start = datetime.fromtimestamp((now.timestamp() // slot_s + 2) * slot_s, tz=UTC)
    placed = 0
    for meter in meters:
        wanted = heat_order(meter, start, slot_s) if meter.heat_role else None
        if wanted is None or wanted[1] <= 0:
            continue
        owner = meter.household.identity.address
        if Order.objects.filter(owner=owner, slot=start, carrier="heat").exists():
            continue
        side, energy_wh, price = wanted
        try:
            services.order_place(
                user=meter.household,
                slot=start,
                side=side,
                energy_wh=energy_wh,
                price=price,
                carrier="heat",
            )
            placed += 1
        except TransactionRejected as refused:
            log.info("heat order of %s: %s", meter.meter_id, refused.code)
    return placed


def report(meter: DemoMeter, start: datetime, base_url: str) -> int:
    """Send one interval through the meters API; the HTTP status (0: the site did not
    answer)."""
    from meters.signing import header_value

    if meter.heat_role:
        import_wh, export_wh = heat_flow(meter.household, meter.heat_role, start, INTERVAL_S)
    else:
        import_wh, export_wh = flow(meter.household, start, INTERVAL_S)
        import_wh = min(import_wh, curbed_import(meter.household, start, INTERVAL_S))
    reading = {
        "start": start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "duration_s": INTERVAL_S,
        "import_wh": import_wh,
        "export_wh": export_wh,
        "quality": "actual",
    }
    body = json.dumps({"readings": [reading]}, separators=(",", ":")).encode()
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {base_url}")
    request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
        f"{base_url}/api/v1/meters/{meter.meter_id}/readings",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Meter {meter.token}",
            "X-Meter-Signature": header_value(meter.device, body, t=int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own site)
            return int(response.status)
    except urllib.error.HTTPError as error:
        log.warning("meter %s: %s %s", meter.meter_id, error.code, error.read()[:200])
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        # The site is restarting or stopping: like a real meter, report again next minute.
        log.warning("meter %s: the site did not answer (%s)", meter.meter_id, error)
        return 0


def _slot_after_next(now: datetime) -> tuple[datetime, int]:
    from market.selectors import options

    slot_s = options().slot_ms // 1_000
    return datetime.fromtimestamp((now.timestamp() // slot_s + 2) * slot_s, tz=UTC), slot_s


def curbed_import(household: User, start: datetime, seconds: int) -> int:
    """The most the household imports over ``seconds`` from ``start`` while a flexibility
    contract it sold covers that time: its baseline less what it sold, spread evenly over the
    slot (no contract: no limit)."""
    from flexibility.models import FlexibilityContract
    from market.selectors import options

    slot_s = options().slot_ms // 1_000
    slot = datetime.fromtimestamp(start.timestamp() // slot_s * slot_s, tz=UTC)
    limit = None
    sold = FlexibilityContract.objects.filter(
        contract__seller=household.identity.address,
        contract__slot=slot,
        direction="import",
        contract__vetoed=False,
    ).values_list("baseline_wh", "contract__energy_wh")
    for baseline_wh, energy_wh in sold:
        allowed = max(0, baseline_wh - energy_wh) * seconds // slot_s
        limit = allowed if limit is None else min(limit, allowed)
    return 2**31 if limit is None else limit


def flexibility_round(meters: list[DemoMeter], now: datetime) -> None:
    """One minute of the demo's flexibility: enrolments and the store once, the grid operator's
    requirement for the slot after next, the households' answers, the operator's acceptances
    (each step once: a restart finds what it did in the read models)."""
    from flexibility import selectors as flex
    from flexibility import services
    from flexibility.models import Answer, Enrolment, Requirement, Store

    operator = User.objects.get(role=Role.GRID_OPERATOR, email=f"operator@{DEMO_DOMAIN}")
    lane = [m.household for m in meters if not m.heat_role and _feeder(m.household) == FLEX_FEEDER]

    def attempt(what: str, action: Any, **arguments: Any) -> None:
        try:
            action(**arguments)
        except TransactionRejected as refused:
            log.info("%s: %s", what, refused.code)

    for household in lane:
        address = household.identity.address
        if not Enrolment.objects.filter(address=address, carrier="electricity").exists():
            attempt("enrolment", services.flexibility_enroll, user=household)
    for meter in meters:
        address = meter.household.identity.address
        if (
            meter.heat_role == "thermal_store"
            and not Store.objects.filter(address=address).exists()
        ):
            attempt(
                "the thermal store",
                services.store_register,
                operator=operator,
                address=address,
                meter_id=meter.meter_id,
                capacity_wh=STORE_CAPACITY_WH,
                soc_wh=STORE_CHARGE_WH,
            )
    start, _ = _slot_after_next(now)
    if not Requirement.objects.filter(slot=start, feeder=FLEX_FEEDER).exists():
        attempt(
            "requirement",
            services.requirement_post,
            operator=operator,
            slot=start,
            feeder=FLEX_FEEDER,
            direction="import",
            energy_wh=FLEX_REQUIREMENT_WH,
            price=FLEX_REQUIREMENT_PRICE,
        )
    open_ones = Requirement.objects.filter(
        feeder=FLEX_FEEDER, status="open", slot__gt=flex.gate(now)
    )
    for requirement in open_ones:
        for household in lane:
            address = household.identity.address
            if Answer.objects.filter(requirement=requirement, owner=address).exists():
                continue
            baseline = next(
                (
                    row.import_wh
                    for row in flex.baselines(user=household, now=now)
                    if row.start == requirement.slot and row.carrier == "electricity"
                ),
                None,
            )
            if baseline and baseline // 2:
                attempt(
                    "answer",
                    services.answer_post,
                    user=household,
                    requirement_id=requirement.id,
                    energy_wh=baseline // 2,
                    price=FLEX_ANSWER_PRICE,
                )
    answers = Answer.objects.filter(
        status="open", requirement__status="open", requirement__feeder=FLEX_FEEDER
    ).select_related("requirement")
    for answer in answers:
        wanted = flex.acceptable_wh(answer)
        if wanted > 0 and answer.requirement.slot > flex.gate(now):
            attempt(
                "acceptance",
                services.answer_accept,
                operator=operator,
                answer_id=answer.id,
                energy_wh=wanted,
            )


def run(base_url: str, *, once: bool = False) -> None:
    """Every minute, each demo meter reports the minute that just ended."""
    meters = demo_meters()
    log.info("simulating %s demo meters against %s", len(meters), base_url)
    while True:
        now = datetime.now(tz=UTC)
        start = now.replace(second=0, microsecond=0) - timedelta(seconds=INTERVAL_S)
        for meter in meters:
            report(meter, start, base_url)
        heat_trade(meters, now)
        flexibility_round(meters, now)
        if once:
            return
        next_minute = start + timedelta(seconds=2 * INTERVAL_S, milliseconds=2_000)
        time.sleep(max(1.0, (next_minute - datetime.now(tz=UTC)).total_seconds()))
