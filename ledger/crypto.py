"""The ledger's wire format: canonical JSON, signed transactions, and Merkle trees.

No Django import: validators, the API and outside clients all depend on these exact bytes, and
the module is tested and benchmarked on its own. Identities (key pairs, addresses, signatures)
come from :mod:`ledger.identity`.

Canonical JSON
==============

Everything that is signed or hashed is first turned into bytes by RFC 8785 (JSON
Canonicalization Scheme, the ``rfc8785`` package): UTF-8, object keys sorted by their UTF-16 code
units, no insignificant whitespace. On top of RFC 8785 we allow only:

* objects with string keys, arrays, strings, ``true``/``false``/``null``;
* integers in the interval ``[-(2**53 - 1), 2**53 - 1]``, the integers an IEEE 754 double holds
  exactly (``rfc8785`` itself refuses anything larger, since JSON numbers are doubles to most
  parsers). A quantity that may exceed it travels as a decimal string (``"12345678901234567890"``);
* no floats at all, not even ``1.0``: amounts are integer minor units or Wh, or decimal strings;
* nesting at most :data:`MAX_DEPTH` levels deep.

Anything else raises :class:`NonCanonicalValue`.

Transactions
============

A transaction is this JSON object, with exactly these keys::

    {
      "chain":     str,  network id from genesis, 1-64 of [a-z0-9._-], starting [a-z0-9]
      "type":      str,  transaction type, same alphabet, e.g. "credit.transfer"
      "sender":    str,  50-hex account address (see ledger.identity)
      "nonce":     int,  0 <= nonce <= 2**53 - 1; per sender strictly sequential from 0
      "payload":   object, canonical JSON as above (no floats)
      "signature": str,  128 lowercase hex: Ed25519 signature of the signing bytes
    }

* **Signing bytes**: the canonical JSON of the object *without* ``"signature"``.
* **Transaction id**: SHA-256 of the signing bytes, 64 lowercase hex characters. The id does
  not cover the signature (a block commits to signatures separately, see ``ledger.blocks``).
* ``chain`` makes a transaction signed for one network worthless on another.

Merkle trees
============

RFC 6962 (Certificate Transparency) section 2.1. For a block, the leaves are the raw 32-byte
transaction ids in block order::

    MTH({})        = SHA-256(b"")
    MTH({d0})      = SHA-256(0x00 || d0)
    MTH(D[n])      = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k: largest power of 2 < n

Inclusion proofs are RFC 6962 audit paths ``PATH(m, D[n])`` and are verified with the algorithm
of RFC 9162 section 2.1.3.2. Over the API, roots and proof entries are 64 lowercase hex.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from ledger.identity import (
    BadSignature,
    IdentityError,
    KeyPair,
    address_from_public_key,
    validate_address,
    verify,
)

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 32
HASH_HEX_LENGTH = 64
SIGNATURE_HEX_LENGTH = 128
TRANSACTION_FIELDS = frozenset({"chain", "type", "sender", "nonce", "payload", "signature"})

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_HEX = re.compile(r"[0-9a-f]*")
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --- errors ----------------------------------------------------------------------------------


class LedgerCryptoError(Exception):
    """Base of every error the ledger's wire format raises (this module and ledger.blocks)."""


class NonCanonicalValue(LedgerCryptoError, ValueError):
    """A value that canonical JSON does not allow: a float, a big integer, a non-string key..."""


class MalformedTransaction(LedgerCryptoError):
    """Base of every reason a transaction object is not well-formed."""


class TransactionNotAnObject(MalformedTransaction):
    """The transaction is not a JSON object."""


class MissingFields(MalformedTransaction):
    """One or more of the six fields are absent."""


class UnexpectedFields(MalformedTransaction):
    """Fields beyond the six are present."""


class WrongFieldType(MalformedTransaction):
    """A field has the wrong JSON type (a bool is not an integer)."""


class InvalidChainId(MalformedTransaction):
    """``chain`` is not 1-64 characters of ``[a-z0-9._-]`` starting with ``[a-z0-9]``."""


