"""The state trie: a 16-ary Merkle trie over the ledger state, with compressed paths.

No Django import. The state root of protocol 2 is the root hash of this trie. Its exact
definition (``docs/ledger.md``, "The state trie", has it with test vectors):

Paths
    A key's path is ``SHA-256(UTF-8 key)``: 32 bytes read as 64 nibbles (4-bit digits), high
    nibble of each byte first. Keys are hashed, so paths are spread evenly and a trie of n keys
    is about log16(n) levels deep whatever the keys look like.

Values
    ``value_hash = SHA-256(RFC 8785 canonical JSON of the value)``.

Nodes (``H`` is SHA-256; ``||`` concatenation; one tag byte first, for domain separation)
    * empty trie: ``H(0x00)``;
    * leaf: ``H(0x01 || key_hash || value_hash)`` (32 + 32 bytes): one key and its value;
    * branch: ``H(0x02 || n || prefix || bitmap || child hashes)``: ``n`` is one byte, the
      number of nibbles of the branch's ``prefix`` (0-63), then those nibbles one per byte;
      ``bitmap`` is 2 bytes big-endian whose bit ``i`` is set when the branch has a child at
      nibble ``i``; then the 32-byte hashes of the present children in increasing ``i``.

Shape (so that the root depends only on the keys and values, never on the order of updates)
    The trie of no key is empty; of one key, that key's leaf. Otherwise the root is a branch.
    A branch consumes ``depth`` nibbles above it; its ``prefix`` is the longest common run of
    nibbles of all the paths below it from ``depth`` on (path compression: no branch has a
    single child), and it has a child at every nibble ``i`` that some path below it has at
    position ``depth + len(prefix)``: a leaf if one key goes there, else a branch.

Proofs
    A proof for a key is the list of nodes from the root down to where its path ends: each
    branch as ``{"prefix": hex nibbles, "children": {nibble hex digit: hash}}`` and, if the
    path ends at a leaf, ``{"key_hash", "value_hash"}``. It proves the key present with a value
    (the leaf's ``key_hash`` is the key's path and its ``value_hash`` the value's), or absent: the
    path leaves the trie at a prefix that differs, at a branch with no child at its nibble, or at
    a leaf of another key. :func:`verify` checks one against a root.

Updating a key costs O(depth): the nodes on its path are re-hashed when the root is next asked
for, once however many of their keys changed.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ledger.crypto import encode_checked

_sha256 = hashlib.sha256

EMPTY = _sha256(b"\x00").digest()
LEAF_TAG = b"\x01"
BRANCH_TAG = b"\x02"
NIBBLES = 64
_HEX = "0123456789abcdef"


def key_hash(key: str) -> bytes:
    return _sha256(key.encode("utf-8")).digest()


def value_hash(value: Any) -> bytes:
    """The value's hash; ``value`` must be canonical JSON (the state checks what it stores)."""
    return _sha256(encode_checked(value)).digest()


def nibble(path: bytes, index: int) -> int:
    byte = path[index >> 1]
    return byte >> 4 if not index & 1 else byte & 0x0F


def leaf_hash(path: bytes, value_digest: bytes) -> bytes:
    return _sha256(LEAF_TAG + path + value_digest).digest()


def branch_hash(prefix: Sequence[int], children: Mapping[int, bytes]) -> bytes:
    bitmap = 0
    for index in children:
        bitmap |= 1 << index
    body = bytes([len(prefix), *prefix]) + bitmap.to_bytes(2, "big")
    return _sha256(
        BRANCH_TAG + body + b"".join(children[index] for index in sorted(children))
    ).digest()


class _Leaf:
    __slots__ = ("cached", "path", "value")

    def __init__(self, path: bytes, value: bytes) -> None:
        self.path = path
        self.value = value
        self.cached: bytes | None = None

    def digest(self) -> bytes:
        # Remembered: a changed branch hashes all its children, most of them unchanged.
        if self.cached is None:
            self.cached = leaf_hash(self.path, self.value)
        return self.cached


class _Branch:
    __slots__ = ("bitmap", "cached", "children", "prefix")

    def __init__(self, prefix: tuple[int, ...], children: list[_Node | None]) -> None:
        self.prefix = prefix
        self.children = children
        self.cached: bytes | None = None
        # Bit i set when there is a child at nibble i; kept up to date as children come and go.
        self.bitmap = sum(1 << i for i, child in enumerate(children) if child is not None)

    def digest(self) -> bytes:
        cached = self.cached
        if cached is None:  # branch_hash, with the children already in nibble order
            prefix = self.prefix
            # Most children did not change: their hash is remembered (and never empty).
            hashes = [c.cached or c.digest() for c in self.children if c is not None]
            head = bytes((len(prefix), *prefix)) + self.bitmap.to_bytes(2, "big")
            cached = self.cached = _sha256(BRANCH_TAG + head + b"".join(hashes)).digest()
        return cached


_Node = _Leaf | _Branch


def _common(path: bytes, other: bytes, start: int) -> int:
    """How many nibbles ``path`` and ``other`` share from nibble ``start`` on (they differ)."""
    n = start
    while nibble(path, n) == nibble(other, n):
        n += 1
    return n - start


