"""Participants' roles: households, energy storage providers and energy sellers (retailers).

Genesis lists some, the grid operator registers the others; the registry says which types each
role sends and the handlers check the rest of its rights: a retailer trades for the households
that granted it and never for itself, a storage provider only within its store. Real signed
transactions on a pure State; docs/ledger.md has the table this checks."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import application as app
from ledger.genesis import Genesis, GenesisError
from ledger.identity import KeyPair
from market.chain.storage import store
from tests.market.support import (
    ADA,
    BEN,
    CAT,
    DAN,
    DAN_METER,
    OPERATOR,
    REGULATOR,
    SLOT,
    SLOT_MS,
    Market,
)

SELLER = KeyPair(private_key=bytes(range(46, 78)))  # a retailer account
STORE = DAN  # a storage provider, with meter DAN_METER
LATER = SLOT + SLOT_MS

# Who sends what (docs/ledger.md, "Roles"): every type a participant may send.
PARTICIPANT_TYPES = {
    "household": {
        "key.rotate",
        "credit.transfer",
        "credit.redeem",
        "market.order.place",
        "market.order.cancel",
        "market.offer.post",
        "market.offer.accept",
        "market.offer.withdraw",
        "market.flexibility.enroll",
        "market.requirement.answer",
        "market.grant",
        "market.grant.revoke",
        "market.slot.clear",
        "market.slot.settle",
    },
    "storage_provider": {
        "key.rotate",
        "credit.transfer",
        "credit.redeem",
        "market.order.place",
        "market.order.cancel",
        "market.offer.post",
        "market.offer.accept",
        "market.offer.withdraw",
        "market.flexibility.enroll",
        "market.requirement.answer",
        "market.slot.clear",
        "market.slot.settle",
    },
    "retailer": {
        "key.rotate",
        "credit.transfer",
        "credit.redeem",
        "market.order.place",
        "market.order.cancel",
        "market.slot.clear",
        "market.slot.settle",
    },
}


def register(market: Market, who: KeyPair, role: str) -> str:
    payload = {"address": who.address, "public_key": who.public_key_hex, "role": role}
    return market.send(OPERATOR, "account.register", **payload)


def grant(market: Market, household: KeyPair, retailer: KeyPair) -> str:
    limits = {"max_energy_wh": 2_000, "max_price": 40, "min_price": 20}
    return market.send(household, "market.grant", retailer=retailer.address, **limits)


def place_for(market: Market, retailer: KeyPair, household: KeyPair | None, **order: Any) -> str:
    payload = {"slot": SLOT, "side": "sell", "energy_wh": 1_000, "price": 30} | order
    if household is not None:
        payload["for"] = household.address
    return market.send(retailer, "market.order.place", **payload)


def storage_register(market: Market, capacity: int, soc: int, meter: str = "dan-battery") -> str:
    payload = {"address": STORE.address, "meter": meter, "capacity_wh": capacity, "soc_wh": soc}
    return market.send(OPERATOR, "market.storage.register", **payload)


@pytest.fixture
def market() -> Market:
    """Ada and Ben households, Cat a household too, Seller a retailer, Dan a storage provider
    with a battery meter but no store yet; only retailers trade for households."""
    result = Market(retailers=1)
    for who in (ADA, BEN, CAT):
        result.household(who)
    result.household(SELLER, role="retailer", credits=1_000, feeder="")
    result.household(STORE, role="storage_provider")
    assert result.meter(STORE, DAN_METER, "dan-battery", kind="battery") == "ok"
    return result


# --- the roles ---------------------------------------------------------------------------------


def test_it_registers_storage_providers_and_retailers_but_no_operator_or_regulator() -> None:
    market = Market()
    assert register(market, ADA, "storage_provider") == "ok"
    assert register(market, BEN, "retailer") == "ok"
    assert register(market, CAT, "regulator") == "bad_role"
    assert register(market, CAT, "grid_operator") == "bad_role"
    assert register(market, CAT, "supplier") == "bad_role"
    assert app.account(market.state, ADA.address)["role"] == "storage_provider"
    assert app.account(market.state, BEN.address)["role"] == "retailer"


def test_each_role_sends_the_types_of_the_table() -> None:
    types = Market().registry.types
    for role, expected in PARTICIPANT_TYPES.items():
        assert {name for name, kind in types.items() if kind.allows(role)} == expected, role


def test_genesis_lists_members_with_their_roles() -> None:
    members = [(SELLER.public_key_hex, "retailer"), (STORE.public_key_hex, "storage_provider")]
    state = app.genesis_state(
        chain="c",
        issuer_public_key=OPERATOR.public_key_hex,
        regulator_public_keys=[REGULATOR.public_key_hex],
        members=members,
    )
    assert app.account(state, SELLER.address) == {
        "public_key": SELLER.public_key_hex,
        "role": "retailer",
        "nonce": 0,
    }
    assert app.account(state, STORE.address)["role"] == "storage_provider"
    with pytest.raises(ValueError, match="regulator"):
        app.genesis_state(
            chain="c",
            issuer_public_key=OPERATOR.public_key_hex,
            regulator_public_keys=[],
            members=[(ADA.public_key_hex, "regulator")],
        )


def genesis_document(**extra: Any) -> dict[str, Any]:
    validators = [KeyPair(private_key=bytes([n]) * 32).public_key_hex for n in range(1, 5)]
    return {
        "chain": "c",
        "timestamp_ms": 0,
        "validators": validators,
        "issuer_public_key": OPERATOR.public_key_hex,
        "regulator_public_keys": [REGULATOR.public_key_hex],
        "options": {},
        "protocol": 4,
    } | extra


def test_a_genesis_document_lists_members_only_when_it_has_some() -> None:
    plain = Genesis.from_json(genesis_document())
    assert "members" not in plain.to_json()  # documents from before members hash the same
    listed = [{"public_key": SELLER.public_key_hex, "role": "retailer"}]
    document = Genesis.from_json(genesis_document(members=listed))
    assert document.members == ((SELLER.public_key_hex, "retailer"),)
    assert Genesis.loads(document.dumps()) == document
    assert document.block_hash != plain.block_hash
    assert app.account(document.genesis_state(), SELLER.address)["role"] == "retailer"
    for bad in (
        [],
        [{"public_key": SELLER.public_key_hex}],
        [{"public_key": SELLER.public_key_hex, "role": "regulator"}],
        [{"public_key": OPERATOR.public_key_hex, "role": "retailer"}],
        [{"public_key": "nope", "role": "retailer"}],
    ):
        with pytest.raises(GenesisError):
            Genesis.from_json(genesis_document(members=bad))


# --- retailers ---------------------------------------------------------------------------------


def test_only_a_retailer_is_named_in_a_grant_and_places_orders_for_a_household(
    market: Market,
) -> None:
    assert grant(market, ADA, CAT) == "not_retailer"
    assert grant(market, ADA, STORE) == "not_retailer"
    assert grant(market, ADA, SELLER) == "ok"
    assert place_for(market, CAT, ADA) == "not_retailer"
    assert place_for(market, SELLER, BEN) == "no_grant"
    tx = market.tx(
        SELLER,
        "market.order.place",
        slot=SLOT,
        side="sell",
        energy_wh=1_000,
        price=30,
        **{"for": ADA.address},
    )
    assert market.run(tx) == ["ok"]
    order = market.order(tx.id)
    assert order is not None
    assert (order["owner"], order["placed_by"]) == (ADA.address, SELLER.address)
    assert market.send(SELLER, "market.order.cancel", order=tx.id) == "ok"


def test_a_retailer_does_not_trade_for_itself(market: Market) -> None:
    assert place_for(market, SELLER, None) == "for_customers_only"
    assert place_for(market, SELLER, SELLER) == "for_customers_only"
    offer = {"slot": SLOT, "energy_wh": 100, "price": 30, "buyer": ""}
    assert market.send(SELLER, "market.offer.post", **offer) == "not_allowed"
    assert market.send(SELLER, "market.grant.revoke", retailer=ADA.address) == "not_allowed"
    assert market.send(SELLER, "market.flexibility.enroll") == "not_allowed"
    assert market.locked(SELLER) == 0
    # Its fees come by transfer; it may pass credits on.
    assert market.send(SELLER, "credit.transfer", to=ADA.address, amount=10) == "ok"


def test_without_the_option_any_account_a_household_names_trades_for_it() -> None:
    market = Market()
    for who in (ADA, CAT):
        market.household(who)
    assert grant(market, ADA, CAT) == "ok"
    assert place_for(market, CAT, ADA) == "ok"


def test_a_retailer_is_neither_on_a_feeder_nor_restricted_nor_metered(market: Market) -> None:
    assign = {"address": SELLER.address, "feeder": "f1"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "not_household"
    restrict = {"address": SELLER.address, "reason": "test"}
    assert market.send(REGULATOR, "supervision.account.restrict", **restrict) == "not_household"
    assert market.meter(SELLER, KeyPair(private_key=bytes(range(70, 102))), "s-m") == (
        "not_household"
    )


# --- storage providers -------------------------------------------------------------------------


def test_a_storage_provider_without_a_store_does_not_trade(market: Market) -> None:
    assert market.place(STORE, "sell", 100, 30)[0] == "no_store"
    assert market.place(STORE, "buy", 100, 30)[0] == "no_store"
    offer = {"slot": SLOT, "energy_wh": 100, "price": 30, "buyer": ""}
    assert market.send(STORE, "market.offer.post", **offer) == "no_store"
    ben_offer = market.tx(BEN, "market.offer.post", **offer)
    assert market.run(ben_offer) == ["ok"]
    assert market.send(STORE, "market.offer.accept", offer=ben_offer.id, energy_wh=100) == (
        "no_store"
    )
    assert market.locked(STORE) == 0


def test_a_storage_provider_trades_both_ways_within_its_state_of_charge(market: Market) -> None:
    assert storage_register(market, 10_000, 4_000) == "ok"
    assert market.place(STORE, "sell", 4_001, 30)[0] == "beyond_state_of_charge"
    assert market.place(STORE, "sell", 4_000, 30)[0] == "ok"
    assert market.place(STORE, "buy", 6_001, 10, slot=LATER)[0] == "beyond_state_of_charge"
    assert market.place(STORE, "buy", 5_000, 10, slot=LATER)[0] == "ok"
    # Accepting an offer charges the store: only into the room left (1,000 Wh).
    offer = market.tx(BEN, "market.offer.post", slot=LATER, energy_wh=2_000, price=10, buyer="")
    assert market.run(offer) == ["ok"]
    accept = {"offer": offer.id}
    assert market.send(STORE, "market.offer.accept", energy_wh=1_001, **accept) == (
        "beyond_state_of_charge"
    )
    assert market.send(STORE, "market.offer.accept", energy_wh=1_000, **accept) == "ok"
    record = store(market.state, STORE.address, "electricity")
    assert record is not None
    assert (record["sell_wh"], record["buy_wh"]) == (4_000, 6_000)
    # It is a counterparty like a household: a named offer to it, its own bilateral offer.
    ada_offer = {"slot": LATER, "energy_wh": 1, "price": 10, "buyer": STORE.address}
    assert market.send(ADA, "market.offer.post", **ada_offer) == "ok"
    own = {"slot": LATER, "energy_wh": 1, "price": 30, "buyer": ""}
    assert market.send(STORE, "market.offer.post", **own) == "beyond_state_of_charge"


def test_a_storage_provider_with_an_electric_store_trades_no_heat() -> None:
    market = Market(heat=1)
    market.household(STORE, role="storage_provider")
    assert market.meter(STORE, DAN_METER, "dan-battery", kind="battery") == "ok"
    assert storage_register(market, 10_000, 4_000) == "ok"
    assign = {"address": STORE.address, "feeder": "loop-a", "carrier": "heat"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "ok"
    order = {"slot": SLOT, "side": "sell", "energy_wh": 100, "price": 9, "carrier": "heat"}
    assert market.send(STORE, "market.order.place", **order) == "no_store"
    assert market.place(STORE, "sell", 100, 30)[0] == "ok"


def test_a_storage_provider_answers_a_requirement_only_with_a_store(market: Market) -> None:
    assert market.send(OPERATOR, "credit.issue", to=OPERATOR.address, amount=1_000) == "ok"
    requirement = market.tx(
        OPERATOR,
        "market.requirement.post",
        slot=SLOT,
        feeder="f1",
        direction="import",
        energy_wh=1_000,
        price=50,
    )
    assert market.run(requirement) == ["ok"]
    answer = {"requirement": requirement.id, "energy_wh": 500, "price": 40}
    assert market.send(STORE, "market.requirement.answer", **answer) == "no_store"
    assert storage_register(market, 10_000, 4_000) == "ok"
    # With a store it goes on to the household's checks: a baseline is needed first.
    assert market.send(STORE, "market.requirement.answer", **answer) == "not_enrolled"


def test_a_storage_provider_is_metered_on_a_feeder_and_may_be_restricted(market: Market) -> None:
    assert market.state.get(f"grid/feeder/{STORE.address}") == "f1"
    restrict = {"address": STORE.address, "reason": "test"}
    assert market.send(REGULATOR, "supervision.account.restrict", **restrict) == "ok"
    assert storage_register(market, 10_000, 4_000) == "ok"
    assert market.place(STORE, "sell", 100, 30)[0] == "account_restricted"


def test_a_store_is_registered_for_households_and_storage_providers_only(market: Market) -> None:
    payload = {"address": SELLER.address, "meter": "dan-battery", "capacity_wh": 1, "soc_wh": 0}
    assert market.send(OPERATOR, "market.storage.register", **payload) == "not_household"
    assert storage_register(market, 10_000, 0) == "ok"
    assert (
        market.send(
            STORE,
            "market.grant",
            retailer=SELLER.address,
            max_energy_wh=1,
            max_price=1,
            min_price=1,
        )
        == "not_allowed"
    )
