"""The ledger's wire format: canonical JSON, transactions, Merkle trees. No database needed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger import crypto, identity
from ledger.crypto import Transaction
from ledger.identity import KeyPair

# RFC 8032, section 7.1, test 1, and its address (see tests/accounts/test_identity.py).
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_ADDRESS = "0121fe31dfa154a261626bf854046fd2271b7bed4bd11fd052"

# The fixed transaction: computed once, its signing bytes checked by eye against RFC 8785 (keys
# sorted by code unit, nested too, no whitespace), then written down here.
VECTOR_SIGNING_BYTES = (
    b'{"chain":"gridplatform-test","nonce":0,"payload":{"amount":1500,'
    b'"to":"0121fe31dfa154a261626bf854046fd2271b7bed4bd11fd052"},'
    b'"sender":"0121fe31dfa154a261626bf854046fd2271b7bed4bd11fd052","type":"credit.transfer"}'
)
VECTOR_ID = "7ec6f931ac619e7c709843bff01a1591f0dc05c94aa5587bf55c208671b647bb"
VECTOR_SIGNATURE = (
    "40d81fd79d727c26db4ba7abf4d13828a54ba25575746dea469d11459f858bf4"
    "7857c8f9e62a5d3e2cbaa8bba5647606d2b72aa1f9b1aa23c69e45d39db64a09"
)

# Certificate Transparency's merkle_tree_test leaves and the roots of their prefixes.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_PATHS = {
    0: [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    5: [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


@pytest.fixture
def rfc_pair() -> KeyPair:
    return KeyPair(private_key=bytes.fromhex(RFC8032_SECRET))


def _vector_json() -> dict[str, Any]:
    return {
        "chain": "gridplatform-test",
        "type": "credit.transfer",
        "sender": RFC8032_ADDRESS,
        "nonce": 0,
        "payload": {"to": RFC8032_ADDRESS, "amount": 1500},
        "signature": VECTOR_SIGNATURE,
    }


def _other_pair() -> KeyPair:
    return KeyPair(private_key=hashlib.sha256(b"someone else").digest())


# --- canonical JSON --------------------------------------------------------------------------


def test_it_canonicalizes_by_rfc8785() -> None:
    value = {"b": [1, True, None, "é\n"], "a": {"d": -5, "c": ""}, "\ufb33": 0, "\U0001f600": 1}
    # Keys sorted by UTF-16 code units, not code points: U+1F600 is the surrogate pair D83D DE00,
    # which sorts before U+FB33 although its code point is larger.
    assert crypto.canonical(value) == (
        '{"a":{"c":"","d":-5},"b":[1,true,null,"é\\n"],"\U0001f600":1,"\ufb33":0}'.encode()
    )


_canonical_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(exclude_categories=["Cs"])), children, max_size=4
        )
    ),
    max_leaves=20,
)


@given(_canonical_values)
def test_its_fast_encoder_writes_the_bytes_of_the_rfc8785_package(value: object) -> None:
    # Non-ASCII text (the generator favours it) goes to rfc8785 itself; ASCII takes the fast path.
    assert crypto.canonical(value) == rfc8785.dumps(value)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_its_fast_path_writes_the_bytes_of_the_rfc8785_package_for_ascii(value: object) -> None:
    assert crypto.canonical(value) == rfc8785.dumps(value)


def test_it_rejects_a_lone_surrogate_in_a_key_or_a_value() -> None:
    for value in ({"\ud800": 1}, {"a": "x\udfff"}, ["\ud83d"]):
        with pytest.raises(crypto.NonCanonicalValue, match="surrogate"):
            crypto.canonical(value)


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        1.0,
        float("nan"),
        {"amount": 1.0},
        {"nested": [{"x": [0.1]}]},
        [1, 2, 3.0],
    ],
)
def test_it_rejects_floats_anywhere(value: object) -> None:
    with pytest.raises(crypto.NonCanonicalValue, match="float"):
        crypto.canonical(value)


def test_it_rejects_non_string_keys() -> None:
    with pytest.raises(crypto.NonCanonicalValue, match="keys must be strings"):
        crypto.canonical({1: "a"})
    with pytest.raises(crypto.NonCanonicalValue, match="keys must be strings"):
        crypto.canonical({"ok": {None: 1}})


def test_it_accepts_integers_up_to_two_to_the_53_minus_one() -> None:
    top = 2**53 - 1
    assert crypto.canonical([top, -top]) == b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30, {"amount": [2**64]}])
def test_it_rejects_integers_a_double_cannot_hold(value: object) -> None:
    with pytest.raises(crypto.NonCanonicalValue, match="decimal strings"):
        crypto.canonical(value)


def test_it_carries_big_amounts_as_decimal_strings() -> None:
    assert crypto.canonical({"amount": str(10**30)}) == b'{"amount":"1' + b"0" * 30 + b'"}'


def test_it_accepts_booleans_and_null() -> None:
    assert crypto.canonical([True, False, None]) == b"[true,false,null]"


@pytest.mark.parametrize("value", [Decimal("1"), b"bytes", {1, 2}, object(), "\ud800"])
def test_it_rejects_what_json_cannot_say(value: object) -> None:
    with pytest.raises(crypto.NonCanonicalValue):
        crypto.canonical(value)


def test_it_rejects_nesting_deeper_than_the_limit() -> None:
    value: list[Any] = []
    for _ in range(crypto.MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(crypto.NonCanonicalValue, match="deep"):
        crypto.canonical(value)
    assert crypto.canonical(value[0])


@pytest.mark.parametrize(
    "text", ['{"a": 1.0}', '{"a": 1e3}', '{"a": NaN}', "[Infinity]", '{"a": 1, "a": 2}', "{"]
)
def test_it_parses_only_wire_format_json(text: str) -> None:
    with pytest.raises(crypto.NonCanonicalValue):
        crypto.loads(text)


def test_it_parses_wire_format_json() -> None:
    assert crypto.loads(b'{"a": [1, "x", true, null]}') == {"a": [1, "x", True, None]}


# --- the fixed transaction vector ------------------------------------------------------------


def test_it_signs_the_fixed_transaction_vector(rfc_pair: KeyPair) -> None:
    tx = crypto.sign_transaction(
        keypair=rfc_pair,
        chain="gridplatform-test",
        type="credit.transfer",
        nonce=0,
        payload={"to": RFC8032_ADDRESS, "amount": 1500},
    )
    assert tx.sender == RFC8032_ADDRESS
    assert tx.signing_bytes() == VECTOR_SIGNING_BYTES
    assert tx.id == VECTOR_ID
    assert tx.id == hashlib.sha256(VECTOR_SIGNING_BYTES).hexdigest()
    assert tx.id_bytes == bytes.fromhex(VECTOR_ID)
    assert tx.signature == VECTOR_SIGNATURE
    assert tx.to_json() == _vector_json()


def test_it_verifies_the_fixed_transaction_vector() -> None:
    tx = Transaction.from_json(_vector_json())
    crypto.verify_transaction(tx, RFC8032_PUBLIC)
    assert tx.id == VECTOR_ID


def test_it_signs_exactly_the_documented_bytes() -> None:
    # Independently of our code: the signature is Ed25519 over the signing bytes.
    identity.verify(RFC8032_PUBLIC, VECTOR_SIGNING_BYTES, VECTOR_SIGNATURE)


def test_it_matches_the_outside_client_example_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: sign a transaction -->\n```python\n(.*?)```", text, re.S)
    assert match, "the example is missing from docs/ledger.md"
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(match.group(1), namespace)  # noqa: S102  # our own documentation
    assert namespace["transaction"] == _vector_json()
    assert namespace["transaction_id"] == VECTOR_ID
    assert json.loads(out.getvalue()) == _vector_json()


# --- transaction rejections ------------------------------------------------------------------


@pytest.mark.parametrize("obj", [None, [], "tx", 1])
def test_it_rejects_a_transaction_that_is_not_an_object(obj: object) -> None:
    with pytest.raises(crypto.TransactionNotAnObject):
        Transaction.from_json(obj)


@pytest.mark.parametrize("field", sorted(crypto.TRANSACTION_FIELDS))
def test_it_rejects_a_transaction_missing_a_field(field: str) -> None:
    obj = _vector_json()
    del obj[field]
    with pytest.raises(crypto.MissingFields, match=field):
        Transaction.from_json(obj)


@pytest.mark.parametrize("extra", ["fee", "id", "Signature", ""])
def test_it_rejects_a_transaction_with_an_extra_field(extra: str) -> None:
    obj = {**_vector_json(), extra: 1}
    with pytest.raises(crypto.UnexpectedFields):
        Transaction.from_json(obj)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain", 1),
        ("chain", None),
        ("type", ["credit.transfer"]),
        ("sender", b"0121"),
        ("nonce", "0"),
        ("nonce", True),
        ("nonce", 0.0),
        ("nonce", None),
        ("payload", []),
        ("payload", "{}"),
        ("payload", None),
        ("signature", None),
        ("signature", 5),
    ],
)
def test_it_rejects_a_transaction_field_of_the_wrong_type(field: str, value: object) -> None:
    obj = {**_vector_json(), field: value}
    with pytest.raises(crypto.WrongFieldType, match=field):
        Transaction.from_json(obj)


@pytest.mark.parametrize("chain", ["", "Gridplatform", "-grid", "grid platform", "x" * 65, "ü"])
def test_it_rejects_a_bad_chain_id(chain: str) -> None:
    with pytest.raises(crypto.InvalidChainId):
        Transaction.from_json({**_vector_json(), "chain": chain})


@pytest.mark.parametrize("type_", ["", "Credit.transfer", ".credit", "credit transfer"])
def test_it_rejects_a_bad_transaction_type(type_: str) -> None:
    with pytest.raises(crypto.InvalidTransactionType):
        Transaction.from_json({**_vector_json(), "type": type_})


@pytest.mark.parametrize(
    "sender",
    [
        RFC8032_ADDRESS[:-1] + "3",  # a typo: checksum
        RFC8032_ADDRESS.upper(),
        RFC8032_ADDRESS[:-2],
        "02" + RFC8032_ADDRESS[2:],  # unknown version
        RFC8032_PUBLIC,  # a public key is not an address
    ],
)
def test_it_rejects_a_bad_sender_address(sender: str) -> None:
    with pytest.raises(crypto.InvalidSender) as caught:
        Transaction.from_json({**_vector_json(), "sender": sender})
    assert isinstance(caught.value.__cause__, identity.InvalidAddress)


@pytest.mark.parametrize("nonce", [-1, 2**53, 10**20])
def test_it_rejects_a_nonce_out_of_range(nonce: int) -> None:
    with pytest.raises(crypto.InvalidNonce):
        Transaction.from_json({**_vector_json(), "nonce": nonce})


@pytest.mark.parametrize(
    "payload",
    [
        {"amount": 1500.0},
        {"to": RFC8032_ADDRESS, "amount": 2**53},
        {"legs": [{"amount": 0.5}]},
        {"x": {1: 2}},
        {"x": Decimal("1.5")},
    ],
)
def test_it_rejects_a_payload_that_is_not_canonical(payload: dict[str, Any]) -> None:
    with pytest.raises(crypto.InvalidPayload):
        Transaction.from_json({**_vector_json(), "payload": payload})


@pytest.mark.parametrize(
    "signature", ["", VECTOR_SIGNATURE[:-2], VECTOR_SIGNATURE.upper(), "zz" + VECTOR_SIGNATURE[2:]]
)
def test_it_rejects_a_malformed_signature(signature: str) -> None:
    with pytest.raises(crypto.MalformedSignature):
        Transaction.from_json({**_vector_json(), "signature": signature})


def test_it_refuses_to_sign_a_malformed_transaction(rfc_pair: KeyPair) -> None:
    with pytest.raises(crypto.InvalidPayload):
        crypto.sign_transaction(
            keypair=rfc_pair, chain="c", type="t", nonce=0, payload={"amount": 1.5}
        )
    with pytest.raises(crypto.InvalidNonce):
        crypto.sign_transaction(keypair=rfc_pair, chain="c", type="t", nonce=-1, payload={})


def test_it_derives_every_error_from_one_base() -> None:
    for name in (
        "NonCanonicalValue",
        "MalformedTransaction",
        "TransactionNotAnObject",
        "MissingFields",
        "UnexpectedFields",
        "WrongFieldType",
        "InvalidChainId",
        "InvalidTransactionType",
        "InvalidSender",
        "InvalidNonce",
        "InvalidPayload",
        "MalformedSignature",
        "BadTransactionSignature",
        "SenderKeyMismatch",
        "MalformedHash",
        "LeafIndexOutOfRange",
        "InvalidInclusionProof",
    ):
        assert issubclass(getattr(crypto, name), crypto.LedgerCryptoError), name
    assert issubclass(crypto.BadTransactionSignature, identity.BadSignature)


def test_it_rejects_a_bad_signature() -> None:
    flipped = VECTOR_SIGNATURE[:10] + ("0" if VECTOR_SIGNATURE[10] != "0" else "1")
    flipped += VECTOR_SIGNATURE[11:]
    tx = Transaction.from_json({**_vector_json(), "signature": flipped})
    with pytest.raises(crypto.BadTransactionSignature):
        crypto.verify_transaction(tx, RFC8032_PUBLIC)


def test_it_rejects_a_signature_by_another_key_for_the_sender(rfc_pair: KeyPair) -> None:
    other = _other_pair()
    tx = Transaction.from_json({**_vector_json(), "signature": other.sign(VECTOR_SIGNING_BYTES)})
    with pytest.raises(crypto.BadTransactionSignature):
        crypto.verify_transaction(tx, RFC8032_PUBLIC)


def test_it_rejects_a_key_that_is_not_the_senders() -> None:
    tx = Transaction.from_json(_vector_json())
    with pytest.raises(crypto.SenderKeyMismatch):
        crypto.verify_transaction(tx, _other_pair().public_key_hex)


def test_it_rejects_a_transaction_signed_by_its_key_but_claiming_another_sender() -> None:
    other = _other_pair()
    tx = crypto.sign_transaction(keypair=other, chain="c", type="t", nonce=0, payload={})
    forged = Transaction.from_json({**tx.to_json(), "sender": RFC8032_ADDRESS})
    with pytest.raises(crypto.SenderKeyMismatch):
        crypto.verify_transaction(forged, other.public_key_hex)
    with pytest.raises(crypto.BadTransactionSignature):
        crypto.verify_transaction(forged, RFC8032_PUBLIC)


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"to": RFC8032_ADDRESS, "amount": 1501}},
        {"payload": {"to": RFC8032_ADDRESS, "amount": 1500, "memo": ""}},
        {"payload": {"to": RFC8032_ADDRESS, "amount": "1500"}},
        {"nonce": 1},
        {"chain": "gridplatform-main"},
        {"type": "credit.issue"},
    ],
)
def test_it_rejects_a_tampered_transaction(change: dict[str, Any]) -> None:
    tx = Transaction.from_json({**_vector_json(), **change})
    assert tx.id != VECTOR_ID
    with pytest.raises(crypto.BadTransactionSignature):
        crypto.verify_transaction(tx, RFC8032_PUBLIC)


def test_it_keeps_its_own_copy_of_the_payload(rfc_pair: KeyPair) -> None:
    payload: dict[str, Any] = {"to": RFC8032_ADDRESS, "amount": 1500}
    tx = crypto.sign_transaction(
        keypair=rfc_pair,
        chain="gridplatform-test",
        type="credit.transfer",
        nonce=0,
        payload=payload,
    )
    payload["amount"] = 1_000_000
    tx.to_json()["payload"]["amount"] = 7
    assert tx.id == VECTOR_ID
    crypto.verify_transaction(tx, RFC8032_PUBLIC)


def test_it_compares_transactions_by_their_bytes() -> None:
    a = Transaction.from_json({**_vector_json(), "payload": {"flag": 1}})
    b = Transaction.from_json({**_vector_json(), "payload": {"flag": True}})
    assert a.payload == b.payload  # Python thinks 1 == True ...
    assert a != b  # ... the wire does not.
    assert len({a, b, Transaction.from_json({**_vector_json(), "payload": {"flag": 1}})}) == 2


def test_it_recognises_its_own_json_exactly() -> None:
    tx = Transaction.from_json({**_vector_json(), "payload": {"flag": 1, "list": [1, "a"]}})
    assert tx.matches_json(tx.to_json())
    for change in (
        {"payload": {"flag": True, "list": [1, "a"]}},  # equal in Python, not on the wire
        {"payload": {"flag": 1, "list": [1.0, "a"]}},
        {"payload": {"flag": 1, "list": [1, "a"], "extra": 0}},
        {"nonce": True},
        {"signature": "ab" * 64},
    ):
        assert not tx.matches_json({**tx.to_json(), **change}), change
    assert not tx.matches_json({**tx.to_json(), "extra": 1})
    assert not tx.matches_json([tx.to_json()])


# --- transaction properties ------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.text(st.characters(codec="utf-8"), max_size=12)
)
_json_keys = st.text(st.characters(codec="utf-8"), max_size=8)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_json_keys, children, max_size=4)
    ),
    max_leaves=12,
)
_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
_signers = st.sampled_from([KeyPair(private_key=bytes([i]) * 32) for i in range(1, 4)])


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    return crypto.sign_transaction(
        keypair=draw(_signers),
        chain=draw(_names),
        type=draw(_names),
        nonce=draw(st.integers(min_value=0, max_value=2**53 - 1)),
        payload=draw(st.dictionaries(_json_keys, _json_values, max_size=5)),
    )


@given(transactions())
def test_it_round_trips_transactions_through_json(tx: Transaction) -> None:
    text = json.dumps(tx.to_json())
    again = Transaction.from_json(crypto.loads(text))
    assert again == tx
    assert again.id == tx.id
    assert again.to_json() == tx.to_json()
    assert crypto.canonical(again.to_json()) == crypto.canonical(tx.to_json())
    # The signing bytes are a parse of themselves: what is signed is what is read.
    assert crypto.canonical(crypto.loads(tx.signing_bytes())) == tx.signing_bytes()


@given(transactions())
def test_it_verifies_every_signed_transaction(tx: Transaction) -> None:
    signer = next(
        pair
        for pair in (KeyPair(private_key=bytes([i]) * 32) for i in range(1, 4))
        if pair.address == tx.sender
    )
    crypto.verify_transaction(tx, signer.public_key_hex)


# --- Merkle trees ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(CT_ROOTS))
def test_it_computes_the_certificate_transparency_roots(size: int) -> None:
    assert crypto.merkle_tree_hash(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize("index", sorted(CT_PATHS))
def test_it_computes_the_certificate_transparency_audit_paths(index: int) -> None:
    path = crypto.audit_path(CT_LEAVES, index)
    assert [p.hex() for p in path] == CT_PATHS[index]
    crypto.verify_inclusion(CT_LEAVES[index], index, 8, path, bytes.fromhex(CT_ROOTS[8]))


def test_it_roots_an_empty_block_at_the_hash_of_nothing() -> None:
    assert crypto.merkle_root([]).hex() == CT_ROOTS[0]
    assert crypto.tx_root_hex([]) == CT_ROOTS[0]


def test_it_roots_transactions_at_their_raw_ids() -> None:
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    assert crypto.merkle_root(ids) == crypto.merkle_tree_hash(ids)
    assert crypto.tx_root_hex([i.hex() for i in ids]) == crypto.merkle_root(ids).hex()


@pytest.mark.parametrize("leaf", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_it_takes_only_32_byte_transaction_ids_as_leaves(leaf: Any) -> None:
    with pytest.raises(crypto.MalformedHash):
        crypto.merkle_root([b"\x00" * 32, leaf])
    with pytest.raises(crypto.MalformedHash):
        crypto.inclusion_proof([leaf], 0)


@pytest.mark.parametrize(("size", "index"), [(0, 0), (1, 1), (5, 5), (5, -1)])
def test_it_has_no_proof_for_a_leaf_outside_the_tree(size: int, index: int) -> None:
    with pytest.raises(crypto.LeafIndexOutOfRange):
        crypto.inclusion_proof([b"\x00" * 32] * size, index)


def _ids(n: int) -> list[bytes]:
    return [hashlib.sha256(b"tx %d" % i).digest() for i in range(n)]


@pytest.mark.parametrize("size", range(1, 21))
def test_it_proves_and_verifies_every_leaf(size: int) -> None:
    leaves = _ids(size)
    root = crypto.merkle_root(leaves)
    wrong_root = hashlib.sha256(root).digest()
    stranger = hashlib.sha256(b"not in the tree").digest()
    for index in range(size):
        proof = crypto.inclusion_proof(leaves, index)
        assert len(proof) <= (size - 1).bit_length()
        crypto.verify_inclusion(leaves[index], index, size, proof, root)
        with pytest.raises(crypto.InvalidInclusionProof):
            crypto.verify_inclusion(leaves[index], index, size, proof, wrong_root)
        with pytest.raises(crypto.InvalidInclusionProof):
            crypto.verify_inclusion(stranger, index, size, proof, root)
        for other in range(size + 2):
            if other != index:
                with pytest.raises(crypto.InvalidInclusionProof):
                    crypto.verify_inclusion(leaves[index], other, size, proof, root)
            if other != index and other < size:
                # Another leaf's data at this leaf's position, with this leaf's proof.
                with pytest.raises(crypto.InvalidInclusionProof):
                    crypto.verify_inclusion(leaves[other], index, size, proof, root)
        # No wrong-size check: the root does not bind the tree size (a proof in a 3-leaf tree
        # also fits a 4-leaf tree with the same root). The size comes from the signed block.
        with pytest.raises(crypto.InvalidInclusionProof):
            crypto.verify_inclusion(leaves[index], index, size, [*proof, stranger], root)
        if proof:
            with pytest.raises(crypto.InvalidInclusionProof):
                crypto.verify_inclusion(leaves[index], index, size, proof[:-1], root)
            for position in range(len(proof)):
                bent = [*proof]
                bent[position] = stranger
                with pytest.raises(crypto.InvalidInclusionProof):
                    crypto.verify_inclusion(leaves[index], index, size, bent, root)


@pytest.mark.parametrize(
    ("index", "tree_size", "proof", "root"),
    [
        (-1, 1, [], b"\x00" * 32),
        (0, 0, [], b"\x00" * 32),
        (True, 2, [b"\x00" * 32], b"\x00" * 32),
        (0, 1, [], b"\x00" * 31),
        (0, 2, [b"\x00" * 31], b"\x00" * 32),
        (0, 2, ["00" * 32], b"\x00" * 32),
    ],
)
def test_it_rejects_a_malformed_inclusion_proof(
    index: int, tree_size: int, proof: list[Any], root: bytes
) -> None:
    with pytest.raises(crypto.InvalidInclusionProof):
        crypto.verify_inclusion(b"\x00" * 32, index, tree_size, proof, root)


def test_it_speaks_hex_to_the_api() -> None:
    ids = [leaf.hex() for leaf in _ids(7)]
    root = crypto.tx_root_hex(ids)
    proof = crypto.inclusion_proof_hex(ids, 4)
    assert re.fullmatch(r"[0-9a-f]{64}", root)
    assert all(re.fullmatch(r"[0-9a-f]{64}", p) for p in proof)
    crypto.verify_inclusion_hex(ids[4], 4, 7, proof, root)
    with pytest.raises(crypto.InvalidInclusionProof):
        crypto.verify_inclusion_hex(ids[4], 4, 7, proof, root.upper())
    with pytest.raises(crypto.InvalidInclusionProof):
        crypto.verify_inclusion_hex(ids[4], 4, 7, [*proof[:-1], "xyz"], root)
    with pytest.raises(crypto.InvalidInclusionProof):
        crypto.verify_inclusion_hex(ids[3], 4, 7, proof, root)
    with pytest.raises(crypto.MalformedHash):
        crypto.tx_root_hex([*ids, "00"])


def test_it_signs_for_an_address_whose_key_was_rotated(rfc_pair: KeyPair) -> None:
    new_key = KeyPair(private_key=hashlib.sha256(b"rotated").digest())
    tx = crypto.sign_transaction(
        keypair=new_key,
        sender=rfc_pair.address,
        chain="gridplatform-test",
        type="credit.redeem",
        nonce=3,
        payload={"amount": 1},
    )
    assert tx.sender == rfc_pair.address != new_key.address
    identity.verify(new_key.public_key_hex, tx.signing_bytes(), tx.signature)
    with pytest.raises(identity.BadSignature):
        identity.verify(rfc_pair.public_key_hex, tx.signing_bytes(), tx.signature)
