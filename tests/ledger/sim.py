"""A deterministic simulated network for ``ledger.consensus``.

Everything random comes from one ``random.Random(seed)``: message loss, delays (hence reordering),
duplication, redelivery of messages delivered before, which pools a transaction reaches, and when
a validator crashes. Messages and persisted states travel as JSON, as they will over Celery and in
a store. A crashed validator receives and sends nothing; a restarted one is a new ``Node`` built
from what its host made durable (the last ``window`` of its committed blocks and its last
``Persist``), and reads older blocks from that "disk" when a peer needs them. Time is simulated
milliseconds: every ``tick_ms`` each running validator gets ``on_tick``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from ledger.consensus import (
    COMMIT,
    PRECOMMIT,
    PREPARE,
    RECENT_BLOCKS,
    Certificate,
    Commit,
    Config,
    Effect,
    Envelope,
    Fault,
    Node,
    Persist,
    PersistedState,
    Send,
)
from ledger.identity import BadSignature, KeyPair, verify

CHAIN_ID = "sim-chain"
GENESIS_HASH = "0" * 64
VALID_STAMP = "ok"
FORGED_STAMP = "forged"

_KEYS: dict[int, KeyPair] = {}


def validator_keys(index: int) -> KeyPair:
    """Fixed keys, so that a seed reproduces every byte."""
    if index not in _KEYS:
        seed = hashlib.sha256(f"sim-validator-{index}".encode()).digest()
        _KEYS[index] = KeyPair(private_key=seed)
    return _KEYS[index]


def sim_config(n: int = 4, **timing: int) -> Config:
    return Config(
        chain_id=CHAIN_ID,
        validators=tuple(validator_keys(i).public_key_hex for i in range(n)),
        genesis_hash=GENESIS_HASH,
        **timing,
    )


@dataclass(frozen=True)
class Block:
    """The test application's proposal: a batch of transaction strings."""

    height: int
    previous_hash: str
    timestamp_ms: int
    proposer: int
    txs: tuple[str, ...]
    stamp: str = VALID_STAMP
    hash: str = field(init=False, compare=False, default="")

    def __post_init__(self) -> None:
        digest = hashlib.sha256(rfc8785.dumps(self.to_json())).hexdigest()
        object.__setattr__(self, "hash", digest)

    @property
    def valid(self) -> bool:
        return self.stamp == VALID_STAMP and bool(self.txs) and len(set(self.txs)) == len(self.txs)

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "previous_hash": self.previous_hash,
            "timestamp_ms": self.timestamp_ms,
            "proposer": self.proposer,
            "txs": list(self.txs),
            "stamp": self.stamp,
        }

    @classmethod
    def from_json(cls, data: Any) -> Block:
        keys = {"height", "previous_hash", "timestamp_ms", "proposer", "txs", "stamp"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ValueError("not a block")
        ints = [data["height"], data["timestamp_ms"], data["proposer"]]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in ints):
            raise ValueError("not a block")
        strings = [data["previous_hash"], data["stamp"], *data["txs"]]
        if not isinstance(data["txs"], list) or not all(isinstance(x, str) for x in strings):
            raise ValueError("not a block")
        return cls(
            data["height"],
            data["previous_hash"],
            data["timestamp_ms"],
            data["proposer"],
            tuple(data["txs"]),
            data["stamp"],
        )


class SimApp:
    """Proposes only when its pool holds uncommitted txs; ``check`` rejects forged blocks."""

    def __init__(
        self, index: int, registry: dict[str, Block], *, forge: bool = False, batch: int = 3
    ) -> None:
        self.index = index
        self.registry = registry
        self.forge = forge
        self.batch = batch
        self.pool: list[str] = []
        self.committed_txs: set[str] = set()
        self.chain: list[Block] = []

    def submit(self, tx: str) -> None:
        if tx not in self.pool:
            self.pool.append(tx)

    def pending(self) -> list[str]:
        return [tx for tx in self.pool if tx not in self.committed_txs]

    def has_pending(self) -> bool:
        return any(tx not in self.committed_txs for tx in self.pool)

    def propose(self, height: int, previous_hash: str, timestamp_ms: int) -> Block | None:
        pending = self.pending()
        if not pending:
            return None
        stamp = FORGED_STAMP if self.forge else VALID_STAMP
        block = Block(
            height, previous_hash, timestamp_ms, self.index, tuple(pending[: self.batch]), stamp
        )
        self.registry.setdefault(block.hash, block)
        return block

    def check(self, block: Block) -> bool:
        return (
            block.valid
            and all(tx.startswith("tx-") for tx in block.txs)
            and not any(tx in self.committed_txs for tx in block.txs)
        )

    def encode(self, block: Block) -> dict[str, Any]:
        return block.to_json()

    def decode(self, data: Any) -> Block:
        block = Block.from_json(data)
        self.registry.setdefault(block.hash, block)
        return block

    def apply(self, block: Block) -> None:
        self.chain.append(block)
        self.committed_txs.update(block.txs)


