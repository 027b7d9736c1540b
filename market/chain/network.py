"""What the market asks of the grid and its supervisors: the ``market.network`` hook.

No Django import. The market executes orders, offers and contracts; whether an account may trade
at all (suspensions, restrictions, its feeder) and how much energy a match may carry (the grid
security check) belong to the application that owns the grid and supervision
(``supervision.chain``), which sits above the market in the stack. So the market declares here
the interface it needs, and that application provides it at the hook point :data:`NETWORK`
(``registry.hook(NETWORK, provider)``), the way the ledger offers its spend guards to the market.
Without a provider the market runs on :data:`UNCONSTRAINED`: no feeders, no stops, no limits.

Every method is deterministic: it reads ``state`` and the block time ``now`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from ledger.state import State
from market.chain.options import ELECTRICITY
from market.chain.schema import Contract

NETWORK = "market.network"


class Allowance(NamedTuple):
    energy_wh: int  # how much of the match the grid can carry, 0 <= energy_wh <= asked
    constraint: str = ""  # what binds when energy_wh is less than asked, e.g. "export:<feeder>"


class NetworkView(Protocol):
    """The grid as one transaction's matches see it (it may remember what cannot change within
    a transaction)."""

    def allowed(self, *, seller: str, buyer: str, slot: int, energy_wh: int) -> Allowance:
        """What the grid lets a match of ``energy_wh`` from ``seller`` to ``buyer`` carry."""
        ...

    def count(self, contract: Contract, energy_wh: int) -> None:
        """Count a contract just made in the grid's load, recording in it (``feeders``) where it
        was counted."""
        ...


class Network(Protocol):
    def qualify(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> str | None:
        """The stops that keep ``address`` from trading ``carrier`` now, in order, as
        ``TxFailed``: ``market_suspended``, ``account_restricted``, ``no_feeder`` (no feeder, or
        for heat no segment of the heating network), ``feeder_suspended``, ``grid_high_load`` /
        ``grid_unstable``. Returns the account's feeder (segment), if it has one."""
        ...

    def check_counterparty(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> None:
        """A counterparty (an offer's seller) whose feeder is stopped may not trade now."""
        ...

    def market_suspended(self, state: State, now: int) -> bool:
        """Whether trading is suspended for the whole market (no call auction runs)."""
        ...

    def view(
        self, state: State, now: int, trading: str | None = None, carrier: str = ELECTRICITY
    ) -> NetworkView:
        """A view of ``carrier``'s network for one transaction's matches; ``trading``: a feeder
        its qualification audit has just found trading."""
        ...


class _Unlimited:
    def allowed(self, *, seller: str, buyer: str, slot: int, energy_wh: int) -> Allowance:
        return Allowance(energy_wh)

    def count(self, contract: Contract, energy_wh: int) -> None:
        return None


class _Unconstrained:
    """A market with no grid behind it: nobody is stopped and every match carries in full."""

    def qualify(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> str | None:
        return None

    def check_counterparty(
        self, state: State, address: str, now: int, carrier: str = ELECTRICITY
    ) -> None:
        return None

    def market_suspended(self, state: State, now: int) -> bool:
        return False

    def view(
        self, state: State, now: int, trading: str | None = None, carrier: str = ELECTRICITY
    ) -> NetworkView:
        return _Unlimited()


UNCONSTRAINED: Network = _Unconstrained()


def network(hooks: Mapping[str, tuple[Any, ...]]) -> Network:
    """The network provided at :data:`NETWORK` (the last one, if several), else none."""
    provided = hooks.get(NETWORK, ())
    found: Network = provided[-1] if provided else UNCONSTRAINED
    return found
