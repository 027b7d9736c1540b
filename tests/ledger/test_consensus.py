"""The consensus state machine, alone and in a seeded simulated network (tests/ledger/sim.py).

Every simulated scenario runs over many seeds; a failing test's id names its seed, and so does its
assertion message. Each asserts safety (honest validators' stores agree at every height, are
hash-linked, hold only valid blocks, each with a certificate of >= 2f+1 distinct valid commit
signatures; no honest validator signed two blocks in one view or two commits at one height, nor
voted for an invalid block) and liveness (every tx is committed by every honest running validator
within the simulated time bound).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785

from ledger.consensus import (
    COMMIT,
    NEW_VIEW,
    PRECOMMIT,
    PREPARE,
    PROPOSE,
    VIEW_CHANGE,
    Certificate,
    Commit,
    Effect,
    Envelope,
    Fault,
    Node,
    Persist,
    PersistedState,
    Send,
    commit_statement,
    sign_envelope,
    vote_statement,
)
from tests.ledger.sim import CHAIN_ID, GENESIS_HASH, Block, Sim, SimApp, sim_config, validator_keys

SEEDS = range(150)
FEW_SEEDS = range(30)
TIME_BOUND_MS = 40_000
TXS = 12


def _seeded(seeds: range) -> Any:
    return pytest.mark.parametrize("seed", seeds, ids=[f"seed-{s}" for s in seeds])


def _run(sim: Sim, *, also: Callable[[], bool] = lambda: True) -> None:
    sim.add_workload(TXS, end_ms=1000)
    live = sim.run(TIME_BOUND_MS, lambda: also() and sim.all_committed())
    problems = sim.violations()
    assert not problems, f"seed {sim.seed}: safety violated: {problems[:5]}"
    assert live, (
        f"seed {sim.seed}: not every tx committed by every honest running validator within "
        f"{TIME_BOUND_MS} ms; heights {[len(d.chain) for d in sim.disks]}, up {sim.up}"
    )


# --- simulated scenarios ---------------------------------------------------------------------


@_seeded(SEEDS)
def test_it_commits_everything_with_all_honest_on_a_lossy_reordering_network(seed: int) -> None:
    sim = Sim(seed, drop=0.1, duplicate=0.1, redeliver=0.02, batch=4)
    _run(sim)
    assert len({tuple(sim.chain_hashes(i)) for i in range(4)}) == 1, f"seed {seed}"


@_seeded(SEEDS)
def test_it_stays_live_with_one_validator_crashed_from_the_start(seed: int) -> None:
    crashed = seed % 4
    sim = Sim(seed, crashed=[crashed], batch=4)
    _run(sim)
    assert sim.disks[crashed].chain == [], f"seed {seed}"


@_seeded(SEEDS)
def test_it_changes_view_when_the_height_1_proposer_crashes_mid_round(seed: int) -> None:
    sim = Sim(seed, batch=4)
    # The proposer of height 1, view 0 is validator (1 + 0) % 4 = 1: its PROPOSE reaches one peer,
    # then it crashes for good, before its PREPARE goes out.
    sim.crash_on_send[1] = (lambda envelope: envelope.kind == PROPOSE, 1)
    sim.doomed.add(1)
    sim.submit("tx-start")
    _run(sim)
    assert sim.nodes[1] is None, f"seed {seed}: the proposer did not crash"
    assert sim.disks[1].chain == [], f"seed {seed}: the proposer did not crash at height 1"
    assert sim.max_view > 0, f"seed {seed}: no view change happened"
    assert min(len(sim.disks[i].chain) for i in (0, 2, 3)) >= 2, f"seed {seed}: no later height"


@_seeded(SEEDS)
def test_it_is_safe_and_live_with_one_equivocating_validator(seed: int) -> None:
    liar = seed % 4
    sim = Sim(seed, faults={liar: Fault.EQUIVOCATE}, drop=0.05, duplicate=0.1, batch=4)
    _run(sim)
    assert sim.sent[PROPOSE] > 0


@_seeded(SEEDS)
def test_it_never_commits_invalid_blocks_with_one_validator_voting_for_them(seed: int) -> None:
    liar = seed % 4
    sim = Sim(seed, faults={liar: Fault.VOTE_INVALID}, drop=0.05, duplicate=0.1, batch=4)
    sim.submit("tx-start")  # validator 1 proposes at once; when it is the liar, a forged block
    _run(sim)
    if liar == 1:
        forged = [b for b in sim.registry.values() if not b.valid]
        assert forged, f"seed {seed}: the faulty validator never proposed an invalid block"


@_seeded(SEEDS)
def test_it_catches_up_after_a_crash_and_a_restart_from_persisted_state(seed: int) -> None:
    sim = Sim(seed, drop=0.05, duplicate=0.05, batch=4)
    plan = random.Random(seed + 10_000)
    victim = plan.randrange(4)
    crash_at = plan.randint(100, 1500)
    down_for = plan.randint(300, 3000)
    # Crash part-way through the effects of one of its calls (after a Persist, say, but before the
    # Sends it guards), or at the latest 300 ms later; restart from what its host made durable.
    sim.at(crash_at, lambda: sim.crash_after_effects.__setitem__(victim, plan.randint(0, 3)))
    sim.at(crash_at + 300, lambda: sim.crash(victim))
    sim.at(crash_at + down_for, lambda: sim.restart(victim))
    _run(sim, also=lambda: sim.restarts == 1)
    assert sim.restarts == 1, f"seed {seed}"
    assert sim.chain_hashes(victim) == sim.chain_hashes((victim + 1) % 4), f"seed {seed}"


@_seeded(SEEDS)
def test_it_tolerates_heavy_duplication_and_redelivery(seed: int) -> None:
    sim = Sim(seed, drop=0.05, duplicate=0.5, redeliver=0.3, batch=4)
    _run(sim)
    assert len({tuple(sim.chain_hashes(i)) for i in range(4)}) == 1, f"seed {seed}"


@_seeded(SEEDS)
def test_it_stays_safe_when_view_changes_race_commits(seed: int) -> None:
    # Timeouts barely above the network's delays: views change while votes are in flight, so
    # blocks get prepared in one view and must be carried into the next (the NEW-VIEW rule).
    faults = {seed % 4: Fault.EQUIVOCATE} if seed % 2 else {}
    sim = Sim(
        seed,
        faults=faults,
        drop=0.15,
        duplicate=0.1,
        max_delay_ms=80,
        base_timeout_ms=150,
        retransmit_ms=100,
        batch=4,
    )
    _run(sim)


@_seeded(FEW_SEEDS)
def test_it_catches_up_a_validator_from_peers_whose_memory_holds_less_than_the_chain(
    seed: int,
) -> None:
    # One block per transaction and two blocks in each node's memory: the validator that comes
    # back late needs heights its peers hold only on their disks.
    late = seed % 4
    sim = Sim(seed, crashed=[late], batch=1, window=2)
    sim.at(3_000, lambda: sim.restart(late))
    _run(sim, also=lambda: sim.restarts == 1)
    assert len(sim.disks[late].chain) >= TXS, f"seed {seed}"
    assert sim.history_reads > 0, f"seed {seed}: no block came from a host's history"
    assert all(node is None or len(node.recent) <= 2 for node in sim.nodes), f"seed {seed}"


_TWO_FAULTS = [
    {"lying": {0: Fault.EQUIVOCATE, 3: Fault.VOTE_INVALID}, "crashed": []},
    {"lying": {3: Fault.EQUIVOCATE}, "crashed": [0]},
    {"lying": {0: Fault.SILENT, 3: Fault.VOTE_INVALID}, "crashed": []},
]


@_seeded(FEW_SEEDS)
def test_it_is_safe_and_live_with_seven_validators_and_two_faults(seed: int) -> None:
    shape = _TWO_FAULTS[seed % 3]
    shift = seed % 7
    lying = {(i + shift) % 7: fault for i, fault in shape["lying"].items()}
    crashed = [(i + shift) % 7 for i in shape["crashed"]]
    sim = Sim(seed, n=7, faults=lying, crashed=crashed, drop=0.05, duplicate=0.1, batch=4)
    _run(sim)


def test_slow_blocks_lengthen_the_view_timer_instead_of_changing_views() -> None:
    """A network whose blocks take longer than the base timeout (messages up to 250 ms, four
    rounds to commit, a 300 ms timer): with the timer following the recent commit time
    (``timeout_margin``) the validators change views far less than with a fixed timer, and stay
    safe and live either way."""

    def later_view_votes(margin: int) -> int:
        votes = 0
        for seed in range(4):
            sim = Sim(
                seed,
                drop=0.0,
                duplicate=0.0,
                redeliver=0.0,
                max_delay_ms=250,
                base_timeout_ms=300,
                timeout_margin=margin,
                batch=2,
            )
            sim.add_workload(60, end_ms=20_000)
            assert sim.run(120_000, sim.all_committed), f"seed {seed}, margin {margin}"
            assert not sim.violations()
            votes += sum(1 for vote in sim.votes if vote[3])  # votes in a view above 0
        return votes

    fixed, adaptive = later_view_votes(0), later_view_votes(4)
    assert fixed > 0
    assert adaptive < fixed * 3 // 4


def test_it_proposes_nothing_while_idle() -> None:
    sim = Sim(7, drop=0.1, duplicate=0.1)
    assert sim.run(30_000) is False
    assert [len(d.chain) for d in sim.disks] == [0, 0, 0, 0]
    for kind in (PROPOSE, PREPARE, PRECOMMIT, COMMIT, VIEW_CHANGE, NEW_VIEW):
        assert sim.sent[kind] == 0, kind
    assert sim.max_view == 0


# --- unit tests on one node ------------------------------------------------------------------

CONFIG = sim_config(4, base_timeout_ms=1000, retransmit_ms=200, sync_interval_ms=5000)


def _node(index: int, *txs: str, **kwargs: Any) -> tuple[Node[Block], SimApp]:
    app = SimApp(index, {})
    for tx in txs:
        app.submit(tx)
    return Node(CONFIG, index, validator_keys(index), app, **kwargs), app


def _signed(sender: int, body: dict[str, Any]) -> Envelope:
    """What validator ``sender`` would send, through the wire format."""
    envelope = sign_envelope(validator_keys(sender), sender, body)
    return Envelope.from_json(json.loads(json.dumps(envelope.to_json())))


def _block(*txs: str, timestamp_ms: int = 10, proposer: int = 1) -> Block:
    return Block(1, GENESIS_HASH, timestamp_ms, proposer, txs)


def _propose(block: Block, view: int = 0) -> dict[str, Any]:
    return {
        "kind": PROPOSE,
        "chain": CHAIN_ID,
        "height": block.height,
        "view": view,
        "proposal": block.to_json(),
    }


def _sends(effects: list[Effect[Block]], kind: str | None = None) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and kind in (None, e.message.kind)]


def _votes(effects: list[Effect[Block]], kind: str) -> list[str]:
    return [send.message.body["block"] for send in _sends(effects, kind)]


def _prepare(sender: int, block: Block, view: int = 0) -> Envelope:
    return _signed(sender, vote_statement(PREPARE, CHAIN_ID, 1, view, block.hash))


def test_it_persists_a_vote_before_sending_it_and_never_double_signs_after_a_restart() -> None:
    node, _ = _node(2)
    x, y = _block("tx-1"), _block("tx-2")
    effects = node.on_message(_signed(1, _propose(x)))
    assert [type(e) for e in effects] == [Persist, Send]
    assert _votes(effects, PREPARE) == [x.hash]
    persist = effects[0]
    assert isinstance(persist, Persist)
    first_vote = _sends(effects, PREPARE)[0].message
    stored = PersistedState.from_json(json.loads(json.dumps(persist.state.to_json())))

    restarted, _ = _node(2, persisted=stored)
    assert restarted.on_message(_signed(1, _propose(y))) == []
    resent = _sends(restarted.on_tick(CONFIG.retransmit_ms), PREPARE)
    assert [s.message.body["block"] for s in resent] == [x.hash]
    assert resent[0].message.signature == first_vote.signature

    # Without its persisted state the same validator would have signed a second block.
    amnesiac, _ = _node(2)
    assert _votes(amnesiac.on_message(_signed(1, _propose(y))), PREPARE) == [y.hash]


def test_it_never_proposes_a_second_block_after_the_proposer_restarts() -> None:
    proposer, _ = _node(1, "tx-1")
    effects = proposer.on_tick(5)
    assert isinstance(effects[0], Persist)
    proposed = _sends(effects, PROPOSE)[0].message
    stored = PersistedState.from_json(effects[0].state.to_json())
    restarted, _ = _node(1, "tx-1", "tx-2", persisted=stored, now_ms=900)
    resent = _sends(restarted.on_tick(900 + CONFIG.retransmit_ms), PROPOSE)
    # The very same signed proposal, to each peer (none has voted for it yet).
    assert sorted(s.to for s in resent) == [0, 2, 3]
    assert {s.message.signature for s in resent} == {proposed.signature}


def test_it_resends_a_proposal_only_to_peers_that_have_not_voted_and_backs_off() -> None:
    proposer, _ = _node(1, "tx-1")
    effects = proposer.on_tick(5)
    block = _block("tx-1", timestamp_ms=5).hash
    assert _votes(effects, PREPARE) == [block]
    proposer.on_message(_signed(2, vote_statement(PREPARE, CHAIN_ID, 1, 0, block)))
    times, targets = [], []
    for now in range(10, CONFIG.base_timeout_ms, 5):
        resent = _sends(proposer.on_tick(now), PROPOSE)
        if resent:
            times.append(now)
            targets.append(sorted(s.to for s in resent))
    assert targets
    assert all(t == [0, 3] for t in targets)
    # After retransmit_ms, then twice that (the view times out before the next, at 4x).
    retransmit = CONFIG.retransmit_ms
    assert times[0] <= 5 + retransmit
    assert times[1] - times[0] == 2 * retransmit


def _view_change(sender: int, prepared: dict[str, Any] | None, view: int = 1) -> Envelope:
    body = {"kind": VIEW_CHANGE, "chain": CHAIN_ID, "height": 1, "view": view}
    return _signed(sender, {**body, "prepared": prepared})


def _new_view(changes: list[Envelope], block: Block, view: int = 1) -> Envelope:
    body = {"kind": NEW_VIEW, "chain": CHAIN_ID, "height": 1, "view": view}
    justification = [change.to_json() for change in changes]
    return _signed(
        (1 + view) % 4, {**body, "view_changes": justification, "proposal": block.to_json()}
    )


def _prepared_certificate(block: Block, signers: tuple[int, ...] = (0, 1, 3)) -> dict[str, Any]:
    return {
        "view": 0,
        "block": block.hash,
        "proposal": block.to_json(),
        "prepares": [[i, _prepare(i, block).signature] for i in signers],
    }


def test_it_rejects_a_new_view_without_valid_justification() -> None:
    x, y = _block("tx-1"), _block("tx-2", timestamp_ms=20, proposer=2)
    certificate = _prepared_certificate(x)
    cases: dict[str, tuple[list[Envelope], Block]] = {
        "no view-changes": ([], y),
        "below a quorum": ([_view_change(0, None), _view_change(1, None)], y),
        "one sender twice": (
            [_view_change(0, None), _view_change(0, None), _view_change(1, None)],
            y,
        ),
        "a proposal ignoring the prepared block": (
            [_view_change(0, None), _view_change(1, certificate), _view_change(2, None)],
            y,
        ),
        "a forged view-change": (
            [
                _view_change(0, None),
                _view_change(1, None),
                Envelope(2, _view_change(2, None).body, _view_change(1, None).signature),
            ],
            y,
        ),
        "view-changes for another view": ([_view_change(i, None, view=2) for i in (0, 1, 2)], y),
        "a prepared certificate below a quorum": (
            [
                _view_change(0, None),
                _view_change(1, {**certificate, "prepares": certificate["prepares"][:2]}),
                _view_change(2, None),
            ],
            x,
        ),
    }
    for name, (changes, proposal) in cases.items():
        node, _ = _node(3, "tx-2")
        assert _sends(node.on_message(_new_view(changes, proposal))) == [], name
        assert node.view == 0, name

    # The same NEW-VIEW, justified: the receiver moves to view 1 and prepares the imposed block.
    node, _ = _node(3, "tx-2")
    changes = [_view_change(0, None), _view_change(1, certificate), _view_change(2, None)]
    effects = node.on_message(_new_view(changes, x))
    assert node.view == 1
    assert _votes(effects, PREPARE) == [x.hash]
    fresh, _ = _node(3, "tx-2")
    plain = [_view_change(i, None) for i in (0, 1, 2)]
    assert _votes(fresh.on_message(_new_view(plain, y)), PREPARE) == [y.hash]


def test_it_re_proposes_the_highest_prepared_block_in_a_new_view() -> None:
    x = _block("tx-1")
    primary, _ = _node(2, "tx-2")  # the proposer of height 1, view 1; its own pool holds tx-2
    assert _sends(primary.on_message(_view_change(0, _prepared_certificate(x)))) == []
    effects = primary.on_message(_view_change(1, None))  # f + 1 ask for view 1: it joins
    assert [s.message.kind for s in _sends(effects)] == [VIEW_CHANGE, NEW_VIEW, PREPARE]
    (new_view,) = _sends(effects, NEW_VIEW)
    assert new_view.message.body["proposal"] == x.to_json()
    assert len(new_view.message.body["view_changes"]) == 3
    assert _votes(effects, PREPARE) == [x.hash]
    assert primary.view == 1


def test_it_counts_duplicate_messages_once() -> None:
    node, _ = _node(0)
    x = _block("tx-1")
    assert _votes(node.on_message(_signed(1, _propose(x))), PREPARE) == [x.hash]
    for _ in range(5):
        assert _sends(node.on_message(_prepare(1, x))) == []
    assert _votes(node.on_message(_prepare(3, x)), PRECOMMIT) == [x.hash]

    precommit = {i: _signed(i, vote_statement(PRECOMMIT, CHAIN_ID, 1, 0, x.hash)) for i in (1, 3)}
    for _ in range(5):
        assert node.on_message(precommit[1]) == []
    assert _votes(node.on_message(precommit[3]), COMMIT) == [x.hash]

    commit = {i: _signed(i, commit_statement(CHAIN_ID, 1, x.hash)) for i in (1, 3)}
    for _ in range(5):
        assert node.on_message(commit[1]) == []
    (committed,) = node.on_message(commit[3])
    assert isinstance(committed, Commit)
    assert committed.block == x
    assert committed.height == 1
    assert [i for i, _ in committed.certificate.signatures] == [0, 1, 3]
    assert node.height == 1
    for envelope in (*precommit.values(), *commit.values()):
        assert _sends(node.on_message(envelope), PRECOMMIT) == []
    assert node.height == 1


def test_it_ignores_messages_with_bad_signatures_or_for_another_chain() -> None:
    node, _ = _node(0)
    x = _block("tx-1")
    genuine = _signed(1, _propose(x))
    forged = [
        Envelope(1, genuine.body, genuine.signature[:-2] + "00"),
        Envelope(1, genuine.body, "not hex"),
        Envelope(1, genuine.body, _signed(2, _propose(x)).signature),
        _signed(1, {**_propose(x), "chain": "another-chain"}),
        _signed(1, {**_propose(x), "extra": 1}),
        Envelope(9, genuine.body, genuine.signature),
        Envelope(0, genuine.body, sign_envelope(validator_keys(0), 0, genuine.body).signature),
        _signed(1, {**_propose(x), "proposal": {"garbage": True}}),
    ]
    for envelope in forged:
        assert node.on_message(envelope) == []
    assert node.view == 0
    assert node.persisted_state().prepare is None
    assert _votes(node.on_message(genuine), PREPARE) == [x.hash]


def test_it_commits_blocks_from_peers_only_with_valid_certificates() -> None:
    x = _block("tx-1")
    statement = rfc8785.dumps(commit_statement(CHAIN_ID, 1, x.hash))
    signatures = [(i, validator_keys(i).sign(statement)) for i in range(4)]

    def response(certificate: Certificate) -> Envelope:
        item = {"proposal": x.to_json(), "certificate": certificate.to_json()}
        body = {"kind": "block-response", "chain": CHAIN_ID, "tip": 1, "blocks": [item]}
        return _signed(2, body)

    node, _ = _node(0)
    for bad in (
        Certificate(1, x.hash, tuple(signatures[:2])),
        Certificate(1, x.hash, (signatures[0], signatures[0], signatures[1])),
        Certificate(1, x.hash, (signatures[0], signatures[1], (2, signatures[3][1]))),
        Certificate(1, "f" * 64, tuple(signatures)),
    ):
        assert not [e for e in node.on_message(response(bad)) if isinstance(e, Commit)]
    assert node.height == 0
    effects = node.on_message(response(Certificate(1, x.hash, tuple(signatures[1:]))))
    assert [e.height for e in effects if isinstance(e, Commit)] == [1]
    assert node.height == 1


def _certified_chain(length: int) -> list[tuple[Block, Certificate]]:
    """``length`` blocks from height 1, each with a certificate of validators 0, 2 and 3."""
    chain: list[tuple[Block, Certificate]] = []
    previous = GENESIS_HASH
    for height in range(1, length + 1):
        block = Block(height, previous, 10 * height, height % 4, (f"tx-{height}",))
        statement = rfc8785.dumps(commit_statement(CHAIN_ID, height, block.hash))
        signatures = tuple((i, validator_keys(i).sign(statement)) for i in (0, 2, 3))
        chain.append((block, Certificate(height, block.hash, signatures)))
        previous = block.hash
    return chain


def test_it_serves_a_lagging_peer_from_its_hosts_history_below_its_window() -> None:
    chain = _certified_chain(5)
    asked: list[tuple[int, int]] = []

    def history(first: int, last: int) -> list[tuple[Block, Certificate]]:
        asked.append((first, last))
        return chain[first - 1 : last]

    # Built from the last two blocks only, as a validator is from the end of its store.
    node, _ = _node(0, committed=chain[-2:], window=2, history=history)
    assert (node.height, [b.height for b, _ in node.recent]) == (5, [4, 5])

    request = {"kind": "block-request", "chain": CHAIN_ID, "from_height": 1}
    (response,) = _sends(node.on_message(_signed(1, request)))
    assert asked == [(1, 3)]  # heights 4 and 5 came from its memory
    assert response.to == 1
    assert response.message.body["tip"] == 5
    served = [item["proposal"]["height"] for item in response.message.body["blocks"]]
    assert served == [1, 2, 3, 4, 5]

    # The lagging peer commits them all and keeps only its own window of them.
    lagging, _ = _node(1, window=2)
    wire = json.loads(json.dumps(response.message.to_json()))
    effects = lagging.on_message(Envelope.from_json(wire))
    assert [e.height for e in effects if isinstance(e, Commit)] == [1, 2, 3, 4, 5]
    assert lagging.height == 5
    assert [b.hash for b, _ in lagging.recent] == [b.hash for b, _ in chain[-2:]]


def test_it_stops_serving_where_its_hosts_history_strays() -> None:
    chain = _certified_chain(5)
    node, _ = _node(0, committed=chain[-2:], window=2, history=lambda first, last: chain[1:last])
    request = {"kind": "block-request", "chain": CHAIN_ID, "from_height": 1}
    # Asked for 1..3, the host gives 2..3: nothing is sent that would leave the peer a gap.
    assert _sends(node.on_message(_signed(1, request))) == []
    without, _ = _node(0, committed=chain[-2:], window=2)
    assert _sends(without.on_message(_signed(1, request))) == []
    served = _sends(without.on_message(_signed(2, {**request, "from_height": 4})))
    assert [i["proposal"]["height"] for i in served[0].message.body["blocks"]] == [4, 5]


def test_it_refuses_committed_blocks_that_do_not_link() -> None:
    chain = _certified_chain(4)
    for broken in ([chain[0], chain[2]], [chain[1], chain[0]], [chain[2], chain[1]]):
        with pytest.raises(ValueError, match="does not link"):
            _node(0, committed=broken)
    node, _ = _node(0, committed=chain[1:], window=8)
    assert (node.height, len(node.recent)) == (4, 3)
