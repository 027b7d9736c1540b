"""The state trie (ledger.trie): fixed vectors from docs/ledger.md, the definition written again
independently, incremental roots equal to roots built from scratch, and proofs of presence and
absence that verify, and that fail when anything in them is changed."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import canonical
from ledger.state import State
from ledger.trie import EMPTY, Trie, key_hash, value_hash, verify


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(data: dict[str, Any]) -> str:
    """The root by the definition in docs/ledger.md, written without the module's code: paths as
    hex strings, the shape found by splitting sorted paths."""
    items = sorted((_h(k.encode()).hex(), _h(canonical(v)).hex()) for k, v in data.items())

    def node(group: list[tuple[str, str]], depth: int) -> bytes:
        if len(group) == 1:
            path, value = group[0]
            return _h(b"\x01" + bytes.fromhex(path) + bytes.fromhex(value))
        shared = depth
        while len({path[shared] for path, _ in group}) == 1:
            shared += 1
        prefix = group[0][0][depth:shared]
        children: dict[int, bytes] = {}
        for digit in sorted({path[shared] for path, _ in group}):
            below = [item for item in group if item[0][shared] == digit]
            children[int(digit, 16)] = node(below, shared + 1)
        bitmap = sum(1 << i for i in children)
        body = bytes([len(prefix), *(int(c, 16) for c in prefix)]) + bitmap.to_bytes(2, "big")
        return _h(b"\x02" + body + b"".join(children[i] for i in sorted(children)))

    return (node(items, 0) if items else _h(b"\x00")).hex()


# The vectors of docs/ledger.md ("The state trie").
VECTORS = [
    ({}, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    ({"a": 1}, "6b7ad2a7baa11eff22fbf6068d2c0fcc70ea4fed2becf4fa8f390424949bdda6"),
    ({"a": 1, "b": 2}, "0f14ab43733d61d8c85186f6a5802949be687ed5199623eab64ddced9f538147"),
    (
        {"a": 1, "b": 2, "c": 3},
        "ee8d5fafe225426cd574356f90ccd3b759860e765b12b2e9ef6610e0b75e4d13",
    ),
    (
        {"acct/x": {"nonce": 0, "role": "household"}, "bal/x": 500, "ledger/supply": 500},
        "895fc152d58929d2a1bf9c04e48fe8092a132a4d1b4aabb46a67f7127cf13161",
    ),
]


def test_it_matches_the_documented_vectors() -> None:
    assert EMPTY.hex() == hashlib.sha256(b"\x00").hexdigest()
    assert key_hash("a").hex() == (
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    )
    assert value_hash(1).hex() == hashlib.sha256(b"1").hexdigest()
    for data, root in VECTORS:
        assert Trie.of(data).root().hex() == root, data
        assert reference_root(data) == root, data


def test_a_single_key_is_its_leaf_and_shared_nibbles_become_a_prefix() -> None:
    assert Trie.of({"a": 1}).root() == _h(b"\x01" + key_hash("a") + value_hash(1))
    # Keys whose paths share their first nibble: the root branch has a one-nibble prefix.
    keys = [f"k{i}" for i in range(200)]
    first = key_hash(keys[0]).hex()[0]
    group = [k for k in keys if key_hash(k).hex()[0] == first][:3]
    proof = Trie.of(dict.fromkeys(group, 1)).prove(group[0])
    assert proof[0]["prefix"].startswith(first)
    assert Trie.of(dict.fromkeys(group, 1)).root().hex() == reference_root(dict.fromkeys(group, 1))


keys = st.text(alphabet="abcdefghij/0123456789", min_size=1, max_size=6)
values = st.one_of(
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(max_size=5),
    st.dictionaries(st.sampled_from(["n", "side"]), st.integers(0, 9), max_size=2),
)
operations = st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(initial=st.dictionaries(keys, values, max_size=30), steps=operations)
def test_the_incremental_root_is_the_root_built_from_scratch(
    initial: dict[str, Any], steps: list[tuple[str, Any]]
) -> None:
    trie = Trie.of(initial)
    data = dict(initial)
    for key, value in steps:
        if value is None:
            data.pop(key, None)
            trie.delete(key)
        else:
            data[key] = value
            trie.set(key, value)
    assert trie.root() == Trie.of(data).root()
    assert trie.root().hex() == reference_root(data)


@settings(max_examples=150, deadline=None)
@given(
    initial=st.dictionaries(keys, values, max_size=30),
    batches=st.lists(st.dictionaries(keys, st.one_of(st.none(), values), max_size=20), max_size=5),
)
def test_batched_updates_in_path_order_give_the_root_built_from_scratch(
    initial: dict[str, Any], batches: list[dict[str, Any]]
) -> None:
    """``Trie.update`` (what ``State.root`` uses) takes a block's keys in path order, deletions
    among them; the root is the same as building the trie of the resulting map."""
    trie = Trie.of(initial)
    state = State(initial)
    state.root()
    data = dict(initial)
    for batch in batches:
        trie.update(batch)
        for key, value in batch.items():
            if value is None:
                data.pop(key, None)
                state.delete(key)
            else:
                data[key] = value
                state.set(key, value)
        assert trie.root() == Trie.of(data).root()
        assert state.root() == trie.root().hex() == reference_root(data)


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(keys, values, max_size=40), probe=keys)
def test_proofs_verify_for_present_and_absent_keys(data: dict[str, Any], probe: str) -> None:
    trie = Trie.of(data)
    root = trie.root().hex()
    for key in [*list(data)[:5], probe]:
        proof = trie.prove(key)
        value = data.get(key)
        assert verify(root, key, value, proof)
        if value is None:
            assert not verify(root, key, 0, proof)  # absent: no value is proven
        else:
            assert not verify(root, key, None, proof)  # present: not proven absent
            assert not verify(root, key, [value], proof)  # nor holding another value


def _tampered(proof: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Every way of changing one thing in a proof."""
    variants = []
    for i, node in enumerate(proof):
        for field, text in node.items():
            if isinstance(text, str):
                changed = copy.deepcopy(proof)
                flipped = "0" if text[:1] != "0" else "1"
                changed[i][field] = flipped + text[1:] if text else "0"
                variants.append(changed)
            else:
                for child in text:
                    changed = copy.deepcopy(proof)
                    digest = changed[i][field][child]
                    changed[i][field][child] = ("0" if digest[0] != "0" else "1") + digest[1:]
                    variants.append(changed)
                    dropped = copy.deepcopy(proof)
                    del dropped[i][field][child]
                    variants.append(dropped)
    variants.append(proof[:-1])
    variants.append([*proof, proof[-1]])
    return variants


def test_a_changed_proof_proves_nothing() -> None:
    data = {f"bal/{i}": i for i in range(300)}
    trie = Trie.of(data)
    root = trie.root().hex()
    for key, value in (("bal/7", 7), ("bal/absent", None)):
        proof = trie.prove(key)
        assert verify(root, key, value, proof)
        for variant in _tampered(proof):
            assert not verify(root, key, value, variant), variant
    assert not verify("00" * 32, "bal/7", 7, trie.prove("bal/7"))
    assert not verify(root, "bal/7", 7, "not a proof")  # type: ignore[arg-type]
