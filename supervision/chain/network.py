"""The grid and its supervisors as the market sees them: the provider of ``market.network``.

No Django import. The market asks (``market.chain.network``) whether an account may trade and
how much a match may carry; this module answers from supervision's state: the regulators'
suspensions and restrictions, the grid operator's declarations, feeders and limits
(``supervision.chain.schema``) and the security check (``supervision.chain.grid``).

The qualification audit's stops, in the order their codes are given: ``market_suspended``,
``account_restricted``, ``no_feeder``, ``feeder_suspended``, ``grid_high_load`` /
``grid_unstable`` (the market then checks the account's defaults). Stops are read only when
``grid/stops`` says some exist, and limits only when a feeder is published, so a market
without a grid pays one key read per order.
"""

from __future__ import annotations

from ledger.application import TxFailed
from ledger.state import State
from market.chain.network import Allowance, NetworkView
from market.chain.options import ELECTRICITY
from market.chain.schema import Contract
from supervision.chain import grid
from supervision.chain.schema import (
    MARKET_SUSPENDED_KEY,
    any_published,
    any_stops,
    carrier_of_feeder,
    declaration,
    feeder_of,
    feeder_suspended_key,
    restriction,
    suspension,
    topology_key,
)


def check_feeder(state: State, feeder: str, now: int) -> None:
    """Trading on ``feeder`` is neither suspended by a regulator nor stopped by the grid
    operator's declaration (of the feeder or of the whole grid)."""
    suspended = suspension(state, feeder_suspended_key(feeder), now)
    if suspended is not None:
        raise TxFailed("feeder_suspended", suspended["reason"])
    declared = declaration(state, feeder)
    if declared is not None:
        raise TxFailed(
            f"grid_{declared['state']}", "the grid operator declared the grid not normal"
        )


class GridView:
    """The grid as one transaction's matches see it. Feeders, and whether trading on them is
    stopped, cannot change within a transaction, so each is read once however many matches
    the transaction makes; loads are read at every match."""

    def __init__(
        self, state: State, now: int, trading: str | None = None, carrier: str = ELECTRICITY
    ) -> None:
        """``trading``: a feeder the transaction's qualification audit found trading;
        ``carrier``: whose network (feeders, or the heating network's segments)."""
        self.state = state
        self.now = now
        self.carrier = carrier
        self._feeders: dict[str, str | None] = {}
        self._published: dict[str, bool] = {}
        # feeder -> the code that stops it, "" if none
        self._stops: dict[str, str] = {trading: ""} if trading else {}
        self._any_stops = any_stops(state)
        # Nothing to check at all: no stops and no limits anywhere (a market without a grid).
        self._unconstrained = not self._any_stops and not any_published(state)

    def feeders(self, seller: str, buyer: str) -> tuple[str | None, str | None]:
        found = self._feeders
        for address in (seller, buyer):
            if address not in found:
                found[address] = feeder_of(self.state, address, self.carrier)
        return found[seller], found[buyer]

    def limited(self, seller: str, buyer: str) -> tuple[str | None, str | None]:
        """Their feeders (seller's, buyer's) that have published limits, else None."""
        if self._unconstrained:
            return None, None
        published = self._published
        result = []
        for feeder in self.feeders(seller, buyer):
            if feeder is not None and feeder not in published:
                # Limits count for the network of this view's carrier only.
                found = self.state.get(topology_key(feeder))
                published[feeder] = found is not None and carrier_of_feeder(found) == self.carrier
            result.append(feeder if feeder is not None and published[feeder] else None)
        return result[0], result[1]

    def _stop(self, feeder: str) -> str:
        if not self._any_stops:
            return ""
        code = self._stops.get(feeder)
        if code is None:
            try:
                check_feeder(self.state, feeder, self.now)
                code = ""
            except TxFailed as stopped:
                code = stopped.code
            self._stops[feeder] = code
        return code

    def allowed(self, *, seller: str, buyer: str, slot: int, energy_wh: int) -> Allowance:
        """What the grid lets a match carry. A party whose feeder has been suspended (or
        declared not normal) since its order rested trades nothing: the constraint says why."""
        if self._unconstrained:
            return grid.grid_check(
                self.state,
                seller=seller,
                buyer=buyer,
                slot=slot,
                energy_wh=energy_wh,
                feeders=(None, None),
            )
        feeders = self.feeders(seller, buyer)
        for feeder in feeders:
            if feeder is not None and (code := self._stop(feeder)):
                return Allowance(0, f"{code}:{feeder}")
        allowance = grid.grid_check(
            self.state,
            seller=seller,
            buyer=buyer,
            slot=slot,
            energy_wh=energy_wh,
            feeders=self.limited(seller, buyer),
        )
        if 0 <= allowance.energy_wh <= energy_wh:
            return allowance
        return allowance._replace(energy_wh=max(0, min(energy_wh, allowance.energy_wh)))

    def count(self, contract: Contract, energy_wh: int) -> None:
        """Record in ``contract`` the published feeders it counts in and add it to their load."""
        counted = self.limited(contract["seller"], contract["buyer"])
        if counted != (None, None):
            contract["feeders"] = grid.feeders_record(counted)  # type: ignore[typeddict-item]
        grid.load_add(self.state, contract, energy_wh)


class Grid:
    """The ``market.network`` provider (``market.chain.network.Network``)."""

    def qualify(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> str | None:
        stops = any_stops(state)
        suspended = suspension(state, MARKET_SUSPENDED_KEY, now) if stops else None
        if suspended is not None:
            raise TxFailed("market_suspended", suspended["reason"])
        restricted = restriction(state, address)
        if restricted is not None:
            raise TxFailed("account_restricted", restricted["reason"])
        feeder = feeder_of(state, address, carrier)
        if feeder is None:
            where = "a feeder" if carrier == ELECTRICITY else f"a segment of its {carrier} network"
            raise TxFailed("no_feeder", f"the grid operator has not assigned the account {where}")
        if stops:
            check_feeder(state, feeder, now)
        return feeder

    def check_counterparty(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> None:
        feeder = feeder_of(state, address, carrier)
        if feeder is not None:
            check_feeder(state, feeder, now)

    def market_suspended(self, state: State, now: int) -> bool:
        return suspension(state, MARKET_SUSPENDED_KEY, now) is not None

    def view(
        self, state: State, now: int, trading: str | None = None, carrier: str = ELECTRICITY
    ) -> NetworkView:
        return GridView(state, now, trading, carrier)


GRID = Grid()
