"""Supervision's read models against the chain (``ledger.read_model_audit``; named in
``settings.LEDGER_READ_MODEL_AUDITS``).

Against the state at the audited height (``supervision.chain.schema``), both ways (rows the
chain has and the site does not, and the reverse) and field by field, for what is live:

* ``Feeder`` against ``grid/topology/<feeder>`` (limits, published when and in which block) and
  ``grid/state/feeder/<feeder>`` (its declared state, reason and since when; absent: normal);
* ``GridDeclaration`` against ``grid/state/grid``;
* ``Suspension`` against ``supervision/suspended/market`` and ``.../feeder/<feeder>``;
* ``Restriction`` against ``supervision/restricted/<address>``;
* ``MarketAccount.feeder`` against ``grid/feeder/<address>`` and ``.heat_segment`` against
  ``grid/feeder.heat/<address>`` (absent: ``""``); a ``Feeder``'s ``carrier`` against its
  topology's;
* ``FeederLoad`` against ``grid/load/<slot>/<feeder>`` (row named ``<slot ms>/<feeder>``).

Against the events of the blocks up to the audited height, for history (found through the
site's transaction index: only the blocks with a successful supervisory transaction or
settlement are read, not the chain):

* ``FeederLoad`` of a settled slot against its ``grid.loads_settled``;
* ``SupervisoryAct``: every act's event has its row, with its type, actor and role, reason,
  scope, address or contract, the households it touched, block and time, and every row is an
  act's (resumptions, reinstatements, resets, replaced declarations and topologies included);
* ``ReviewItem``: its status and deciding act follow the last act on its contract (none:
  pending);
* the market's ``Contract`` rows of contracts acted on that have left the state (settled):
  ``energy_wh``, ``escrow``, ``deposit``, ``vetoed`` and ``acts`` as the acts' events left them
  (supervision writes them; the market's audit compares live contracts whole).

Not yet: which contracts went to review and why (the rules read the state of their block), and
notifications (whether one was read is site data).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ledger import application
from ledger.models import BlockRecord, TransactionRecord
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.read_model_audit import Comparison, Difference
from ledger.state import State
from market import chain as market_chain
from market.chain import schema as market_schema
from market.chain.options import HEAT
from market.models import Contract, MarketAccount
from supervision import chain
from supervision.chain import schema
from supervision.models import (
    Feeder,
    FeederLoad,
    GridDeclaration,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)
from supervision.projection import ACT_EVENTS, CONTRACT_EVENTS, REVIEW_STATUS, act_columns

CHUNK = 2_000
# The transactions whose blocks hold the events audited here: every supervisory act, and the
# settlements (the loads they remove).
AUDITED_TYPES = sorted({*chain.TYPES} - {chain.FEEDER_ASSIGN} | {market_chain.SLOT_SETTLE})


def audit(*, height: int, state: State) -> list[Difference]:
    found = Comparison(height)
    history = _history(height)
    _feeders(found, state)
    _grid_declaration(found, state)
    _loads(found, state, history)
    _suspensions(found, state)
    _restrictions(found, state)
    _market_accounts(found, state)
    _acts(found, state, history)
    _review(found, history)
    _contracts(found, state, history)
    return found.differences


@dataclass
class _History:
    """What the blocks' events say, up to the audited height."""

    # tx id -> the SupervisoryAct columns its act's event gives (with its type: the tx's)
    acts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # contract id -> the data of each act's event on it, in order
    contract_acts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # "<slot ms>/<feeder>" -> the load the slot left when it settled
    settled_loads: dict[str, dict[str, int]] = field(default_factory=dict)


