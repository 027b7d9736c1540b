"""Energy sellers (``market.chain.retail``): a retailer places orders for a household within the
limits the household granted, and the order is the household's; real signed transactions on a
pure State."""

from __future__ import annotations

from typing import Any

import pytest

from tests.market.support import ADA, BEN, CAT, SLOT, Market

RETAILER = CAT  # an account the households name as their energy seller


def grant(market: Market, who: Any = ADA, **limits: Any) -> str:
    payload = (
        {"retailer": RETAILER.address, "max_energy_wh": 2_000, "max_price": 40}
        | {"min_price": 20}
        | limits
    )
    return market.send(who, "market.grant", **payload)


def place_for(
    market: Market, household: Any, side: str, energy_wh: int, price: int
) -> tuple[str, str]:
    tx = market.tx(
        RETAILER,
        "market.order.place",
        slot=SLOT,
        side=side,
        energy_wh=energy_wh,
        price=price,
        **{"for": household.address},
    )
    return market.run(tx)[0], tx.id


@pytest.fixture
def market() -> Market:
    result = Market()
    for who in (ADA, BEN, CAT):
        result.household(who, credits=100_000)
    return result


def test_a_retailers_order_is_the_households_within_its_grant(market: Market) -> None:
    assert place_for(market, ADA, "sell", 1_000, 30)[0] == "no_grant"
    assert grant(market) == "ok"
    assert place_for(market, ADA, "sell", 2_001, 30)[0] == "exceeds_grant"
    assert place_for(market, ADA, "sell", 1_000, 19)[0] == "price_outside_grant"
    result, order_id = place_for(market, ADA, "sell", 1_000, 30)
    assert result == "ok"
    order = market.order(order_id)
    assert order is not None
    assert (order["owner"], order["placed_by"]) == (ADA.address, RETAILER.address)
    assert market.locked(ADA) == 6  # the household's deposit, 20 % of 1,000 Wh x 30
    assert market.locked(RETAILER) == 0
    assert market.place(BEN, "buy", 1_000, 30)[0] == "ok"
    (made,) = market.contracts()
    assert (made["seller"], made["buyer"]) == (ADA.address, BEN.address)


def test_a_buy_for_a_household_respects_the_grants_highest_price(market: Market) -> None:
    assert grant(market, who=BEN) == "ok"
    assert place_for(market, BEN, "buy", 1_000, 41)[0] == "price_outside_grant"
    assert place_for(market, BEN, "buy", 1_000, 40)[0] == "ok"
    assert market.locked(BEN) == 40


def test_the_household_or_its_retailer_may_cancel_and_a_revoked_grant_stops_new_orders(
    market: Market,
) -> None:
    assert grant(market) == "ok"
    _, first = place_for(market, ADA, "sell", 1_000, 30)
    _, second = place_for(market, ADA, "sell", 1_000, 30)
    assert market.send(BEN, "market.order.cancel", order=first) == "not_owner"
    assert market.send(RETAILER, "market.order.cancel", order=first) == "ok"
    assert market.send(ADA, "market.order.cancel", order=second) == "ok"
    assert market.locked(ADA) == 0
    assert market.send(ADA, "market.grant.revoke", retailer=RETAILER.address) == "ok"
    assert market.send(ADA, "market.grant.revoke", retailer=RETAILER.address) == "unknown_grant"
    assert place_for(market, ADA, "sell", 1_000, 30)[0] == "no_grant"
    # A grant is per carrier: an electricity grant gives no heat.
    assert grant(market) == "ok"
    heat = Market(heat=1)
    heat.household(ADA, credits=1_000)
    heat.household(CAT, credits=0)
    assert grant(heat) == "ok"
    tx = heat.tx(
        RETAILER,
        "market.order.place",
        slot=SLOT,
        side="sell",
        energy_wh=100,
        price=30,
        carrier="heat",
        **{"for": ADA.address},
    )
    assert heat.run(tx) == ["no_grant"]


def test_a_grant_needs_sound_limits(market: Market) -> None:
    assert grant(market, max_energy_wh=0) == "bad_grant_limit"
    assert grant(market, max_price=-1) == "bad_grant_limit"
    assert grant(market, min_price=True) == "bad_grant_limit"
    assert grant(market, who=RETAILER) == "own_grant"
    assert (
        market.send(
            ADA, "market.grant", retailer="nobody", max_energy_wh=1, max_price=1, min_price=1
        )
        == "bad_address"
    )