@dataclass
class Disk:
    """What a validator's host made durable."""

    chain: list[tuple[Block, Certificate]] = field(default_factory=list)
    state: dict[str, Any] | None = None
    pool: list[str] = field(default_factory=list)


def _wire(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data))


class Sim:
    """N validators on a lossy, duplicating, reordering, redelivering network."""

    def __init__(
        self,
        seed: int,
        *,
        n: int = 4,
        faults: dict[int, Fault] | None = None,
        crashed: Iterable[int] = (),
        drop: float = 0.05,
        duplicate: float = 0.05,
        redeliver: float = 0.02,
        max_delay_ms: int = 60,
        tick_ms: int = 20,
        base_timeout_ms: int = 600,
        timeout_margin: int = 4,
        retransmit_ms: int = 150,
        sync_interval_ms: int = 1000,
        batch: int = 3,
        window: int = RECENT_BLOCKS,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = n
        self.config = sim_config(
            n,
            base_timeout_ms=base_timeout_ms,
            timeout_margin=timeout_margin,
            retransmit_ms=retransmit_ms,
            sync_interval_ms=sync_interval_ms,
            max_blocks_per_response=8,
        )
        self.faults = {i: (faults or {}).get(i, Fault.NONE) for i in range(n)}
        self.drop = drop
        self.duplicate = duplicate
        self.redeliver = redeliver
        self.max_delay_ms = max_delay_ms
        self.tick_ms = tick_ms
        self.batch = batch
        self.window = window
        self.history_reads = 0
        self.registry: dict[str, Block] = {}
        self.disks = [Disk() for _ in range(n)]
        self.nodes: list[Node[Block] | None] = [None] * n
        self.apps: list[SimApp | None] = [None] * n
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, int, int, Envelope]] = []
        self._actions: list[tuple[int, int, Callable[[], None]]] = []
        self._delivered: list[tuple[int, int, Envelope]] = []
        self.submitted: set[str] = set()
        self.planned: set[str] = set()
        self.sent: Counter[str] = Counter()
        self.votes: list[tuple[int, str, int, int | None, str]] = []
        self.max_view = 0
        self.restarts = 0
        self.doomed: set[int] = set()  # to crash for good: partial submissions avoid them
        self.crash_on_send: dict[int, tuple[Callable[[Envelope], bool], int]] = {}
        self.crash_after_effects: dict[int, int] = {}
        down = set(crashed)
        for i in range(n):
            if i not in down:
                self._boot(i)

    # -- validators --------------------------------------------------------------------------

    @property
    def up(self) -> list[int]:
        return [i for i in range(self.n) if self.nodes[i] is not None]

    @property
    def honest(self) -> list[int]:
        return [i for i in range(self.n) if self.faults[i] is Fault.NONE]

    def _boot(self, i: int) -> None:
        disk = self.disks[i]
        app = SimApp(i, self.registry, forge=self.faults[i] is Fault.VOTE_INVALID, batch=self.batch)
        for block, _ in disk.chain:
            app.apply(block)
        for tx in disk.pool:
            app.submit(tx)
        state = None if disk.state is None else PersistedState.from_json(disk.state)
        self.apps[i] = app
        self.nodes[i] = Node(
            self.config,
            i,
            validator_keys(i),
            app,
            committed=disk.chain[-self.window :],
            persisted=state,
            fault=self.faults[i],
            now_ms=self.now,
            window=self.window,
            history=lambda first, last: self._history(i, first, last),
        )

    def _history(self, i: int, first: int, last: int) -> list[tuple[Block, Certificate]]:
        """Validator ``i``'s stored blocks ``first..last``, read by its node for a lagging peer."""
        self.history_reads += 1
        return self.disks[i].chain[first - 1 : last]

    def crash(self, i: int) -> None:
        self.nodes[i] = None
        self.apps[i] = None
        self.crash_after_effects.pop(i, None)
        self.crash_on_send.pop(i, None)

    def restart(self, i: int) -> None:
        if self.nodes[i] is None:
            self.restarts += 1
            self._boot(i)

    def _execute(self, i: int, effects: list[Effect[Block]]) -> None:
        for effect in effects:
            if self.nodes[i] is None:
                return
            if i in self.crash_after_effects:
                self.crash_after_effects[i] -= 1
                if self.crash_after_effects[i] < 0:
                    self.crash(i)
                    return
            if isinstance(effect, Persist):
                self.disks[i].state = _wire(effect.state.to_json())
            elif isinstance(effect, Commit):
                self.disks[i].chain.append((effect.block, effect.certificate))
                app = self.apps[i]
                assert app is not None
                app.apply(effect.block)
            elif isinstance(effect, Send):
                self._transmit(i, effect)

    # -- network -----------------------------------------------------------------------------

    def _push(self, when: int, frm: int, to: int, envelope: Envelope) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, frm, to, envelope))

    def _transmit(self, i: int, send: Send) -> None:
        envelope = Envelope.from_json(_wire(send.message.to_json()))
        body = envelope.body
        self.sent[envelope.kind] += 1
        if self.faults[i] is Fault.NONE and envelope.kind in (PREPARE, PRECOMMIT, COMMIT):
            self.votes.append((i, envelope.kind, body["height"], body.get("view"), body["block"]))
        targets = [send.to] if send.to is not None else [j for j in range(self.n) if j != i]
        hook = self.crash_on_send.get(i)
        if hook is not None and hook[0](envelope):
            for j in self.rng.sample(targets, min(hook[1], len(targets))):
                self._push(self.now + self.rng.randint(1, self.max_delay_ms), i, j, envelope)
            self.crash(i)
            return
        for j in targets:
            if self.rng.random() < self.drop:
                continue
            self._push(self.now + self.rng.randint(1, self.max_delay_ms), i, j, envelope)
            if self.rng.random() < self.duplicate:
                self._push(self.now + self.rng.randint(1, 3 * self.max_delay_ms), i, j, envelope)

    def _deliver(self, frm: int, to: int, envelope: Envelope) -> None:
        node = self.nodes[to]
        if node is None or self.nodes[frm] is None:
            return
        if len(self._delivered) < 1000:
            self._delivered.append((frm, to, envelope))
        else:
            self._delivered[self.rng.randrange(1000)] = (frm, to, envelope)
        self._execute(to, node.on_message(envelope))
        if self.rng.random() < self.redeliver:
            old_frm, old_to, old = self._delivered[self.rng.randrange(len(self._delivered))]
            delay = self.rng.randint(1, 5 * self.max_delay_ms)
            self._push(self.now + delay, old_frm, old_to, old)

    # -- workload ----------------------------------------------------------------------------

    def at(self, when: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._actions, (when, self._seq, action))

    def submit(self, tx: str, targets: Iterable[int] | None = None) -> None:
        """Put ``tx`` in the pools of the running validators among ``targets`` (default all)."""
        self.submitted.add(tx)
        chosen = self.up if targets is None else [i for i in targets if self.nodes[i] is not None]
        for i in chosen:
            self.disks[i].pool.append(tx)
            app, node = self.apps[i], self.nodes[i]
            assert app is not None
            assert node is not None
            app.submit(tx)
            self._execute(i, node.on_transactions_available())

    def add_workload(
        self, count: int, *, start_ms: int = 0, end_ms: int = 2000, subset: float = 0.3
    ) -> None:
        """``count`` txs at random times; a share reaches only some honest running pools."""
        first = len(self.planned)
        for k in range(first, first + count):
            when = self.rng.randint(start_ms, end_ms)
            partial = self.rng.random() < subset
            self.planned.add(f"tx-{k}")
            self.at(when, lambda tx=f"tx-{k}", partial=partial: self._submit_random(tx, partial))

    def _submit_random(self, tx: str, partial: bool) -> None:
        eligible = [i for i in self.honest if self.nodes[i] is not None and i not in self.doomed]
        if partial and len(eligible) > 1:
            self.submit(tx, self.rng.sample(eligible, self.rng.randint(1, len(eligible) - 1)))
        else:
            self.submit(tx)

    # -- running -----------------------------------------------------------------------------

    def run(self, until_ms: int, stop: Callable[[], bool] | None = None) -> bool:
        """Run to ``until_ms`` simulated ms, or until ``stop()`` holds (checked every tick)."""
        next_tick = self.now
        while True:
            moment = next_tick
            if self._queue:
                moment = min(moment, self._queue[0][0])
            if self._actions:
                moment = min(moment, self._actions[0][0])
            if moment > until_ms:
                self.now = until_ms
                return False
            self.now = moment
            while self._actions and self._actions[0][0] <= moment:
                heapq.heappop(self._actions)[2]()
            while self._queue and self._queue[0][0] <= moment:
                _, _, frm, to, envelope = heapq.heappop(self._queue)
                self._deliver(frm, to, envelope)
            if moment >= next_tick:
                order = self.up
                self.rng.shuffle(order)
                for i in order:
                    node = self.nodes[i]
                    if node is not None:
                        self._execute(i, node.on_tick(moment))
                        self.max_view = max(self.max_view, node.view)
                next_tick = moment + self.tick_ms
                if stop is not None and stop():
                    return True

    def all_committed(self) -> bool:
        """The whole workload is submitted and committed at every honest running validator."""
        if not self.planned <= self.submitted:
            return False
        for i in self.honest:
            app = self.apps[i]
            if app is not None and not self.submitted <= app.committed_txs:
                return False
        return True

    # -- checks ------------------------------------------------------------------------------

    def violations(self) -> list[str]:
        """Safety violations among honest validators (crashed ones included), if any."""
        problems: list[str] = []
        quorum = 2 * self.config.f + 1
        chains = {i: self.disks[i].chain for i in self.honest}
        for i, chain in chains.items():
            node = self.nodes[i]
            if node is not None and (
                node.height != len(chain)
                or [b.hash for b, _ in node.recent] != [b.hash for b, _ in chain[-self.window :]]
            ):
                problems.append(f"validator {i}: its recent blocks are not its store's last ones")
            previous, last_ts, seen = GENESIS_HASH, 0, set()
            for position, (block, certificate) in enumerate(chain, start=1):
                if block.height != position or block.previous_hash != previous:
                    problems.append(f"validator {i}: height {position} does not link")
                if block.timestamp_ms <= last_ts:
                    problems.append(f"validator {i}: height {position} goes back in time")
                if not block.valid:
                    problems.append(f"validator {i}: committed an invalid block at {position}")
                if seen & set(block.txs):
                    problems.append(f"validator {i}: a tx committed twice at {position}")
                signers = self._certificate_signers(block, certificate)
                if len(signers) < quorum:
                    problems.append(
                        f"validator {i}: height {position} certificate has {len(signers)} valid "
                        f"distinct signatures, needs {quorum}"
                    )
                previous, last_ts = block.hash, block.timestamp_ms
                seen |= set(block.txs)
        honest = sorted(chains)
        for a in honest:
            for b in honest:
                if a < b:
                    for height, (x, y) in enumerate(zip(chains[a], chains[b], strict=False), 1):
                        if x[0].hash != y[0].hash:
                            problems.append(f"validators {a} and {b} differ at height {height}")
        signed: dict[tuple[int, str, int, int | None], set[str]] = {}
        for validator, kind, height, view, block in self.votes:
            signed.setdefault((validator, kind, height, view), set()).add(block)
            known = self.registry.get(block)
            if known is None or not known.valid:
                problems.append(f"validator {validator} sent {kind} for an invalid block")
        decided: dict[int, set[str]] = {}
        for (validator, kind, height, view), blocks in signed.items():
            if len(blocks) > 1:
                problems.append(
                    f"validator {validator} signed {kind} for {len(blocks)} blocks at height "
                    f"{height} view {view}"
                )
            if kind == COMMIT:
                decided.setdefault(height, set()).update(blocks)
        for height, blocks in decided.items():
            if len(blocks) > 1:
                # Honest validators sign COMMIT only for the block decided at the height.
                problems.append(
                    f"honest validators signed COMMIT for {len(blocks)} blocks at {height}"
                )
        return problems

    _verified: dict[tuple[str, bytes, str], bool] = {}

    def _certificate_signers(self, block: Block, certificate: Certificate) -> set[int]:
        """Checked here with identity.verify, independently of the consensus module."""
        if certificate.height != block.height or certificate.block_hash != block.hash:
            return set()
        statement = {"kind": "commit", "chain": CHAIN_ID, "height": block.height}
        data = rfc8785.dumps({**statement, "block": block.hash})
        signers: set[int] = set()
        for index, signature in certificate.signatures:
            if not 0 <= index < self.n:
                continue
            key = self.config.validators[index]
            cached = Sim._verified.get((key, data, signature))
            if cached is None:
                try:
                    verify(key, data, signature)
                    cached = True
                except BadSignature:
                    cached = False
                Sim._verified[(key, data, signature)] = cached
            if cached:
                signers.add(index)
        return signers

    def chain_hashes(self, i: int) -> list[str]:
        return [block.hash for block, _ in self.disks[i].chain]
