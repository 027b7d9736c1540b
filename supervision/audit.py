"""Supervision's read models against the chain (``ledger.read_model_audit``; named in
``settings.LEDGER_READ_MODEL_AUDITS``).

Against the state at the audited height (``supervision.chain.schema``), both ways (rows the
chain has and the site does not, and the reverse) and field by field:

* ``Feeder`` against ``grid/topology/<feeder>`` (limits, published when and in which block) and
  ``grid/state/feeder/<feeder>`` (its declared state, reason and since when; absent: normal);
* ``GridDeclaration`` against ``grid/state/grid``;
* ``FeederLoad`` against ``grid/load/<slot>/<feeder>`` (row named ``<slot ms>/<feeder>``);
* ``Suspension`` against ``supervision/suspended/market`` and ``.../feeder/<feeder>``;
* ``Restriction`` against ``supervision/restricted/<address>``;
* ``MarketAccount.feeder`` against ``grid/feeder/<address>`` (absent: ``""``);
* ``SupervisoryAct``: every act whose record is in the state (a published feeder's topology, a
  declaration, a suspension, a restriction, the acts on a contract) has its row, with its type,
  actor and role, reason, scope, address or contract, block and time;
* ``ReviewItem``: its status and deciding act follow the last act on its contract.

Not yet (history no longer in the state; the blocks' events will give it): the acts that left
no record (resumptions, reinstatements, resets of defaults, replaced declarations and
topologies), which contracts went to review and why, and notifications (whether one was read is
site data).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger import application
from ledger.projection import datetime_of_ms, ms_of_datetime
from ledger.read_model_audit import Comparison, Difference
from ledger.state import State
from market.chain import schema as market_schema
from market.models import MarketAccount
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
from supervision.projection import REVIEW_STATUS

CHUNK = 2_000
ACT_TYPES = {"veto": chain.VETO, "curtail": chain.CURTAIL, "clear": chain.CLEAR}


def audit(*, height: int, state: State) -> list[Difference]:
    found = Comparison(height)
    _feeders(found, state)
    _grid_declaration(found, state)
    _loads(found, state)
    _suspensions(found, state)
    _restrictions(found, state)
    _market_accounts(found, state)
    _acts(found, state)
    _review(found, state)
    return found.differences


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


def _loads(found: Comparison, state: State) -> None:
    chain = {
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
    """A household's feeder, on the market's account row (supervision projects it there)."""
    chain = dict(_under(state, schema.FEEDER_PREFIX))
    seen = set()
    rows = MarketAccount.objects.values_list("address", "feeder").iterator(CHUNK)
    for address, feeder in rows:
        seen.add(address)
        if application.account(state, address) is not None:  # else the market's audit says so
            found.fields(
                MarketAccount, address, {"feeder": chain.get(address, "")}, {"feeder": feeder}
            )
    for address in sorted(set(chain) - seen):
        # A row missing for an account with a locked margin is the market's audit's to report.
        if not market_schema.locked(state, address):
            found.missing(MarketAccount, address)


# --- the audit log and the review queue -----------------------------------------------------------


def _act(
    record: dict[str, Any],
    state: State,
    type_: str,
    *,
    scope: str = "",
    address: str = "",
    contract: str = "",
) -> dict[str, Any]:
    """The ``SupervisoryAct`` row of the act whose record (who, when, why) is ``record``."""
    actor = application.account(state, record["by"]) or {}
    return {
        "type": type_,
        "actor": record["by"],
        "actor_role": actor.get("role", ""),
        "reason": record.get("reason", ""),
        "scope": scope,
        "address": address,
        "contract": contract,
        "height": record["height"],
        "at": datetime_of_ms(record["timestamp_ms"]),
    }


def _acts_in_state(state: State) -> dict[str, dict[str, Any]]:
    """The acts whose records the state keeps, by transaction id."""
    acts = {}
    for name, published in _under(state, schema.TOPOLOGY_PREFIX):
        acts[published["tx"]] = _act(published, state, chain.FEEDER_PUBLISH, scope=f"feeder:{name}")
    declarations = [state.get(schema.GRID_STATE_KEY)] + [
        value for _, value in _under(state, schema.FEEDER_STATE_PREFIX)
    ]
    for declared in filter(None, declarations):
        acts[declared["tx"]] = _act(declared, state, chain.STATE_DECLARE, scope=declared["scope"])
    for scope, value in _suspension_records(state).items():
        acts[value["tx"]] = _act(value, state, chain.SUSPEND, scope=scope)
    for address, value in _under(state, schema.RESTRICTED_PREFIX):
        acts[value["tx"]] = _act(value, state, chain.RESTRICT, address=address)
    for contract_id, made in _under(state, market_schema.CONTRACT_PREFIX):
        for record in made.get("acts", []):
            acts[record["tx"]] = _act(record, state, ACT_TYPES[record["act"]], contract=contract_id)
    return acts


ACT_FIELDS = (
    "type",
    "actor",
    "actor_role",
    "reason",
    "scope",
    "address",
    "contract",
    "height",
    "at",
)


def _acts(found: Comparison, state: State) -> None:
    chain = _acts_in_state(state)
    txs = sorted(chain)
    site: dict[str, dict[str, Any]] = {}
    for start in range(0, len(txs), 500):
        rows = SupervisoryAct.objects.filter(tx__in=txs[start : start + 500])
        site |= {row["tx"]: row for row in rows.values("tx", *ACT_FIELDS)}
    # Acts whose records the state no longer keeps are history: not compared yet.
    for tx in txs:
        if tx not in site:
            found.missing(SupervisoryAct, tx)
        else:
            found.fields(SupervisoryAct, tx, chain[tx], site[tx])


def _review(found: Comparison, state: State) -> None:
    """A review item's status follows the last act on its contract (none: pending)."""
    for contract_id, status, decided_by in ReviewItem.objects.values_list(
        "contract_id", "status", "decided_by"
    ).iterator(CHUNK):
        made = market_schema.contract(state, contract_id)
        if made is None:  # the market's audit reports the contract's row
            continue
        acts = made.get("acts", [])
        expected = (
            {"status": REVIEW_STATUS[acts[-1]["act"]], "decided_by": acts[-1]["tx"]}
            if acts
            else {"status": "pending", "decided_by": ""}
        )
        found.fields(
            ReviewItem, contract_id, expected, {"status": status, "decided_by": decided_by}
        )
