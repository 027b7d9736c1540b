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

from django.conf import settings

from gridplatform.accounts.models import HouseholdKind, Role, User
from gridplatform.demo import DEMO_DOMAIN
from ledger.identity import KeyPair

log = logging.getLogger(__name__)
INTERVAL_S = 60
RULES = {
    HouseholdKind.PROSUMER: ("sell_surplus", 0, 10),
    HouseholdKind.STORAGE: ("sell_surplus", 0, 14),
    HouseholdKind.CONSUMER: ("buy_up_to", 1_000, 35),
}


@dataclass(frozen=True)
class DemoMeter:
    household: User
    meter_id: str
    device: KeyPair
    token: str


def _directory() -> Path:
    path = Path(settings.VAR_DIR) / "demo-meters"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def demo_meters() -> list[DemoMeter]:
    """Each demo household's meter, registered (and its key and token saved) the first time."""
    from market import rules
    from meters import services
    from meters.models import Meter

    meters = []
    households = User.objects.filter(role=Role.HOUSEHOLD, email__endswith=f"@{DEMO_DOMAIN}")
    for household in households.order_by("id"):
        meter_id = f"{household.email.split('@')[0]}-home"
        saved = _directory() / f"{meter_id}.json"
        if saved.exists():
            data = json.loads(saved.read_text())
            device, token = KeyPair(private_key=bytes.fromhex(data["key"])), data["token"]
        elif Meter.objects.filter(meter_id=meter_id).exists():
            log.warning("meter %s exists but its device key is lost; skipped", meter_id)
            continue
        else:
            device = KeyPair.generate()
            _, token = services.meter_register(
                by=household,
                owner=household,
                meter_id=meter_id,
                kind="bidirectional",
                public_key=device.public_key_hex,
                feeder=_feeder(household),
                interval_s=INTERVAL_S,
            )
            fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                json.dump({"key": device.private_key.hex(), "token": token}, file)
        if not rules.rules_of(user=household):
            kind, energy_wh, price = RULES[HouseholdKind(household.household_kind)]
            rules.rule_create(owner=household, kind=kind, energy_wh=energy_wh, price=price)
        meters.append(DemoMeter(household, meter_id, device, token))
    return meters


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


def report(meter: DemoMeter, start: datetime, base_url: str) -> int:
    """Send one interval through the meters API; the HTTP status (0: the site did not
    answer)."""
    from meters.signing import header_value

    import_wh, export_wh = flow(meter.household, start, INTERVAL_S)
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


def run(base_url: str, *, once: bool = False) -> None:
    """Every minute, each demo meter reports the minute that just ended."""
    meters = demo_meters()
    log.info("simulating %s demo meters against %s", len(meters), base_url)
    while True:
        now = datetime.now(tz=UTC)
        start = now.replace(second=0, microsecond=0) - timedelta(seconds=INTERVAL_S)
        for meter in meters:
            report(meter, start, base_url)
        if once:
            return
        next_minute = start + timedelta(seconds=2 * INTERVAL_S, milliseconds=2_000)
        time.sleep(max(1.0, (next_minute - datetime.now(tz=UTC)).total_seconds()))
