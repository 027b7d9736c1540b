"""A supervised network for supervision's site tests: real chains the site projects, the genesis
regulator and grid operator held by site users, households trading on published feeders.

The chain's blocks are an hour old (``HOUR_AGO``) and 5 s apart, while the site rehearses its
users' transactions at its own clock: a slot ``ahead`` 0 of :func:`slot_at` is open for the
blocks but has started for the site (a veto is ``delivery_started``), one ``ahead`` 4 or more is
still to come for both.

Feeders: ``f1`` exports and imports 8 kW (2,000 Wh per 15-minute slot), ``f2`` 6 kW (1,500 Wh).
The seller (``prosumer``) is on f1, the buyer (``consumer``) and the outsider on f2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.forms.models import model_to_dict

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger.blocks import Block
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from market.models import Contract
from supervision.models import (
    Feeder,
    FeederLoad,
    GridDeclaration,
    Notification,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)
from tests.ledger.chains import OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import (
    Site,
    commit_pending,
    give_issuer_key,
    give_regulator_key,
    use_network,
)

SLOT_MS = 900_000
GATE_MS = 300_000
HOUR_AGO = 3_600_000
CREDITS = 1_000_000
FEEDERS = {"f1": 8_000, "f2": 6_000}  # W, each way


def keys(user: User) -> KeyPair:
    return identity_unseal(identity_=user.identity)


def address(user: User) -> str:
    value: str = user.identity.address
    return value


def network_site(
    settings: Any, tmp_path: Path, *, grid_operator: User, regulator: User, start_ms: int
) -> Site:
    """A network whose chain starts at ``start_ms`` and whose grid operator and regulator are
    the site's users, projected."""
    give_issuer_key(grid_operator)
    give_regulator_key(regulator)
    chain = build_chain(1, 1, start_ms=start_ms)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def setup_txs(site: Site, feeders: dict[str, int], households: dict[User, str]) -> list[Any]:
    """Publish ``feeders`` (name -> W each way), then register ``households`` (user -> feeder)
    with credits on their feeders."""
    txs = [
        site.sign(OPERATOR, "grid.feeder.publish", feeder=name, export_limit_w=w, import_limit_w=w)
        for name, w in feeders.items()
    ]
    for user, feeder in households.items():
        txs += [
            site.sign(
                OPERATOR,
                "account.register",
                address=address(user),
                public_key=user.identity.public_key,
                role="household",
            ),
            site.sign(OPERATOR, "credit.issue", to=address(user), amount=CREDITS),
            site.sign(OPERATOR, "grid.feeder.assign", address=address(user), feeder=feeder),
        ]
    return txs


def supervised_site(
    settings: Any,
    tmp_path: Path,
    *,
    grid_operator: User,
    regulator: User,
    households: dict[User, str],
) -> Site:
    """A network an hour old whose grid operator and regulator are the site's users; feeders
    published, ``households`` (user -> feeder) registered with credits on their feeders."""
    site = network_site(
        settings,
        tmp_path,
        grid_operator=grid_operator,
        regulator=regulator,
        start_ms=recent_start_ms() - HOUR_AGO,
    )
    commit(site, setup_txs(site, FEEDERS, households))
    return site


def commit(site: Site, txs: list[Any], *, timestamp_ms: int | None = None) -> Block:
    """A block of ``txs`` that must all pass."""
    block = site.commit(txs, timestamp_ms=timestamp_ms)
    assert set(block.results) <= {"ok"}, block.results
    return block


def commit_sent(site: Site) -> list[str]:
    """Commit what the site submitted, in order, as the validators would; the results."""
    results = list(commit_pending(site).results)
    assert not SubmittedTransaction.objects.exists()
    return results


def slot_at(site: Site, ahead: int = 0) -> int:
    """A slot open for the next blocks: the second whose gate has not closed, ``ahead`` later."""
    now = site.blocks[-1].timestamp_ms + 5_000
    return ((now + GATE_MS) // SLOT_MS + 2 + ahead) * SLOT_MS


def order(site: Site, user: User, side: str, energy_wh: int, price: int, slot: int) -> Any:
    return site.sign(
        keys(user), "market.order.place", slot=slot, side=side, energy_wh=energy_wh, price=price
    )


def trade(
    site: Site,
    seller: User,
    buyer: User,
    energy_wh: int,
    price: int,
    slot: int,
    *,
    bid_wh: int | None = None,
) -> Contract:
    """The seller's ask rests, the buyer's bid (``bid_wh``, default the same) takes it: the
    contract made (the grid may have tailored it)."""
    commit(site, [order(site, seller, "sell", energy_wh, price, slot)])
    commit(site, [order(site, buyer, "buy", bid_wh or energy_wh, price, slot)])
    made: Contract = Contract.objects.order_by("-height", "-index").first()
    assert (made.seller, made.buyer) == (address(seller), address(buyer))
    return made


def shortfall(site: Site, seller: User, buyer: User) -> Contract:
    """A contract the seller never delivers (it has no meter), settled as soon as it is due:
    the seller then has an unsettled default (``market/defaults/<seller>``)."""
    slot = slot_at(site)
    made = trade(site, seller, buyer, 200, 100, slot)
    due = slot + 2 * SLOT_MS + 1  # the slot, then the settlement delay (15 min by default)
    commit(site, [site.sign(OPERATOR, "market.slot.settle", slot=slot)], timestamp_ms=due)
    assert site.state.get(f"market/defaults/{address(seller)}")["unsettled"] == 1
    return made


def pending() -> list[dict[str, Any]]:
    """What the site submitted: type and payload, in order."""
    rows = SubmittedTransaction.objects.order_by("id")
    return [{"type": row.body["type"], **row.body["payload"]} for row in rows]


# --- rebuilding ----------------------------------------------------------------------------------

READ_MODELS = (
    Feeder,
    FeederLoad,
    GridDeclaration,
    Suspension,
    Restriction,
    SupervisoryAct,
    ReviewItem,
    Notification,
    Contract,
)


def dump() -> dict[str, list[dict[str, Any]]]:
    """Every supervision row (and the contracts), by primary key; a feeder's load by its feeder
    and slot (its id is a counter a rebuild moves on)."""
    rows = {
        model.__name__: [model_to_dict(row) for row in model.objects.order_by("pk")]
        for model in READ_MODELS
    }
    rows["FeederLoad"] = [
        model_to_dict(row, exclude=["id"]) for row in FeederLoad.objects.order_by("slot", "feeder")
    ]
    return rows
