"""Events in blocks (ledger protocol 3): what a handler emits is recorded for successful
transactions only, committed in the header's ``events_root``, checked by every verifier, and
provable one by one long after the state forgot what it describes."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from django.test import Client

from ledger import application as app
from ledger import blocks, crypto
from ledger.application import Context, Registry, TxFailed
from ledger.blocks import BadEventsRoot, MisplacedEvent
from ledger.identity import KeyPair
from ledger.state import State
from tests.ledger.chains import CHAIN, OPERATOR, REGULATOR

ADA = KeyPair(private_key=hashlib.sha256(b"events ada").digest())
VALIDATOR = KeyPair(private_key=hashlib.sha256(b"events validator").digest())


def _noisy(state: State, tx: Any, context: Context) -> None:
    """A test type: emits two events, then fails if asked to."""
    context.emit("test.first", {"n": tx.payload["n"]})
    context.emit("test.second", {"nested": {"list": [1, "two"]}})
    if tx.payload.get("fail"):
        raise TxFailed("asked_to_fail")


def _ledger() -> tuple[State, Registry]:
    state = app.genesis_state(
        chain=CHAIN,
        issuer_public_key=OPERATOR.public_key_hex,
        regulator_public_keys=[REGULATOR.public_key_hex],
    )
    registry = app.register_ledger_types(Registry())
    registry.register("test.noisy", senders={app.ANY_ROLE}, handler=_noisy)
    return state, registry


def _tx(nonce: int, **payload: Any) -> crypto.Transaction:
    return crypto.sign_transaction(
        keypair=OPERATOR, chain=CHAIN, type="test.noisy", nonce=nonce, payload=payload
    )


def test_a_block_records_the_events_of_its_successful_transactions_in_order() -> None:
    state, registry = _ledger()
    events: list[app.Event] = []
    txs = [_tx(0, n=1), _tx(1, n=2, fail=True), _tx(2, n=3)]
    results = app.execute(
        state, registry, txs, chain=CHAIN, height=1, timestamp_ms=1, events=events
    )
    assert results == ["ok", "asked_to_fail", "ok"]
    assert events == [
        {"tx": 0, "type": "test.first", "data": {"n": 1}},
        {"tx": 0, "type": "test.second", "data": {"nested": {"list": [1, "two"]}}},
        {"tx": 2, "type": "test.first", "data": {"n": 3}},
        {"tx": 2, "type": "test.second", "data": {"nested": {"list": [1, "two"]}}},
    ]


def test_an_event_must_be_canonical_json_of_a_named_type() -> None:
    context = Context(chain=CHAIN, height=1, timestamp_ms=1, tx_id="00", sender_role="household")
    with pytest.raises(crypto.NonCanonicalValue):
        context.emit("test.float", {"price": 0.5})
    with pytest.raises(ValueError, match="name"):
        context.emit("Not A Name", {})
    record = {"energy_wh": 1}
    context.emit("test.copy", record)
    record["energy_wh"] = 2  # the handler changes its record afterwards: the event keeps 1
    assert context.events == [{"type": "test.copy", "data": {"energy_wh": 1}}]


def _block_with_events() -> blocks.Block:
    state, registry = _ledger()
    events: list[app.Event] = []
    txs = [_tx(0, n=1), _tx(1, n=2, fail=True), _tx(2, n=3)]
    results = app.execute(
        state, registry, txs, chain=CHAIN, height=1, timestamp_ms=1, events=events
    )
    return blocks.propose_block(
        keypair=VALIDATOR,
        chain=CHAIN,
        height=1,
        previous_hash="00" * 32,
        timestamp_ms=1,
        proposer=0,
        transactions=txs,
        results=results,
        events=events,
        state_root=state.root(),
    )


def test_verification_checks_the_events_against_the_header() -> None:
    block = _block_with_events()
    blocks.check_events(block)  # as proposed: fine
    assert (
        block.header.events_root
        == crypto.merkle_tree_hash([crypto.canonical(event) for event in block.events]).hex()
    )
    changed = dict(block.events[0]) | {"data": {"n": 99}}
    with pytest.raises(BadEventsRoot):
        blocks.check_events(dataclasses.replace(block, events=(changed, *block.events[1:])))
    with pytest.raises(BadEventsRoot):
        blocks.check_events(dataclasses.replace(block, events=block.events[:-1]))
    # Events of a failed transaction, or out of order, are misplaced even with a matching root.
    for misplaced in (
        [{"tx": 1, "type": "test.first", "data": {}}],
        [block.events[2], block.events[0]],
        [{"tx": 3, "type": "test.first", "data": {}}],
    ):
        header = dataclasses.replace(block.header, events_root=blocks.events_root_of(misplaced))
        with pytest.raises(MisplacedEvent):
            blocks.check_events(dataclasses.replace(block, header=header, events=tuple(misplaced)))


def test_an_event_is_proven_by_its_audit_path() -> None:
    block = _block_with_events()
    root = bytes.fromhex(block.header.events_root)
    for index, event in enumerate(block.events):
        path = [bytes.fromhex(h) for h in blocks.event_proof(block.events, index)]
        crypto.verify_inclusion(crypto.canonical(event), index, len(block.events), path, root)
        forged = crypto.canonical(dict(event) | {"data": {"n": 1_000}})
        with pytest.raises(crypto.InvalidInclusionProof):
            crypto.verify_inclusion(forged, index, len(block.events), path, root)


def test_a_block_round_trips_with_its_events() -> None:
    block = _block_with_events()
    assert blocks.block_from_json(blocks.block_to_json(block)) == block


# --- settled history, proven from outside ---------------------------------------------------------


@pytest.mark.django_db
def test_anyone_proves_a_settlement_result_after_its_contract_left_the_state(
    settings: Any, tmp_path: Any
) -> None:
    """A contract is made and its slot settles: the state forgets the contract, the public API
    still gives its result as an event of the settling block, with a proof an outsider checks
    against the header and the validators' certificate."""
    from market.chain import schema as market_schema
    from market.chain.options import market_options
    from tests.ledger.chains import HOUSEHOLDS, build_chain, recent_start_ms
    from tests.ledger.site import Site, use_network

    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    seller, buyer = HOUSEHOLDS[5], HOUSEHOLDS[6]
    for who in (seller, buyer):
        site.register(who.address, who.public_key_hex, credits=100_000)
    site.commit(
        [
            site.sign(OPERATOR, "grid.feeder.assign", address=who.address, feeder="feeder-1")
            for who in (seller, buyer)
        ]
    )
    options = market_options(site.state)
    now = site.blocks[-1].timestamp_ms + 5_000
    slot = (
        now + options.gate_closure_ms
    ) // options.slot_ms * options.slot_ms + 2 * options.slot_ms
    trade = [
        site.sign(seller, "market.order.place", slot=slot, side="sell", energy_wh=1_000, price=20),
        site.sign(buyer, "market.order.place", slot=slot, side="buy", energy_wh=1_000, price=20),
    ]
    assert list(site.commit(trade).results) == ["ok", "ok"]
    due = slot + options.slot_ms + options.settlement_delay_ms
    settle = site.sign(OPERATOR, "market.slot.settle", slot=slot)
    settled = site.commit([settle], timestamp_ms=due)
    assert list(settled.results) == ["ok"]
    contract_id = f"{slot}-0"
    assert site.state.get(market_schema.contract_key(contract_id)) is None

    index = next(
        i for i, event in enumerate(settled.events) if event["type"] == "market.contract_settled"
    )
    answer = Client().get(f"/api/v1/ledger/blocks/{settled.height}/events/{index}")
    assert answer.status_code == 200
    found = answer.json()
    event = found["event"]
    assert (event["type"], event["data"]["contract"]) == ("market.contract_settled", contract_id)
    assert (event["data"]["delivered_wh"], event["data"]["penalty"]) == (0, 4)  # no meter data
    # What an outsider does with the answer, from docs/ledger.md alone:
    proof = found["proof"]

    def included(candidate: dict[str, Any]) -> None:
        crypto.verify_inclusion(
            crypto.canonical(candidate),
            proof["index"],
            proof["tree_size"],
            [bytes.fromhex(h) for h in proof["path"]],
            bytes.fromhex(found["header"]["events_root"]),
        )

    included(event)
    header = blocks.BlockHeader.from_json(found["header"])
    assert blocks.block_hash(header) == found["block_hash"] == settled.hash
    votes = [blocks.CommitSignature(**vote) for vote in found["certificate"]]
    blocks.verify_certificate(header, votes, validators=list(chain.genesis.validators))
    # A result changed on the way does not verify.
    forged = dict(event) | {"data": event["data"] | {"penalty": 0}}
    with pytest.raises(crypto.InvalidInclusionProof):
        included(forged)
    # The explorer's block page lists the events, each with a link to its proof.
    page = Client().get(f"/ledger/blocks/{settled.height}/").content.decode()
    assert "market.contract_settled" in page
    assert f"/api/v1/ledger/blocks/{settled.height}/events/{index}" in page
    assert settled.header.events_root in page
    missing = Client().get(f"/api/v1/ledger/blocks/{settled.height}/events/{len(settled.events)}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
