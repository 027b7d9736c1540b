"""A chain recorded before the restructuring into chain packages replays to the same results and
roots with today's code: the validators' rules did not change (tests/fixtures/reference_chain.json,
made by tests/fixtures/make_reference_chain.py). Its results are those first recorded at the
commit it names; its roots are those of the protocol it names (re-recorded, with the same
results, when the state root became the trie's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ledger.application import Event, execute, genesis_state
from ledger.crypto import Transaction, canonical, loads
from ledger.registry import build_registry
from ledger.state import PROTOCOL_VERSION, State

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reference_chain.json"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return document


def _genesis(recorded: dict[str, Any]) -> State:
    arguments = {k: v for k, v in recorded["genesis"].items() if k != "state_root"}
    return genesis_state(**arguments)


def test_it_replays_every_block_to_the_recorded_results_and_roots(recorded: dict[str, Any]) -> None:
    assert recorded["protocol"] == PROTOCOL_VERSION
    state = _genesis(recorded)
    assert state.root() == recorded["genesis"]["state_root"]
    registry = build_registry(settings.LEDGER_APPLICATIONS)
    chain = recorded["genesis"]["chain"]
    for block in recorded["blocks"]:
        txs = [Transaction.from_json(loads(text)) for text in block["transactions"]]
        assert [canonical(tx.to_json()).decode() for tx in txs] == block["transactions"]
        events: list[Event] = []
        results = execute(
            state,
            registry,
            txs,
            chain=chain,
            height=block["height"],
            timestamp_ms=block["timestamp_ms"],
            events=events,
        )
        assert results == block["results"], block["height"]
        assert events == block["events"], block["height"]
        assert state.root() == block["state_root"], block["height"]
    assert state.to_json() == recorded["final_state"]


def test_it_covers_every_registered_type_with_a_success_and_a_refusal(
    recorded: dict[str, Any],
) -> None:
    outcomes: dict[str, set[bool]] = {}
    for block in recorded["blocks"]:
        for text, result in zip(block["transactions"], block["results"], strict=True):
            tx_type = Transaction.from_json(loads(text)).type
            outcomes.setdefault(tx_type, set()).add(result == "ok")
    registry = build_registry(settings.LEDGER_APPLICATIONS)
    assert {name: outcomes.get(name) for name in registry.types} == {
        name: {True, False} for name in registry.types
    }


def test_it_notices_a_rule_that_changed(recorded: dict[str, Any]) -> None:
    """The replay is a real check: without the market's spend guard the recorded refusals
    ``insufficient_free_balance`` of credit.transfer and credit.redeem come out otherwise."""
    registry = build_registry(settings.LEDGER_APPLICATIONS)
    registry.hooks.pop("ledger.spend_guards")
    state = _genesis(recorded)
    differs = False
    for block in recorded["blocks"]:
        txs = [Transaction.from_json(loads(text)) for text in block["transactions"]]
        results = execute(
            state,
            registry,
            txs,
            chain=recorded["genesis"]["chain"],
            height=block["height"],
            timestamp_ms=block["timestamp_ms"],
        )
        if results != block["results"] or state.root() != block["state_root"]:
            differs = True
            break
    assert differs