def _history(height: int) -> _History:
    found = _History()
    heights = TransactionRecord.objects.filter(
        type__in=AUDITED_TYPES, result="ok", block__height__lte=height
    ).values("block__height")
    bodies = BlockRecord.objects.filter(height__in=heights).order_by("height")
    for body in bodies.values_list("body", flat=True).iterator(CHUNK):
        for event in body.get("events", []):
            type_, data = event["type"], event["data"]
            if type_ in ACT_EVENTS:
                record = data["act"] if type_ in CONTRACT_EVENTS else data
                tx_type = body["transactions"][event["tx"]]["type"]
                found.acts[record["tx"]] = {"type": tx_type, **act_columns(type_, data)}
            if type_ in CONTRACT_EVENTS:
                found.contract_acts.setdefault(data["contract"], []).append(data)
            elif type_ == schema.LOADS_SETTLED:
                for feeder, load in data["loads"].items():
                    found.settled_loads[f"{data['slot']}/{feeder}"] = load
    return found


def _under(state: State, prefix: str) -> Iterator[tuple[str, Any]]:
    """(suffix, value) of every key under ``prefix``."""
    for key in state.keys(prefix):
        yield key[len(prefix) :], state.get(key)


def _both_ways(
    found: Comparison,
    model: type[Any],
    chain: dict[str, dict[str, Any]],
    site: dict[str, dict[str, Any]],
) -> None:
    """Rows by name: the chain's expected fields against the site's row."""
    for name in sorted(chain.keys() | site.keys()):
        if name not in site:
            found.missing(model, name)
        elif name not in chain:
            found.stray(model, name)
        else:
            found.fields(model, name, chain[name], site[name])


def _signed(record: dict[str, Any]) -> dict[str, Any]:
    """What the projection copies of every act's record (``supervision.projection._signed``)."""
    return {
        "reason": record["reason"],
        "by": record["by"],
        "tx": record["tx"],
        "height": record["height"],
        "since": datetime_of_ms(record["timestamp_ms"]),
    }


def _feeders(found: Comparison, state: State) -> None:
    chain = {}
    for name, published in _under(state, schema.TOPOLOGY_PREFIX):
        declared = state.get(schema.state_key(f"feeder:{name}"))
        chain[name] = {
            "carrier": schema.carrier_of_feeder(published),
            "export_limit_w": published["export_limit_w"],
            "import_limit_w": published["import_limit_w"],
            "published_height": published["height"],
            "published_at": datetime_of_ms(published["timestamp_ms"]),
            "state": declared["state"] if declared else "normal",
            "state_reason": declared["reason"] if declared else "",
            "state_since": datetime_of_ms(declared["timestamp_ms"]) if declared else None,
        }
    site = {row["name"]: row for row in Feeder.objects.values()}
    _both_ways(found, Feeder, chain, site)


def _grid_declaration(found: Comparison, state: State) -> None:
    declared = state.get(schema.GRID_STATE_KEY)
    chain = {"grid": {"state": declared["state"], **_signed(declared)}} if declared else {}
    site = {row["scope"]: row for row in GridDeclaration.objects.values()}
    _both_ways(found, GridDeclaration, chain, site)


def _loads(found: Comparison, state: State, history: _History) -> None:
    """Live loads against the state, a settled slot's against the event that removed them."""
    chain = dict(history.settled_loads)
    chain |= {
        rest: {"export_wh": value["export_wh"], "import_wh": value["import_wh"]}
        for rest, value in _under(state, schema.LOAD_PREFIX)
    }
    site = {
        f"{ms_of_datetime(row['slot'])}/{row['feeder']}": row
        for row in FeederLoad.objects.values("feeder", "slot", "export_wh", "import_wh").iterator(
            CHUNK
        )
    }
    _both_ways(found, FeederLoad, chain, site)


def _suspension_records(state: State) -> dict[str, dict[str, Any]]:
    """Every stored suspension by the scope its row is named by (lapsed ones too: the row stays
    until a block ends it, as the key does)."""
    keyed = {
        f"feeder:{name}": value for name, value in _under(state, schema.FEEDER_SUSPENDED_PREFIX)
    }
    market = state.get(schema.MARKET_SUSPENDED_KEY)
    if market is not None:
        keyed["market"] = market
    return keyed