class InvalidTransactionType(MalformedTransaction):
    """``type`` is not 1-64 characters of ``[a-z0-9._-]`` starting with ``[a-z0-9]``."""


class InvalidSender(MalformedTransaction):
    """``sender`` is not a valid address (wrong length or version, or a checksum typo)."""


class InvalidNonce(MalformedTransaction):
    """``nonce`` is negative or above 2**53 - 1."""


class InvalidPayload(MalformedTransaction):
    """``payload`` is not canonical JSON: a float, a big integer, too deep..."""


class MalformedSignature(MalformedTransaction):
    """``signature`` is not 128 lowercase hex characters."""


class BadTransactionSignature(LedgerCryptoError, BadSignature):
    """The signature does not verify under the sender's public key."""


class SenderKeyMismatch(LedgerCryptoError):
    """The public key given for verification is not the key of the sender's address."""


class MalformedHash(LedgerCryptoError, ValueError):
    """Not a SHA-256 hash (32 bytes, or 64 lowercase hex characters)."""


class LeafIndexOutOfRange(LedgerCryptoError, IndexError):
    """An inclusion proof was asked for a leaf the tree does not have."""


class InvalidInclusionProof(LedgerCryptoError):
    """The inclusion proof does not prove the leaf at that index under that root."""


# --- canonical JSON --------------------------------------------------------------------------


