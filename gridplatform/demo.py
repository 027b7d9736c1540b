"""The demo community: three feeders (one of them tight), its grid operator (with a tariff for
electricity and one for heat) and its regulator."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gridplatform.accounts import services
from gridplatform.accounts.models import HouseholdKind, Role, User

DEMO_PASSWORD = "sunny-feeder-2026"
DEMO_DOMAIN = "demo.example"

P, C, S = HouseholdKind.PROSUMER, HouseholdKind.CONSUMER, HouseholdKind.STORAGE

# 30 homes along two streets: most with rooftop PV, some plain consumers, a few with batteries.
HOUSEHOLDS: tuple[tuple[str, HouseholdKind], ...] = (
    ("Ada Okafor", P),
    ("Ben Hartmann", P),
    ("Chiara Rossi", S),
    ("Dmitri Volkov", C),
    ("Elif Yilmaz", P),
    ("Femi Adeyemi", P),
    ("Greta Lind", P),
    ("Hiro Tanaka", S),
    ("Ines Duarte", P),
    ("Jonas Berg", C),
    ("Kavya Iyer", P),
    ("Lars Nilsen", P),
    ("Maya Cohen", P),
    ("Noah Schmidt", C),
    ("Olga Petrova", P),
    ("Pablo Ortega", S),
    ("Quinn Walsh", P),
    ("Rania Haddad", P),
    ("Sven Larsen", C),
    ("Tomoko Sato", P),
    ("Uma Patel", P),
    ("Victor Dubois", P),
    ("Wen Li", S),
    ("Ximena Flores", P),
    ("Yusuf Demir", C),
    ("Zofia Nowak", P),
    ("Amara Diallo", P),
    ("Bruno Costa", C),
    ("Clara Weiss", P),
    ("Dev Malhotra", P),
)


@dataclass(frozen=True)
class DemoLogin:
    role: str
    name: str
    email: str


# An energy seller households may grant trading to (docs/retail.md); on the ledger as a retailer.
DEMO_RETAILER = "Sol Energy"


def demo_email(name: str) -> str:
    return f"{name.split()[0].lower()}@{DEMO_DOMAIN}"


def demo_community_create() -> list[DemoLogin]:
    """Create the demo accounts that do not exist yet; safe to run again."""
    people: list[tuple[str, str, Role, str]] = [
        ("Feeder Grid Operator", f"operator@{DEMO_DOMAIN}", Role.GRID_OPERATOR, ""),
        ("Energy Regulator", f"regulator@{DEMO_DOMAIN}", Role.REGULATOR, ""),
        (DEMO_RETAILER, f"retailer@{DEMO_DOMAIN}", Role.RETAILER, ""),
    ]
    people += [(name, demo_email(name), Role.HOUSEHOLD, kind) for name, kind in HOUSEHOLDS]
    existing = set(User.objects.values_list("email", flat=True))
    for name, email, role, kind in people:
        if email not in existing:
            services.user_create(
                email=email, name=name, password=DEMO_PASSWORD, role=role, household_kind=kind
            )
    return [
        DemoLogin(role=str(role.label), name=name, email=email) for name, email, role, _ in people
    ]


# The demo network's market runs faster than a real one, so that a newcomer sees orders match,
# slots clear and settle within minutes: 5-minute slots, gate closure a minute before,
# settlement two minutes after a slot ends. It trades heat beside electricity (heat's prices are
# lower: at most 1.00 per kWh thermal, a network fee of 2 cents).
DEMO_MARKET_OPTIONS = {
    "market.retailers": 1,  # only retailer accounts trade for households (docs/retail.md)
    "market.slot_ms": 300_000,
    "market.gate_closure_ms": 60_000,
    "market.settlement_delay_ms": 120_000,
    "market.heat": 1,
    "market.heat.price_max": 100,
    "market.heat.network_fee": 2,
}
DEMO_TOP_UP = 5_000  # minor units: 50.00 of credits for every demo household
# The grid operator's own credits for its flexibility requirements (their budgets are locked
# from its free balance): 500.00.
DEMO_OPERATOR_BUDGET = 50_000
# The community's grid: two streets and a lane at the end of a long, thin cable, whose limits
# bite (``supervision.chain.grid``: a 5-minute slot lets 6 kW carry 500 Wh each way). Limits in W.
# The grid operator's tariff (minor units per kWh): nights 22:00-07:00 UTC and days.
DEMO_TARIFF_BANDS = [
    {"from_minute": 0, "retail": 24, "feed_in": 6, "network_fee": 4},
    {"from_minute": 420, "retail": 32, "feed_in": 8, "network_fee": 5},
    {"from_minute": 1_320, "retail": 24, "feed_in": 6, "network_fee": 4},
]
# Heat's tariff (minor units per kWh thermal), one band all day: what the heat loop's households
# draw or feed in beyond their heat trades is settled with the supplier at it.
DEMO_HEAT_TARIFF_BANDS = [{"from_minute": 0, "retail": 12, "feed_in": 3, "network_fee": 2}]
DEMO_TOPOLOGY = {
    "feeder-north": (60_000, 60_000),
    "feeder-south": (40_000, 40_000),
    "feeder-mill-lane": (6_000, 6_000),
}
DEMO_FEEDERS = tuple(DEMO_TOPOLOGY)
# A small heat loop along the south street: a solar-thermal roof and two heat pumps with buffer
# tanks feed it, neighbours draw from it, one household runs a thermal store. Its one segment
# carries 3 kW thermal each way (250 Wh in a 5-minute slot), so the heating network's check
# bites as Mill Lane's feeder does.
DEMO_HEAT_TOPOLOGY = {"heat-south-loop": (3_000, 3_000)}
DEMO_HEAT = {
    "Kavya Iyer": "solar_thermal",
    "Lars Nilsen": "heat_pump",
    "Maya Cohen": "heat_pump",
    "Noah Schmidt": "heat_consumer",
    "Sven Larsen": "heat_consumer",
    "Pablo Ortega": "thermal_store",
}


def demo_ledger_register() -> int:
    """Publish the demo grid's feeders, its heat loop and its tariffs (from the slot after next),
    give the grid operator its budget for requirements, and put every demo household the ledger
    does not know yet on it, ready to trade: registered, on its street's feeder (and the heat
    loop's households on the loop), with 50.00 of credits. Returns how many households.

    Signed by the grid operator's custodial key, sent as one batch. Reads validator 0's store
    (only reads) for who is registered and for the operator's next nonce, so running it again
    sends nothing twice.
    """
    households = User.objects.filter(role=Role.HOUSEHOLD, email__endswith=f"@{DEMO_DOMAIN}")
    return _ledger_register(households, publish=True).households


@dataclass(frozen=True)
class Registration:
    households: int  # put on the ledger by this batch
    operator_nonce: int  # the grid operator's nonce once the batch has committed


def _ledger_register(households: Any, *, publish: bool, limit: int | None = None) -> Registration:
    """Sign and send, as the demo grid operator, what puts ``households`` (a queryset) the
    ledger does not know yet on it (at most ``limit`` of them): registration, feeder, credits;
    and, with ``publish``, the demo topology and tariffs (electricity's and, where the market
    trades heat, heat's) if the ledger has none."""
    from gridplatform.accounts.services import identity_unseal
    from ledger import application, config
    from ledger.crypto import sign_transaction
    from ledger.genesis import Genesis
    from ledger.services import transactions_submit
    from market.chain import tariff
    from market.chain.options import market_options

    genesis = Genesis.from_json_file(config.genesis_path())
    state = _ledger_state()
    operator = User.objects.get(role=Role.GRID_OPERATOR, email=f"operator@{DEMO_DOMAIN}")
    keys = identity_unseal(identity_=operator.identity)
    nonce = application.account(state, keys.address)["nonce"]
    transactions = []

    def signed(type_: str, payload: dict[str, object]) -> None:
        nonlocal nonce
        transactions.append(
            sign_transaction(
                keypair=keys, chain=genesis.chain, type=type_, nonce=nonce, payload=payload
            )
        )
        nonce += 1

    heat = "heat" in market_options(state).carriers
    networks = [(DEMO_TOPOLOGY, {})]
    if heat:
        networks.append((DEMO_HEAT_TOPOLOGY, {"carrier": "heat"}))
    for topology, carrier in networks if publish else ():
        for feeder, (export_limit_w, import_limit_w) in topology.items():
            if state.get(f"grid/topology/{feeder}") is None:
                limits = {"export_limit_w": export_limit_w, "import_limit_w": import_limit_w}
                signed("grid.feeder.publish", {"feeder": feeder, **limits, **carrier})
    if publish and application.balance(state, keys.address) == 0:
        signed("credit.issue", {"to": keys.address, "amount": DEMO_OPERATOR_BUDGET})
    retailer = User.objects.filter(role=Role.RETAILER, email=f"retailer@{DEMO_DOMAIN}").first()
    if publish and retailer is not None:
        found = retailer.identity
        if application.account(state, found.address) is None:
            registration = {"address": found.address, "public_key": found.public_key}
            signed("account.register", registration | {"role": application.RETAILER})
    if publish and not tariff.tariffs(state):
        slot_ms = market_options(state).slot_ms
        from_slot = (time.time_ns() // 1_000_000 // slot_ms + 2) * slot_ms
        signed("market.tariff.publish", {"from_slot": from_slot, "bands": DEMO_TARIFF_BANDS})
    if publish and heat and not tariff.tariffs(state, "heat"):
        slot_ms = market_options(state).slot_ms
        from_slot = (time.time_ns() // 1_000_000 // slot_ms + 2) * slot_ms
        heat_tariff = {"from_slot": from_slot, "bands": DEMO_HEAT_TARIFF_BANDS, "carrier": "heat"}
        signed("market.tariff.publish", heat_tariff)
    new = 0
    count = households.count()
    for position, household in enumerate(households.select_related("identity").order_by("id")):
        identity = household.identity
        if application.account(state, identity.address) is not None:
            continue
        if limit is not None and new >= limit:
            break
        new += 1
        signed(
            "account.register",
            {"address": identity.address, "public_key": identity.public_key, "role": "household"},
        )
        feeder = DEMO_FEEDERS[position * len(DEMO_FEEDERS) // count % len(DEMO_FEEDERS)]
        signed("grid.feeder.assign", {"address": identity.address, "feeder": feeder})
        if heat and household.name in DEMO_HEAT and household.email.endswith(f"@{DEMO_DOMAIN}"):
            (segment,) = DEMO_HEAT_TOPOLOGY
            on_loop = {"address": identity.address, "feeder": segment, "carrier": "heat"}
            signed("grid.feeder.assign", on_loop)
        signed("credit.issue", {"to": identity.address, "amount": DEMO_TOP_UP})
    transactions_submit(transactions=transactions, validators=range(len(genesis.validators)))
    return Registration(households=new, operator_nonce=nonce)


def _ledger_state() -> Any:
    """The ledger state in validator 0's store (read only)."""
    from ledger import config
    from ledger.store import open_store

    store = open_store(config.store_url(0))
    try:
        return store.load_state()
    finally:
        store.close()


# --- a large community, for trying the consoles at scale -------------------------------------

SEED_DOMAIN = "community.example"
SEED_KINDS = (P, P, P, C, S)
SEED_BATCH = 1_500  # households per batch of ledger registrations: 4,500 transactions


def seeded_email(number: int) -> str:
    return f"household-{number:05d}@{SEED_DOMAIN}"


def community_seed_create(households: int) -> int:
    """Create households ``Household 00001`` ... up to ``households`` of them (those missing),
    emails ``household-NNNNN@community.example``, the demo password, each with its own
    identity. Returns how many were created. Built in bulk: one password hash for all (they
    share the password), 1,000 accounts a transaction."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from gridplatform.accounts.models import Identity
    from gridplatform.accounts.services import key_ring
    from ledger.identity import KeyPair

    existing = User.objects.filter(email__endswith=f"@{SEED_DOMAIN}").count()
    hashed = make_password(DEMO_PASSWORD)
    ring = key_ring()
    created = 0
    for first in range(existing + 1, households + 1, 1_000):
        numbers = range(first, min(first + 1_000, households + 1))
        with transaction.atomic():
            users = User.objects.bulk_create(
                [
                    User(
                        email=seeded_email(n),
                        name=f"Household {n:05d}",
                        role=Role.HOUSEHOLD,
                        household_kind=SEED_KINDS[n % len(SEED_KINDS)],
                        connection_point=f"Cabinet {n // 100:03d}, door {n % 100:02d}",
                        password=hashed,
                        email_confirmed=True,
                    )
                    for n in numbers
                ]
            )
            identities = []
            for user in User.objects.filter(email__in=[u.email for u in users]):
                pair = KeyPair.generate()
                identities.append(
                    Identity(
                        user=user,
                        public_key=pair.public_key_hex,
                        address=pair.address,
                        sealed_private_key=ring.seal(pair.private_key, address=pair.address),
                    )
                )
            Identity.objects.bulk_create(identities)
        created += len(numbers)
    return created


def community_ledger_register(*, wait_s: float = 300.0, progress: Any = None) -> int:
    """Put every seeded household the ledger does not know yet on it, like the demo's (feeder,
    50.00 of credits), ``SEED_BATCH`` at a time, each batch sent once the site has projected
    the last (the validators' pools are bounded). Needs the running system. Returns how many."""
    from ledger.models import StateEntry

    households = User.objects.filter(role=Role.HOUSEHOLD, email__endswith=f"@{SEED_DOMAIN}")
    operator = User.objects.get(role=Role.GRID_OPERATOR, email=f"operator@{DEMO_DOMAIN}")
    total = 0
    while True:
        batch = _ledger_register(households, publish=False, limit=SEED_BATCH)
        if not batch.households:
            return total
        total += batch.households
        deadline = time.monotonic() + wait_s
        while True:
            # The site's replica of the operator's account (one row), not a validator's whole
            # state: the batch counts as done once the site has projected it.
            account = StateEntry.objects.filter(key=f"acct/{operator.identity.address}").first()
            if account is not None and account.value["nonce"] >= batch.operator_nonce:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the ledger did not commit the registrations within {wait_s:.0f} s: is the "
                    "system running (`make run`)?"
                )
            time.sleep(1.0)
        if progress is not None:
            progress(total)