def _suspensions(found: Comparison, state: State) -> None:
    chain = {
        scope: {
            **_signed(value),
            "until": datetime_of_ms(value["until"]) if value["until"] else None,
        }
        for scope, value in _suspension_records(state).items()
    }
    site = {row["scope"]: row for row in Suspension.objects.values()}
    _both_ways(found, Suspension, chain, site)


def _restrictions(found: Comparison, state: State) -> None:
    chain = {
        address: {
            **_signed(value),
            "cancelled_orders": value["cancelled_orders"],
            "cancelled_offers": value["cancelled_offers"],
        }
        for address, value in _under(state, schema.RESTRICTED_PREFIX)
    }
    site = {row["address"]: row for row in Restriction.objects.values()}
    _both_ways(found, Restriction, chain, site)


def _market_accounts(found: Comparison, state: State) -> None:
    """A household's feeder and heat segment, on the market's account row (supervision
    projects them there)."""
    feeders = dict(_under(state, schema.FEEDER_PREFIX))
    segments = dict(_under(state, schema.feeder_key("", HEAT)))
    seen = set()
    rows = MarketAccount.objects.values_list("address", "feeder", "heat_segment")
    for address, feeder, segment in rows.iterator(CHUNK):
        seen.add(address)
        if application.account(state, address) is not None:  # else the market's audit says so
            found.fields(
                MarketAccount,
                address,
                {"feeder": feeders.get(address, ""), "heat_segment": segments.get(address, "")},
                {"feeder": feeder, "heat_segment": segment},
            )
    for address in sorted((set(feeders) | set(segments)) - seen):
        # A row missing for an account with a locked margin is the market's audit's to report.
        if not market_schema.locked(state, address):
            found.missing(MarketAccount, address)


# --- the audit log, the review queue, the acts on contracts -------------------------------------

ACT_FIELDS = (
    "type",
    "actor",
    "actor_role",
    "reason",
    "scope",
    "address",
    "contract",
    "affected",
    "height",
    "at",
)


def _acts(found: Comparison, state: State, history: _History) -> None:
    roles: dict[str, str] = {}
    chain = {}
    for tx, columns in history.acts.items():
        actor = columns["actor"]
        if actor not in roles:
            roles[actor] = (application.account(state, actor) or {}).get("role", "")
        chain[tx] = columns | {"actor_role": roles[actor]}
    site = {
        row["tx"]: row for row in SupervisoryAct.objects.values("tx", *ACT_FIELDS).iterator(CHUNK)
    }
    _both_ways(found, SupervisoryAct, chain, site)


def _review(found: Comparison, history: _History) -> None:
    """A review item's status follows the last act on its contract (none: pending)."""
    for contract_id, status, decided_by in ReviewItem.objects.values_list(
        "contract_id", "status", "decided_by"
    ).iterator(CHUNK):
        acts = history.contract_acts.get(contract_id)
        last = acts[-1]["act"] if acts else None
        expected = (
            {"status": REVIEW_STATUS[last["act"]], "decided_by": last["tx"]}
            if last
            else {"status": "pending", "decided_by": ""}
        )
        found.fields(
            ReviewItem, contract_id, expected, {"status": status, "decided_by": decided_by}
        )


CONTRACT_FIELDS = ("energy_wh", "escrow", "deposit", "vetoed", "acts")


def _contracts(found: Comparison, state: State, history: _History) -> None:
    """The rows of the contracts acted on whose records left the state (their slot settled):
    what the last act's event says stands, and every act, in order. A missing row is the
    market's audit's to report."""
    gone = [
        contract_id
        for contract_id in sorted(history.contract_acts)
        if market_schema.contract(state, contract_id) is None
    ]
    for start in range(0, len(gone), 500):
        ids = gone[start : start + 500]
        for row in Contract.objects.filter(id__in=ids).values("id", *CONTRACT_FIELDS):
            acts = history.contract_acts[row["id"]]
            expected = {name: acts[-1][name] for name in CONTRACT_FIELDS if name != "acts"}
            expected["acts"] = [data["act"] for data in acts]
            found.fields(Contract, row["id"], expected, row)