def _split_leaf(leaf: _Leaf, depth: int, path: bytes, value: bytes) -> _Branch:
    """The branch that holds ``leaf`` and a new leaf for ``path``, below ``depth``."""
    shared = _common(leaf.path, path, depth)
    at = depth + shared
    children: list[_Node | None] = [None] * 16
    children[nibble(leaf.path, at)] = leaf
    children[nibble(path, at)] = _Leaf(path, value)
    return _Branch(tuple(nibble(path, i) for i in range(depth, at)), children)


def _insert(node: _Node | None, depth: int, path: bytes, value: bytes) -> _Node:
    """``node`` (the subtrie below ``depth``) with ``path`` set to ``value``; walks down in a
    loop, marking the branches on the way as changed, and replaces one child at most."""
    if node is None:
        return _Leaf(path, value)
    top = node
    parent: _Branch | None = None
    slot = 0
    while True:
        if node.__class__ is _Leaf:
            leaf: _Leaf = node
            if leaf.path == path:
                leaf.value = value
                leaf.cached = None
                return top
            replacement: _Node = _split_leaf(leaf, depth, path, value)
            break
        branch: _Branch = node  # type: ignore[assignment]
        branch.cached = None
        prefix = branch.prefix
        for k, expected in enumerate(prefix):
            i = depth + k
            byte = path[i >> 1]
            if (byte & 15 if i & 1 else byte >> 4) != expected:  # leaves the prefix: split it
                children: list[_Node | None] = [None] * 16
                branch.prefix = prefix[k + 1 :]
                children[expected] = branch
                children[byte & 15 if i & 1 else byte >> 4] = _Leaf(path, value)
                replacement = _Branch(prefix[:k], children)
                break
        else:
            at = depth + len(prefix)
            byte = path[at >> 1]
            index = byte & 15 if at & 1 else byte >> 4
            child = branch.children[index]
            if child is None:
                branch.children[index] = _Leaf(path, value)
                branch.bitmap |= 1 << index
                return top
            parent, slot, node, depth = branch, index, child, at + 1
            continue
        break
    if parent is None:
        return replacement
    parent.children[slot] = replacement
    return top


def _delete(node: _Node | None, depth: int, path: bytes) -> _Node | None:
    if node is None:
        return None
    if isinstance(node, _Leaf):
        return None if node.path == path else node
    prefix = node.prefix
    for k, expected in enumerate(prefix):
        if nibble(path, depth + k) != expected:
            return node  # not in the trie
    at = depth + len(prefix)
    index = nibble(path, at)
    child = node.children[index]
    if child is None:
        return node
    node.children[index] = below = _delete(child, at + 1, path)
    if below is None:
        node.bitmap &= ~(1 << index)
    node.cached = None
    remaining = [i for i, c in enumerate(node.children) if c is not None]
    if len(remaining) > 1:
        return node
    only = remaining[0]  # a branch never has fewer than two children: merge the last one up
    last = node.children[only]
    if isinstance(last, _Branch):
        last.prefix = (*prefix, only, *last.prefix)
        last.cached = None
    return last


def _build(items: list[tuple[bytes, bytes]]) -> _Node:
    """The trie of ``items`` (sorted by path, distinct, at least one), in one pass.

    Works on the paths' hex digits and index ranges, not on sub-lists, and finds where each
    child's paths end by bisection: building the trie of a large state (a validator's
    restart) costs a hash per node and little else."""
    digits = [path.hex() for path, _ in items]

    def build(lo: int, hi: int, depth: int) -> _Node:
        if hi - lo == 1:
            return _Leaf(*items[lo])
        first, last = digits[lo], digits[hi - 1]
        at = depth
        while first[at] == last[at]:  # sorted: what the extremes share, all share
            at += 1
        children: list[_Node | None] = [None] * 16
        shared = first[:at]
        start = lo
        while start < hi:  # each child's range ends where the next digit's paths begin
            digit = int(digits[start][at], 16)
            end = hi if digit == 15 else bisect_left(digits, shared + _HEX[digit + 1], start, hi)
            children[digit] = build(start, end, at + 1)
            start = end
        return _Branch(tuple(int(c, 16) for c in first[depth:at]), children)

    return build(0, len(items), 0)