def _check_canonical(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NonCanonicalValue(f"{path}: nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _check_text(value, path)
        return
    if value is None or kind is bool:
        return
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonicalValue(
                f"{path}: integer outside +-(2**53 - 1); send big quantities as decimal strings"
            )
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise NonCanonicalValue(f"{path}: object keys must be strings, not {key!r}")
            if not key.isascii():
                _check_text(key, path)
            if type(item) is not str or not item.isascii():
                _check_canonical(item, f"{path}.{key}", depth + 1)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            if type(item) is not str or not item.isascii():
                _check_canonical(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, float):
        raise NonCanonicalValue(f"{path}: floats are not allowed; use integers or decimal strings")
    if isinstance(value, (str, int, list, tuple, dict)):  # subclasses: check as their base
        base: Any = next(t for t in (str, int, list, tuple, dict) if isinstance(value, t))
        _check_canonical(base(value), path, depth)
        return
    raise NonCanonicalValue(f"{path}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NonCanonicalValue(f"{path}: a string holds a lone surrogate") from None


# With only ASCII in the output, Python's encoder and RFC 8785 write the same bytes: keys sorted by
# code point equal keys sorted by UTF-16 code unit, the escapes are the same (\" \\ \b \f \n \r
# \t, other controls as lowercase \u00xx), and integers within 2**53 print alike. Anything
# non-ASCII goes to the rfc8785 package, whose key order and escaping are the specification's.
# tests/ledger/test_crypto.py checks the two agree on generated values.
_ENCODE = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def encode_checked(obj: object) -> bytes:
    """RFC 8785 bytes of a value already known to pass the checks (see :func:`canonical`).

    For values this process built from checked parts (blocks of parsed transactions, its own
    consensus state, state whose every write was checked); anything from outside goes through
    :func:`canonical`.
    """
    text = _ENCODE(obj)
    if text.isascii():
        return text.encode("ascii")
    try:
        return rfc8785.dumps(obj)  # type: ignore[arg-type]  # checked by the caller
    except rfc8785.CanonicalizationError as error:
        raise NonCanonicalValue(str(error)) from None


def check_canonical(obj: object) -> None:
    """Raise NonCanonicalValue unless ``obj`` follows the rules in the module docstring."""
    _check_canonical(obj, "$", 0)


def canonical(obj: object) -> bytes:
    """The RFC 8785 canonical JSON bytes of ``obj`` under the rules in the module docstring."""
    _check_canonical(obj, "$", 0)
    return encode_checked(obj)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise NonCanonicalValue("duplicate object key")
    return result


def _reject_number(text: str) -> Any:
    raise NonCanonicalValue(f"{text} is not allowed; use integers or decimal strings")


def loads(data: str | bytes) -> Any:
    """Parse JSON text for this wire format: no floats, NaN or duplicate keys.

    Use it where signed objects arrive as text (the API, stores), so that ``{"a": 1, "a": 2}``
    never means whatever the last parser decided. Raises NonCanonicalValue.
    """
    try:
        value = json.loads(
            data,
            object_pairs_hook=_reject_duplicate_keys,
            parse_float=_reject_number,
            parse_constant=_reject_number,
        )
    except (ValueError, RecursionError) as error:
        if isinstance(error, NonCanonicalValue):
            raise
        raise NonCanonicalValue(f"not JSON: {error}") from None
    _check_canonical(value, "$", 0)
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_from_hex(text: object) -> bytes:
    """The 32 bytes of a 64-lowercase-hex hash, or MalformedHash."""
    if not isinstance(text, str) or len(text) != HASH_HEX_LENGTH or not _HEX.fullmatch(text):
        raise MalformedHash("expected 64 lowercase hex characters")
    return bytes.fromhex(text)


def is_lower_hex(text: str, length: int) -> bool:
    return len(text) == length and _HEX.fullmatch(text) is not None


def is_name(text: str) -> bool:
    """Whether ``text`` is a chain id, transaction type or result code: ``[a-z0-9][a-z0-9._-]*``."""
    return _NAME.fullmatch(text) is not None


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, tuples as lists, scalars); faster than
    ``copy.deepcopy``, which this module's hot paths used to spend most of their time in."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [copy_json(item) for item in value]
    return value


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: like ``==``, but ``1``, ``1.0`` and ``true`` are all different."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if type(a) is list or type(a) is tuple:
        return len(a) == len(b) and all(map(_same_json, a, b))
    return bool(a == b)


# --- transactions ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Transaction:
    """A signed transaction. Construction validates the form, not the signature.

    ``payload`` is a private deep copy; treat it as read-only. Two transactions are equal when
    their signing bytes and signatures are equal.
    """

    chain: str
    type: str
    sender: str
    nonce: int
    payload: dict[str, Any]
    signature: str

    def __post_init__(self) -> None:
        for name, expected in (
            ("chain", str),
            ("type", str),
            ("sender", str),
            ("nonce", int),
            ("payload", dict),
            ("signature", str),
        ):
            value = getattr(self, name)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise WrongFieldType(f"{name} must be a JSON {_json_type_name(expected)}")
        if not is_name(self.chain):
            raise InvalidChainId("chain must be 1-64 characters of [a-z0-9._-]")
        if not is_name(self.type):
            raise InvalidTransactionType("type must be 1-64 characters of [a-z0-9._-]")
        try:
            validate_address(self.sender)
        except IdentityError as error:
            raise InvalidSender(f"sender: {error}") from error
        if not 0 <= self.nonce <= MAX_SAFE_INTEGER:
            raise InvalidNonce("nonce must be between 0 and 2**53 - 1")
        try:
            _check_canonical(self.payload, "payload", 1)
        except NonCanonicalValue as error:
            raise InvalidPayload(str(error)) from None
        if not is_lower_hex(self.signature, SIGNATURE_HEX_LENGTH):
            raise MalformedSignature("signature must be 128 lowercase hex characters")
        # A private copy: the caller's dict may change later, the signed transaction may not.
        object.__setattr__(self, "payload", copy_json(self.payload))

    @classmethod
    def from_json(cls, obj: object) -> Transaction:
        """Parse a decoded JSON object strictly: exactly the six fields, each of its type."""
        if not isinstance(obj, dict):
            raise TransactionNotAnObject("a transaction is a JSON object")
        missing = TRANSACTION_FIELDS - obj.keys()
        if missing:
            raise MissingFields(f"missing fields: {', '.join(sorted(missing))}")
        unexpected = obj.keys() - TRANSACTION_FIELDS
        if unexpected:
            names = ", ".join(sorted(repr(key) for key in unexpected))
            raise UnexpectedFields(f"unexpected fields: {names}")
        return cls(
            chain=obj["chain"],
            type=obj["type"],
            sender=obj["sender"],
            nonce=obj["nonce"],
            payload=obj["payload"],
            signature=obj["signature"],
        )

    def matches_json(self, obj: object) -> bool:
        """Whether ``obj`` is exactly this transaction's JSON: the same fields, values and JSON
        types (``1`` and ``true`` differ). Lets a validator reuse a transaction it has parsed
        and verified already when a block brings it again, instead of parsing it anew."""
        return (
            isinstance(obj, dict)
            and obj.keys() == TRANSACTION_FIELDS
            and obj["signature"] == self.signature
            and obj["chain"] == self.chain
            and obj["type"] == self.type
            and obj["sender"] == self.sender
            and type(obj["nonce"]) is int
            and obj["nonce"] == self.nonce
            and _same_json(obj["payload"], self.payload)
        )

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "type": self.type,
            "sender": self.sender,
            "nonce": self.nonce,
            "payload": copy_json(self.payload),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned_json(), "signature": self.signature}

    def signing_bytes(self) -> bytes:
        return self._signing_bytes

    # Computed once: a validator needs them at admission, in the Merkle root, in execution and
    # in the store, and canonicalization is the costly part. Safe because the transaction is
    # frozen and its payload is a private copy.
    @functools.cached_property
    def _signing_bytes(self) -> bytes:
        # Every field was checked at construction, and the payload is a private copy (read
        # here, not copied again).
        unsigned = {"chain": self.chain, "type": self.type, "sender": self.sender}
        return encode_checked(unsigned | {"nonce": self.nonce, "payload": self.payload})

    @functools.cached_property
    def id_bytes(self) -> bytes:
        """The raw 32-byte id: the Merkle leaf of this transaction."""
        return hashlib.sha256(self.signing_bytes()).digest()

    @functools.cached_property
    def id(self) -> str:
        return self.id_bytes.hex()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transaction):
            return NotImplemented
        # Canonical bytes, not dict equality: in Python {"a": 1} == {"a": True}.
        return self.signature == other.signature and self.signing_bytes() == other.signing_bytes()

    def __hash__(self) -> int:
        return hash((self.signing_bytes(), self.signature))


