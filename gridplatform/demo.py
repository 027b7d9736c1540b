"""The demo community: three feeders (one of them tight), its grid operator (with a tariff) and
its regulator."""

from __future__ import annotations

import time
from dataclasses import dataclass

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


def demo_email(name: str) -> str:
    return f"{name.split()[0].lower()}@{DEMO_DOMAIN}"


def demo_community_create() -> list[DemoLogin]:
    """Create the demo accounts that do not exist yet; safe to run again."""
    people: list[tuple[str, str, Role, str]] = [
        ("Feeder Grid Operator", f"operator@{DEMO_DOMAIN}", Role.GRID_OPERATOR, ""),
        ("Energy Regulator", f"regulator@{DEMO_DOMAIN}", Role.REGULATOR, ""),
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
# settlement two minutes after a slot ends.
DEMO_MARKET_OPTIONS = {
    "market.slot_ms": 300_000,
    "market.gate_closure_ms": 60_000,
    "market.settlement_delay_ms": 120_000,
}
DEMO_TOP_UP = 5_000  # minor units: 50.00 of credits for every demo household
# The community's grid: two streets and a lane at the end of a long, thin cable, whose limits
# bite (``supervision.chain.grid``: a 5-minute slot lets 6 kW carry 500 Wh each way). Limits in W.
# The grid operator's tariff (minor units per kWh): nights 22:00-07:00 UTC and days.
DEMO_TARIFF_BANDS = [
    {"from_minute": 0, "retail": 24, "feed_in": 6, "network_fee": 4},
    {"from_minute": 420, "retail": 32, "feed_in": 8, "network_fee": 5},
    {"from_minute": 1_320, "retail": 24, "feed_in": 6, "network_fee": 4},
]
DEMO_TOPOLOGY = {
    "feeder-north": (60_000, 60_000),
    "feeder-south": (40_000, 40_000),
    "feeder-mill-lane": (6_000, 6_000),
}
DEMO_FEEDERS = tuple(DEMO_TOPOLOGY)


def demo_ledger_register() -> int:
    """Publish the demo grid's feeders and its tariff (from the slot after next) and put every
    demo household the ledger does not know yet on it, ready to trade: registered, on its
    street's feeder, with 50.00 of credits. Returns how many households.

    Signed by the grid operator's custodial key, sent as one batch. Reads validator 0's store
    (only reads) for who is registered and for the operator's next nonce, so running it again
    sends nothing twice.
    """
    from gridplatform.accounts.services import identity_unseal
    from ledger import application, config
    from ledger.crypto import sign_transaction
    from ledger.genesis import Genesis
    from ledger.services import transactions_submit
    from ledger.store import open_store
    from market.chain import tariff
    from market.chain.options import market_options

    genesis = Genesis.from_json_file(config.genesis_path())
    store = open_store(config.store_url(0))
    try:
        state = store.load_state()
    finally:
        store.close()
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

    for feeder, (export_limit_w, import_limit_w) in DEMO_TOPOLOGY.items():
        if state.get(f"grid/topology/{feeder}") is None:
            signed(
                "grid.feeder.publish",
                {
                    "feeder": feeder,
                    "export_limit_w": export_limit_w,
                    "import_limit_w": import_limit_w,
                },
            )
    if not tariff.tariffs(state):
        slot_ms = market_options(state).slot_ms
        from_slot = (time.time_ns() // 1_000_000 // slot_ms + 2) * slot_ms
        signed("market.tariff.publish", {"from_slot": from_slot, "bands": DEMO_TARIFF_BANDS})
    households = User.objects.filter(role=Role.HOUSEHOLD, email__endswith=f"@{DEMO_DOMAIN}")
    new = 0
    for position, household in enumerate(households.select_related("identity").order_by("id")):
        identity = household.identity
        if application.account(state, identity.address) is not None:
            continue
        new += 1
        signed(
            "account.register",
            {"address": identity.address, "public_key": identity.public_key, "role": "household"},
        )
        feeder = DEMO_FEEDERS[position * len(DEMO_FEEDERS) // len(HOUSEHOLDS) % len(DEMO_FEEDERS)]
        signed("grid.feeder.assign", {"address": identity.address, "feeder": feeder})
        signed("credit.issue", {"to": identity.address, "amount": DEMO_TOP_UP})
    transactions_submit(transactions=transactions, validators=range(len(genesis.validators)))
    return new