class Trie:
    """The trie of a map of paths to value hashes; :meth:`root` is its hash."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        ordered = sorted(items)
        self._root: _Node | None = _build(ordered) if ordered else None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Trie:
        """The trie of a state map (keys to canonical values), built in one pass."""
        return cls((key_hash(key), value_hash(value)) for key, value in data.items())

    @classmethod
    def of_encoded(cls, data: Mapping[str, bytes]) -> Trie:
        """The trie of a state map whose values are given as their canonical bytes."""
        return cls((key_hash(key), _sha256(raw).digest()) for key, raw in data.items())

    def set(self, key: str, value: Any) -> None:
        self._root = _insert(self._root, 0, key_hash(key), value_hash(value))

    def delete(self, key: str) -> None:
        self._root = _delete(self._root, 0, key_hash(key))

    def update(self, changes: Mapping[str, Any], missing: Any = None) -> None:
        """Set each key of ``changes`` to its value, or delete it where the value is ``missing``."""
        self.update_encoded(
            {key: None if v is missing else encode_checked(v) for key, v in changes.items()}
        )

    def update_encoded(self, changes: Mapping[str, bytes | None]) -> None:
        """:meth:`update` with each value given as its canonical bytes (``None``: deleted).

        The keys are taken in the order of their paths: consecutive paths share the branches
        near the root, which are then still in the processor's cache (on a large trie the nodes
        a block touches are otherwise scattered over hundreds of megabytes)."""
        node = self._root
        for path, key in sorted((key_hash(key), key) for key in changes):
            raw = changes[key]
            if raw is None:
                node = _delete(node, 0, path)
            else:
                node = _insert(node, 0, path, _sha256(raw).digest())
        self._root = node

    def root(self) -> bytes:
        return EMPTY if self._root is None else self._root.digest()

    def prove(self, key: str) -> list[dict[str, Any]]:
        """The proof of ``key``'s presence or absence (the module docstring's format)."""
        path = key_hash(key)
        proof: list[dict[str, Any]] = []
        node, depth = self._root, 0
        while isinstance(node, _Branch):
            proof.append(
                {
                    "prefix": "".join(f"{n:x}" for n in node.prefix),
                    "children": {
                        f"{i:x}": c.digest().hex() for i, c in enumerate(node.children) if c
                    },
                }
            )
            at = depth + len(node.prefix)
            if tuple(nibble(path, depth + k) for k in range(len(node.prefix))) != node.prefix:
                return proof
            node, depth = node.children[nibble(path, at)], at + 1
        if isinstance(node, _Leaf):
            proof.append({"key_hash": node.path.hex(), "value_hash": node.value.hex()})
        return proof


class ProofError(ValueError):
    """A proof that does not fit together (malformed, or not of this root)."""


def _hex32(text: Any) -> bytes:
    if not isinstance(text, str) or len(text) != 64:
        raise ProofError("a hash is 64 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ProofError("a hash is 64 hex digits") from None


def verify(root: str, key: str, value: Any, proof: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``proof`` shows ``key`` holding ``value`` (None: absent) in the trie of ``root``.

    Recomputes the root from the proof's nodes and the key's path: every hash a branch states for
    the next node on the path must be that node's recomputed hash.
    """
    try:
        return _verify(_hex32(root), key_hash(key), value, proof)
    except ProofError:
        return False


def _verify(root: bytes, path: bytes, value: Any, proof: Sequence[Mapping[str, Any]]) -> bool:
    if not proof:
        return value is None and root == EMPTY
    depth = 0
    ends: Any = None  # how the path ends: ("leaf", ...) or ("absent", ...)
    branches: list[tuple[tuple[int, ...], dict[int, bytes], int | None]] = []
    for position, node in enumerate(proof):
        last = position == len(proof) - 1
        if "key_hash" in node:
            if not last or set(node) != {"key_hash", "value_hash"}:
                raise ProofError("a leaf ends a proof")
            ends = ("leaf", _hex32(node["key_hash"]), _hex32(node["value_hash"]))
            break
        if set(node) != {"prefix", "children"}:
            raise ProofError("a node is a branch or a leaf")
        text, children = node["prefix"], node["children"]
        if not isinstance(text, str) or not isinstance(children, Mapping):
            raise ProofError("malformed branch")
        if any(not isinstance(i, str) or len(i) != 1 for i in children):
            raise ProofError("a child is named by one hex digit")
        try:
            prefix = tuple(int(c, 16) for c in text)
            hashes = {int(i, 16): _hex32(h) for i, h in children.items()}
        except (TypeError, ValueError):
            raise ProofError("malformed branch") from None
        if len(hashes) < 2:
            raise ProofError("a branch has two to sixteen children")
        if depth + len(prefix) >= NIBBLES:
            raise ProofError("the path is 64 nibbles")
        if tuple(nibble(path, depth + k) for k in range(len(prefix))) != prefix:
            if not last:
                raise ProofError("the path left the trie: the proof ends there")
            branches.append((prefix, hashes, None))
            ends = ("absent",)
            break
        index = nibble(path, depth + len(prefix))
        branches.append((prefix, hashes, index))
        depth += len(prefix) + 1
        if index not in hashes:
            if not last:
                raise ProofError("no child at the path's nibble: the proof ends there")
            ends = ("absent",)
            break
    if ends is None:
        raise ProofError("the proof ends inside the trie")
    if ends[0] == "leaf":
        _, leaf_path, leaf_value = ends
        if leaf_path == path:
            if value is None or leaf_value != value_hash(value):
                return False
        elif value is not None:
            return False
        below: bytes | None = leaf_hash(leaf_path, leaf_value)
    else:
        if value is not None:
            return False
        below = None
    for prefix, hashes, on_path in reversed(branches):
        if below is not None and (on_path is None or hashes.get(on_path) != below):
            raise ProofError("a branch names the hash of the node below it on the path")
        below = branch_hash(prefix, hashes)
    assert below is not None
    return below == root