def _json_type_name(expected: type) -> str:
    return {str: "string", int: "integer", dict: "object"}[expected]


def transaction_signing_bytes(
    *, chain: str, type: str, sender: str, nonce: int, payload: dict[str, Any]
) -> bytes:
    return canonical(
        {"chain": chain, "type": type, "sender": sender, "nonce": nonce, "payload": payload}
    )


def sign_transaction(
    *,
    keypair: KeyPair,
    chain: str,
    type: str,
    nonce: int,
    payload: dict[str, Any],
    sender: str | None = None,
) -> Transaction:
    """A transaction from ``keypair``'s address, signed by it. Raises MalformedTransaction.

    ``sender``: the account's address when it is not the key's own, after a ``key.rotate`` (an
    address stays the same when its key changes)."""
    sender = keypair.address if sender is None else sender
    # Validate the fields before signing, so that nothing malformed is ever signed.
    Transaction(
        chain=chain,
        type=type,
        sender=sender,
        nonce=nonce,
        payload=payload,
        signature="0" * SIGNATURE_HEX_LENGTH,
    )
    signing_bytes = transaction_signing_bytes(
        chain=chain, type=type, sender=sender, nonce=nonce, payload=payload
    )
    return Transaction(
        chain=chain,
        type=type,
        sender=sender,
        nonce=nonce,
        payload=payload,
        signature=keypair.sign(signing_bytes),
    )


