"""Blocks: header hash, links, roots, proposer signature, certificates. No database needed."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import blocks, crypto
from ledger.blocks import Block, BlockHeader, CommitSignature
from ledger.crypto import Transaction
from ledger.identity import KeyPair

CHAIN = "gridplatform-test"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VALIDATORS = [KeyPair(private_key=hashlib.sha256(b"validator %d" % i).digest()) for i in range(4)]
VALIDATOR_KEYS = [pair.public_key_hex for pair in VALIDATORS]
HOUSEHOLDS = [KeyPair(private_key=hashlib.sha256(b"household %d" % i).digest()) for i in range(3)]


def _state_root(height: int) -> str:
    # The ledger's state root is the application's business; any 32 bytes do here.
    return hashlib.sha256(b"state after %d" % height).hexdigest()


def _transfer(sender: int, nonce: int, amount: int, *, chain: str = CHAIN) -> Transaction:
    return crypto.sign_transaction(
        keypair=HOUSEHOLDS[sender],
        chain=chain,
        type="credit.transfer",
        nonce=nonce,
        payload={"to": HOUSEHOLDS[(sender + 1) % 3].address, "amount": amount},
    )


def _certify(block: Block, voters: list[int] | None = None) -> Block:
    voters = list(range(len(VALIDATORS))) if voters is None else voters
    votes = [
        blocks.sign_commit(keypair=VALIDATORS[i], validator=i, header=block.header) for i in voters
    ]
    return dataclasses.replace(block, certificate=tuple(votes))


def _block(
    *,
    previous: BlockHeader | None,
    transactions: list[Transaction],
    results: list[str] | None = None,
    voters: list[int] | None = None,
    **overrides: Any,
) -> Block:
    height = 0 if previous is None else previous.height + 1
    fields: dict[str, Any] = {
        "chain": CHAIN,
        "height": height,
        "previous_hash": (
            blocks.GENESIS_PREVIOUS_HASH if previous is None else blocks.block_hash(previous)
        ),
        "timestamp_ms": GENESIS_TIME_MS + 5_000 * height,
        "proposer": height % len(VALIDATORS),
        "transactions": transactions,
        "results": ["ok"] * len(transactions) if results is None else results,
        "state_root": _state_root(height),
    }
    fields.update(overrides)
    proposer = fields["proposer"]
    keypair = VALIDATORS[proposer] if proposer < len(VALIDATORS) else VALIDATORS[0]
    return _certify(blocks.propose_block(keypair=keypair, **fields), voters)


def make_chain(length: int = 3) -> list[Block]:
    """A valid chain: genesis, then blocks of signed transfers, certified by all 4 validators."""
    chain = [_block(previous=None, transactions=[])]
    nonces = [0, 0, 0]
    for height in range(1, length):
        transactions = []
        for sender in range(height % 3 + 1):
            transactions.append(_transfer(sender, nonces[sender], 100 * height + sender))
            nonces[sender] += 1
        results = ["ok"] * len(transactions)
        results[-1] = "insufficient-balance" if height % 2 else "ok"
        chain.append(_block(previous=chain[-1].header, transactions=transactions, results=results))
    return chain


def _verify(block: Block, previous: BlockHeader | None) -> None:
    blocks.verify_block(block, validators=VALIDATOR_KEYS, previous=previous)


def _resign(block: Block, header: BlockHeader, **changes: Any) -> Block:
    """The block with ``header`` (and other changes), signed and certified anew by everyone."""
    block = dataclasses.replace(block, header=header, **changes)
    message = blocks.proposal_bytes(header.chain, header.height, blocks.block_hash(header))
    proposer = VALIDATORS[header.proposer % len(VALIDATORS)]
    return _certify(dataclasses.replace(block, proposer_signature=proposer.sign(message)))


@pytest.fixture(scope="module")
def chain() -> list[Block]:
    return make_chain(4)


# --- a valid chain ---------------------------------------------------------------------------


def test_it_verifies_a_valid_chain(chain: list[Block]) -> None:
    _verify(chain[0], None)
    for previous, block in itertools.pairwise(chain):
        _verify(block, previous.header)
    assert [b.header.height for b in chain] == [0, 1, 2, 3]
    assert sum(len(b.transactions) for b in chain) == 6


def test_it_links_genesis_to_zeros(chain: list[Block]) -> None:
    assert chain[0].header.previous_hash == "0" * 64
    assert chain[1].header.previous_hash == chain[0].hash


def test_it_hashes_exactly_the_documented_header_object() -> None:
    header = BlockHeader(
        chain=CHAIN,
        height=1,
        previous_hash="11" * 32,
        timestamp_ms=GENESIS_TIME_MS,
        proposer=2,
        tx_root="22" * 32,
        results_root="33" * 32,
        events_root="66" * 32,
        signatures_root="44" * 32,
        state_root="55" * 32,
    )
    expected = (
        '{"chain":"gridplatform-test","events_root":"' + "66" * 32 + '","height":1,'
        '"previous_hash":"' + "11" * 32 + '",'
        '"proposer":2,"results_root":"' + "33" * 32 + '","signatures_root":"' + "44" * 32 + '",'
        '"state_root":"' + "55" * 32 + '","timestamp_ms":1767225600000,'
        '"tx_root":"' + "22" * 32 + '"}'
    ).encode()
    assert crypto.canonical(header.to_json()) == expected
    assert blocks.block_hash(header) == hashlib.sha256(expected).hexdigest()
    assert blocks.block_hash(header) == (
        "7d561d839ad60eff676d63fb9d2032c8393edf729b118ffcbfcc64a05273bc75"
    )


def test_it_signs_domain_separated_votes() -> None:
    block_hash = "ab" * 32
    assert blocks.commit_vote_bytes(CHAIN, 7, block_hash) == (
        b'{"block":"' + block_hash.encode() + b'","chain":"gridplatform-test","height":7,'
        b'"kind":"commit"}'
    )
    assert blocks.proposal_bytes(CHAIN, 7, block_hash) == (
        b'{"block":"' + block_hash.encode() + b'","chain":"gridplatform-test","height":7,'
        b'"kind":"proposal"}'
    )


def test_it_defines_roots_of_the_block_contents(chain: list[Block]) -> None:
    block = chain[2]
    ids = [tx.id_bytes for tx in block.transactions]
    assert block.header.tx_root == crypto.merkle_root(ids).hex()
    assert (
        block.header.results_root
        == hashlib.sha256(crypto.canonical(list(block.results))).hexdigest()
    )
    assert (
        block.header.signatures_root
        == hashlib.sha256(
            json.dumps([tx.signature for tx in block.transactions], separators=(",", ":")).encode()
        ).hexdigest()
    )
    empty = crypto.canonical([])
    assert chain[0].header.tx_root == hashlib.sha256(b"").hexdigest()
    assert chain[0].header.results_root == hashlib.sha256(empty).hexdigest()


@pytest.mark.parametrize(
    ("validators", "needed"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7)]
)
def test_it_needs_more_than_two_thirds_of_the_validators(validators: int, needed: int) -> None:
    assert blocks.quorum(validators) == needed
    assert needed * 3 > validators * 2


def test_it_proves_a_transaction_of_a_block(chain: list[Block]) -> None:
    block = chain[2]
    ids = [tx.id for tx in block.transactions]
    for index, tx_id in enumerate(ids):
        proof = crypto.inclusion_proof_hex(ids, index)
        crypto.verify_inclusion_hex(tx_id, index, len(ids), proof, block.header.tx_root)


# --- tampering -------------------------------------------------------------------------------


def test_it_rejects_a_block_of_another_chain(chain: list[Block]) -> None:
    header = dataclasses.replace(chain[1].header, chain="gridplatform-other")
    with pytest.raises(blocks.WrongChain):
        _verify(_resign(chain[1], header), chain[0].header)


@pytest.mark.parametrize("height", [0, 1, 3, 100])
def test_it_rejects_a_wrong_height(chain: list[Block], height: int) -> None:
    header = dataclasses.replace(chain[2].header, height=height)
    with pytest.raises(blocks.BadHeight):
        _verify(_resign(chain[2], header), chain[1].header)


def test_it_rejects_a_block_without_predecessor_that_is_not_genesis(chain: list[Block]) -> None:
    with pytest.raises(blocks.BadHeight):
        _verify(chain[1], None)
    header = dataclasses.replace(chain[0].header, previous_hash="01" * 32)
    with pytest.raises(blocks.BrokenLink):
        _verify(_resign(chain[0], header), None)


def test_it_rejects_a_broken_link(chain: list[Block]) -> None:
    # Verified against a predecessor that is not the one it was built on.
    other_parent = dataclasses.replace(chain[1].header, state_root="ee" * 32)
    with pytest.raises(blocks.BrokenLink):
        _verify(chain[2], other_parent)
    header = dataclasses.replace(chain[2].header, previous_hash=chain[0].hash)
    with pytest.raises(blocks.BrokenLink):
        _verify(_resign(chain[2], header), chain[1].header)


@pytest.mark.parametrize("delta_ms", [0, -1, -5_000])
def test_it_rejects_a_timestamp_not_after_the_previous_one(
    chain: list[Block], delta_ms: int
) -> None:
    header = dataclasses.replace(
        chain[2].header, timestamp_ms=chain[1].header.timestamp_ms + delta_ms
    )
    with pytest.raises(blocks.BadTimestamp):
        _verify(_resign(chain[2], header), chain[1].header)


def test_it_accepts_a_timestamp_one_millisecond_later(chain: list[Block]) -> None:
    header = dataclasses.replace(chain[2].header, timestamp_ms=chain[1].header.timestamp_ms + 1)
    _verify(_resign(chain[2], header), chain[1].header)


def test_it_rejects_a_transaction_signed_for_another_chain(chain: list[Block]) -> None:
    foreign = _transfer(0, 0, 5, chain="gridplatform-other")
    block = _block(previous=chain[0].header, transactions=[foreign])
    with pytest.raises(blocks.ForeignTransaction):
        _verify(block, chain[0].header)


@pytest.mark.parametrize(
    "change",
    [
        lambda txs: txs[::-1],  # reordered
        lambda txs: txs[:-1],  # one dropped
        lambda txs: [*txs, _transfer(2, 9, 1)],  # one smuggled in
        lambda txs: [_transfer(0, 50, 1), *txs[1:]],  # one replaced
    ],
)
def test_it_rejects_transactions_that_do_not_match_the_tx_root(
    chain: list[Block], change: Any
) -> None:
    block = chain[2]
    assert len(block.transactions) == 3
    transactions = change(list(block.transactions))
    tampered = dataclasses.replace(
        block,
        transactions=tuple(transactions),
        results=("ok",) * len(transactions),
    )
    with pytest.raises(blocks.BadTxRoot):
        _verify(tampered, chain[1].header)


def test_it_rejects_a_changed_result(chain: list[Block]) -> None:
    block = chain[3]
    tampered = dataclasses.replace(block, results=("ok",) * len(block.results))
    assert tampered.results != block.results
    with pytest.raises(blocks.BadResultsRoot):
        _verify(tampered, chain[2].header)


def test_it_rejects_a_block_without_one_result_per_transaction(chain: list[Block]) -> None:
    block = chain[3]
    short = block.results[:-1]
    header = dataclasses.replace(block.header, results_root=blocks.results_root_of(short))
    with pytest.raises(blocks.ResultsCountMismatch):
        _verify(_resign(block, header, results=short), chain[2].header)


def test_it_rejects_a_changed_transaction_signature(chain: list[Block]) -> None:
    block = chain[3]
    first = block.transactions[0]
    # A well-formed signature that is not this transaction's: the id and tx_root do not see it.
    other = Transaction.from_json({**first.to_json(), "signature": "ab" * 64})
    assert other.id == first.id
    tampered = dataclasses.replace(block, transactions=(other, *block.transactions[1:]))
    with pytest.raises(blocks.BadSignaturesRoot):
        _verify(tampered, chain[2].header)


def test_it_rejects_an_unknown_proposer(chain: list[Block]) -> None:
    header = dataclasses.replace(chain[1].header, proposer=4)
    with pytest.raises(blocks.UnknownProposer):
        _verify(_resign(chain[1], header), chain[0].header)


def test_it_rejects_a_proposer_signature_by_another_validator(chain: list[Block]) -> None:
    block = chain[1]
    message = blocks.proposal_bytes(CHAIN, 1, block.hash)
    assert block.header.proposer == 1
    forged = dataclasses.replace(block, proposer_signature=VALIDATORS[2].sign(message))
    with pytest.raises(blocks.BadProposerSignature):
        _verify(forged, chain[0].header)


def test_it_rejects_a_commit_vote_as_a_proposer_signature(chain: list[Block]) -> None:
    block = chain[1]
    vote = next(v for v in block.certificate if v.validator == block.header.proposer)
    forged = dataclasses.replace(block, proposer_signature=vote.signature)
    with pytest.raises(blocks.BadProposerSignature):
        _verify(forged, chain[0].header)


def test_it_rejects_a_header_changed_after_signing(chain: list[Block]) -> None:
    header = dataclasses.replace(chain[2].header, state_root="ee" * 32)
    with pytest.raises(blocks.BadProposerSignature):
        _verify(dataclasses.replace(chain[2], header=header), chain[1].header)


# --- certificates ----------------------------------------------------------------------------


@pytest.mark.parametrize("voters", [[0, 1, 2], [1, 2, 3], [3, 0, 2], [0, 1, 2, 3]])
def test_it_accepts_any_quorum_of_distinct_validators(
    chain: list[Block], voters: list[int]
) -> None:
    _verify(_certify(chain[1], voters), chain[0].header)


@pytest.mark.parametrize("voters", [[], [0], [0, 1], [2, 3]])
def test_it_rejects_a_certificate_of_2f_or_fewer(chain: list[Block], voters: list[int]) -> None:
    with pytest.raises(blocks.InsufficientCertificate):
        _verify(_certify(chain[1], voters), chain[0].header)


def test_it_rejects_2f_plus_1_votes_when_one_validator_voted_twice(chain: list[Block]) -> None:
    block = _certify(chain[1], [0, 1])
    twice = dataclasses.replace(block, certificate=(*block.certificate, block.certificate[1]))
    assert len(twice.certificate) == blocks.quorum(4)
    with pytest.raises(blocks.DuplicateVote):
        _verify(twice, chain[0].header)


def test_it_rejects_2f_valid_votes_and_one_invalid(chain: list[Block]) -> None:
    block = _certify(chain[1], [0, 1])
    bad = CommitSignature(validator=2, signature=VALIDATORS[3].sign(b"something else"))
    with pytest.raises(blocks.BadCertificateSignature):
        _verify(dataclasses.replace(block, certificate=(*block.certificate, bad)), chain[0].header)


def test_it_rejects_a_damaged_vote_even_with_a_quorum_left(chain: list[Block]) -> None:
    block = chain[1]
    damaged = CommitSignature(validator=3, signature="00" * 64)
    certificate = (*block.certificate[:3], damaged)
    with pytest.raises(blocks.BadCertificateSignature):
        _verify(dataclasses.replace(block, certificate=certificate), chain[0].header)


def test_it_rejects_a_vote_for_another_block(chain: list[Block]) -> None:
    # Validator 3 voted for block 2; its vote is copied into block 1's certificate.
    stolen = next(v for v in chain[2].certificate if v.validator == 3)
    certificate = (*_certify(chain[1], [0, 1]).certificate, stolen)
    with pytest.raises(blocks.BadCertificateSignature):
        _verify(dataclasses.replace(chain[1], certificate=certificate), chain[0].header)


def test_it_rejects_a_proposal_signature_as_a_commit_vote(chain: list[Block]) -> None:
    block = _certify(chain[1], [0, 2])
    proposal = CommitSignature(validator=1, signature=block.proposer_signature)
    with pytest.raises(blocks.BadCertificateSignature):
        _verify(
            dataclasses.replace(block, certificate=(*block.certificate, proposal)),
            chain[0].header,
        )


def test_it_rejects_a_vote_of_an_unknown_validator(chain: list[Block]) -> None:
    block = _certify(chain[1], [0, 1, 2])
    stranger = CommitSignature(validator=4, signature=block.certificate[0].signature)
    with pytest.raises(blocks.UnknownValidator):
        _verify(
            dataclasses.replace(block, certificate=(*block.certificate, stranger)),
            chain[0].header,
        )


def test_it_rejects_a_validator_set_naming_one_key_twice(chain: list[Block]) -> None:
    keys = [VALIDATOR_KEYS[0], VALIDATOR_KEYS[1], VALIDATOR_KEYS[2], VALIDATOR_KEYS[0]]
    with pytest.raises(blocks.InvalidValidatorSet):
        blocks.verify_block(chain[1], validators=keys, previous=chain[0].header)
    with pytest.raises(blocks.InvalidValidatorSet):
        blocks.verify_block(chain[1], validators=[], previous=chain[0].header)


def test_it_derives_every_block_error_from_invalid_block() -> None:
    for name in (
        "WrongChain",
        "BadHeight",
        "BrokenLink",
        "BadTimestamp",
        "ForeignTransaction",
        "BadTxRoot",
        "BadResultsRoot",
        "ResultsCountMismatch",
        "BadSignaturesRoot",
        "UnknownProposer",
        "BadProposerSignature",
        "UnknownValidator",
        "DuplicateVote",
        "BadCertificateSignature",
        "InsufficientCertificate",
    ):
        assert issubclass(getattr(blocks, name), blocks.InvalidBlock), name
    assert issubclass(blocks.InvalidBlock, crypto.LedgerCryptoError)
    assert issubclass(blocks.MalformedBlock, crypto.LedgerCryptoError)


# --- JSON ------------------------------------------------------------------------------------


def test_it_round_trips_a_block_through_json_exactly(chain: list[Block]) -> None:
    for block in chain:
        obj = blocks.block_to_json(block)
        text = json.dumps(obj)
        again = blocks.block_from_json(crypto.loads(text))
        assert again == block
        assert blocks.block_to_json(again) == obj
        assert crypto.canonical(blocks.block_to_json(again)) == crypto.canonical(obj)


def _json(chain: list[Block]) -> dict[str, Any]:
    return copy.deepcopy(blocks.block_to_json(chain[2]))


@pytest.mark.parametrize("where", ["block", "header", "vote"])
def test_it_rejects_missing_and_extra_fields(chain: list[Block], where: str) -> None:
    for mutate in ("drop", "add"):
        obj = _json(chain)
        target = {"block": obj, "header": obj["header"], "vote": obj["certificate"][0]}[where]
        if mutate == "drop":
            target.popitem()
        else:
            target["extra"] = 1
        with pytest.raises(blocks.BlockFieldsMismatch):
            blocks.block_from_json(obj)


def _with_field(chain: list[Block], path: tuple[Any, ...], value: object) -> dict[str, Any]:
    """The JSON of block 2 of the chain, with the field at ``path`` set to ``value``."""
    obj = _json(chain)
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("transactions",), {}),
        (("results",), "ok"),
        (("certificate",), None),
        (("results", 0), 0),
        (("header", "height"), "1"),
        (("header", "height"), True),
        (("header", "timestamp_ms"), 1.5e12),
        (("header", "proposer"), None),
        (("header", "tx_root"), 5),
        (("header", "chain"), None),
        (("certificate", 0, "validator"), "0"),
        (("certificate", 0, "signature"), None),
        (("proposer_signature",), 0),
    ],
)
def test_it_rejects_a_field_of_the_wrong_type(
    chain: list[Block], path: tuple[Any, ...], value: object
) -> None:
    obj = _with_field(chain, path, value)
    with pytest.raises(blocks.BlockFieldType):
        blocks.block_from_json(obj)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("header", "height"), -1),
        (("header", "height"), 2**53),
        (("header", "previous_hash"), "AB" * 32),
        (("header", "state_root"), "ab" * 31),
        (("header", "chain"), "Grid"),
        (("results", 0), "OK"),
        (("results", 0), ""),
        (("certificate", 0, "validator"), -1),
        (("certificate", 0, "signature"), "ab" * 63),
        (("proposer_signature",), "xy" * 64),
    ],
)
def test_it_rejects_a_field_value_out_of_its_domain(
    chain: list[Block], path: tuple[Any, ...], value: object
) -> None:
    obj = _with_field(chain, path, value)
    with pytest.raises(blocks.BlockFieldValue):
        blocks.block_from_json(obj)


def test_it_rejects_a_block_holding_a_malformed_transaction(chain: list[Block]) -> None:
    obj = _json(chain)
    obj["transactions"][1]["payload"]["amount"] = 1.5
    with pytest.raises(blocks.MalformedBlockTransaction, match="transaction 1") as caught:
        blocks.block_from_json(obj)
    assert isinstance(caught.value.__cause__, crypto.InvalidPayload)


@pytest.mark.parametrize("obj", [None, [], "block"])
def test_it_rejects_a_block_that_is_not_an_object(obj: object) -> None:
    with pytest.raises(blocks.BlockFieldsMismatch):
        blocks.block_from_json(obj)


# --- properties ------------------------------------------------------------------------------

_PREVIOUS = make_chain(1)[0]


@st.composite
def certified_blocks(draw: st.DrawFn) -> Block:
    """A valid block at height 1 after a fixed genesis, with random transfers and results."""
    count = draw(st.integers(min_value=0, max_value=5))
    nonces = [0, 0, 0]
    transactions = []
    for _ in range(count):
        sender = draw(st.integers(min_value=0, max_value=2))
        amount = draw(st.integers(min_value=0, max_value=2**53 - 1))
        transactions.append(_transfer(sender, nonces[sender], amount))
        nonces[sender] += 1
    results = draw(
        st.lists(
            st.sampled_from(["ok", "bad-nonce", "insufficient-balance", "not-allowed"]),
            min_size=count,
            max_size=count,
        )
    )
    voters = draw(st.sampled_from([[0, 1, 2], [1, 2, 3], [0, 2, 3], [3, 1, 0, 2]]))
    return _block(
        previous=_PREVIOUS.header,
        transactions=transactions,
        results=results,
        voters=voters,
        timestamp_ms=_PREVIOUS.header.timestamp_ms + draw(st.integers(1, 10**9)),
        proposer=draw(st.integers(min_value=0, max_value=3)),
        state_root=draw(st.binary(min_size=32, max_size=32)).hex(),
    )


@given(certified_blocks())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_it_round_trips_random_blocks_through_json(block: Block) -> None:
    _verify(block, _PREVIOUS.header)
    obj = blocks.block_to_json(block)
    again = blocks.block_from_json(crypto.loads(json.dumps(obj)))
    assert again == block
    assert blocks.block_to_json(again) == obj
    _verify(again, _PREVIOUS.header)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _leaves(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _leaves(item, (*path, index))]
    return [path]


_HEX_DIGITS = "0123456789abcdef"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


@given(certified_blocks(), st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_it_rejects_any_single_change_to_a_block(block: Block, data: st.DataObject) -> None:
    obj = blocks.block_to_json(block)
    path = data.draw(st.sampled_from(_leaves(obj)), label="path")
    parent: Any = obj
    for key in path[:-1]:
        parent = parent[key]
    value = parent[path[-1]]
    if isinstance(value, int):
        parent[path[-1]] = value ^ (1 << data.draw(st.integers(0, 52), label="bit"))
    else:
        assert isinstance(value, str)
        assert value
        position = data.draw(st.integers(0, len(value) - 1), label="position")
        alphabet = _HEX_DIGITS if all(c in _HEX_DIGITS for c in value) else _NAME_CHARS
        replacement = data.draw(st.sampled_from(alphabet.replace(value[position], "")))
        parent[path[-1]] = value[:position] + replacement + value[position + 1 :]
    with pytest.raises(crypto.LedgerCryptoError):
        _verify(blocks.block_from_json(obj), _PREVIOUS.header)


def test_it_reuses_a_known_transaction_only_when_its_json_matches_exactly(
    chain: list[Block],
) -> None:
    block = next(b for b in chain if len(b.transactions) >= 2)
    data = blocks.block_to_json(block)
    first, second = block.transactions[0], block.transactions[1]
    known = {first.signature: first, second.signature: second}
    data["transactions"][1]["nonce"] = True if second.nonce == 1 else second.nonce
    data["transactions"][1]["payload"] = {**data["transactions"][1]["payload"], "extra": 1}
    parsed = blocks.block_from_json(data, known=known)
    assert parsed.transactions[0] is first  # the same object: not parsed again
    assert parsed.transactions[1] is not second  # what the block says, parsed afresh
    assert parsed.transactions[1].payload["extra"] == 1
    assert parsed.transactions[1].id != second.id