def verify_transaction(tx: Transaction, public_key_hex: str) -> None:
    """Raise unless ``tx`` is signed by ``public_key_hex`` and that key owns ``tx.sender``.

    Raises SenderKeyMismatch, BadTransactionSignature, or identity.InvalidPublicKey when the
    key itself is malformed (the key comes from our own registry, so that is a data error).
    Nonce and permission checks need the ledger's state and are not done here.
    """
    if address_from_public_key(public_key_hex) != tx.sender:
        raise SenderKeyMismatch("the public key does not belong to the sender's address")
    try:
        verify(public_key_hex, tx.signing_bytes(), tx.signature)
    except BadSignature:
        raise BadTransactionSignature("transaction signature does not verify") from None


# --- Merkle trees (RFC 6962 section 2.1) -----------------------------------------------------


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return hashes[start]
    k = _split(n)
    return _node_hash(
        _subtree_hash(hashes, start, start + k), _subtree_hash(hashes, start + k, end)
    )


def merkle_tree_hash(data: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over arbitrary leaf data (RFC 6962 section 2.1)."""
    if not data:
        return hashlib.sha256(b"").digest()
    return _subtree_hash([_leaf_hash(d) for d in data], 0, len(data))


def audit_path(data: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) over arbitrary leaf data (RFC 6962 section 2.1.1), leaf-side first."""
    if not 0 <= index < len(data):
        raise LeafIndexOutOfRange(f"no leaf {index} in a tree of {len(data)}")
    hashes = [_leaf_hash(d) for d in data]
    path: list[bytes] = []
    start, end, m = 0, len(hashes), index
    # Walk down from the root, collecting the sibling subtree hashes; PATH lists them from the
    # leaf upwards, so they are reversed at the end.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            path.append(_subtree_hash(hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_hash(hashes, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def _check_ids(leaves: Sequence[bytes]) -> None:
    for leaf in leaves:
        if not isinstance(leaf, bytes) or len(leaf) != 32:
            raise MalformedHash("a transaction Merkle leaf is a raw 32-byte transaction id")


def merkle_root(leaves: list[bytes]) -> bytes:
    """The Merkle root of a block's raw 32-byte transaction ids."""
    _check_ids(leaves)
    return merkle_tree_hash(leaves)


def inclusion_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The audit path proving the transaction id at ``index`` is in the tree of ``leaves``."""
    _check_ids(leaves)
    return audit_path(leaves, index)


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise InvalidInclusionProof unless ``proof`` puts ``leaf`` at ``index`` under ``root``.

    RFC 9162 section 2.1.3.2. ``leaf`` is the leaf's data (for a block, the raw transaction id),
    not its leaf hash.
    """
    if (
        type(index) is not int
        or type(tree_size) is not int
        or not 0 <= index < tree_size
        or not isinstance(root, bytes)
        or len(root) != 32
        or any(not isinstance(p, bytes) or len(p) != 32 for p in proof)
    ):
        raise InvalidInclusionProof("malformed inclusion proof")
    fn, sn = index, tree_size - 1
    r = _leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            raise InvalidInclusionProof("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or not hmac.compare_digest(r, root):
        raise InvalidInclusionProof("inclusion proof does not lead to the root")


# --- hex forms for the API -------------------------------------------------------------------


def tx_root_hex(tx_ids: Sequence[str]) -> str:
    """The Merkle root, as hex, of transaction ids given as hex."""
    return merkle_tree_hash([hash_from_hex(tx_id) for tx_id in tx_ids]).hex()


def inclusion_proof_hex(tx_ids: Sequence[str], index: int) -> list[str]:
    return [h.hex() for h in audit_path([hash_from_hex(tx_id) for tx_id in tx_ids], index)]


def verify_inclusion_hex(
    tx_id: str, index: int, tree_size: int, proof: Sequence[str], root: str
) -> None:
    """verify_inclusion for hex inputs; a proof that does not parse is an invalid proof."""
    try:
        leaf = hash_from_hex(tx_id)
        path = [hash_from_hex(p) for p in proof]
        root_bytes = hash_from_hex(root)
    except MalformedHash:
        raise InvalidInclusionProof("malformed inclusion proof") from None
    verify_inclusion(leaf, index, tree_size, path, root_bytes)
