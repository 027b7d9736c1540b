"""The ledger's state: a flat map of string keys to canonical JSON values, with a state root.

No Django import. Every validator holds one ``State`` and changes it only by executing blocks.
Keys are namespaced by who owns them: ``acct/<address>`` and ``bal/<address>`` belong to the
ledger; an application registering transaction types (the market) uses its own prefix.

The state root is the root hash of the 16-ary Merkle trie over the map (``ledger.trie``, protocol
2): the trie is built once, when the root is first asked for, then updated for the keys written
since the last root, so a block's root costs O(changed keys x depth), never O(state). Values
must be canonical: integers, strings, booleans, null, lists and objects of them; never a float.
:meth:`State.prove` gives a key's inclusion or absence proof against that root.

Changes can be undone back to a savepoint, so that a failing transaction leaves no trace
(``savepoint`` / ``rollback_to``); the journal is cleared when a block's execution ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ledger.crypto import MAX_SAFE_INTEGER, check_canonical, copy_json, encode_checked
from ledger.trie import Trie

# The ledger protocol: 4 since each slot's settlement also settles every metered household's
# residual with the supplier of last resort (meters index the slots they have readings of); 3
# made blocks record their transactions' events (``events_root``) and the live state drop
# settled history; 2 made the state root the root of the state trie (1 hashed the whole map).
# Genesis documents and validator stores carry it; one of another is refused.
PROTOCOL_VERSION = 4
RECREATE_HINT = (
    "this version of the software runs ledger protocol 4 (blocks carry typed events, the state "
    "root is the root of a 16-ary Merkle trie, settled history leaves the live state and each "
    "slot settles with the supplier of last resort, docs/ledger.md); a network of another "
    "protocol cannot be continued. "
    "Create a new one: stop the system, move the old LEDGER_DIR and the validators' stores "
    "aside (for the demo: `make clean`), then `make run` (or `manage.py ledger genesis`)"
)

_MISSING = object()


def _plainly_canonical(value: Any) -> bool:
    """Whether ``value`` is canonical at a glance: an integer within +-(2**53 - 1), an ASCII
    string, or a flat object of those with ASCII keys (what the market writes for every order).

    A shortcut for the common case only: False means "not sure", and ``check_canonical`` then
    decides. The market writes several such records per order, and the full recursive check was
    a third of its execution time.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            item_kind = type(item)
            if item_kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif item_kind is not str or not item.isascii():
                return False
        return True
    plain: bool = (kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER) or (
        kind is str and value.isascii()
    )
    return plain


class State:
    """The state map. Values are kept as their canonical bytes (RFC 8785, what the state trie
    hashes and the stores hold), one small object a key instead of a tree of them: a validator
    holds a million keys, and a heap of millions of small objects slows everything it does
    (docs/benchmarks.md, "Ledger on a large state"). The values read or written since the last
    root are kept decoded beside them (``_live``), so a block decodes each key it reads once and
    encodes each key it writes once, when the root is asked for.
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        # key -> canonical bytes; for the keys in _stale, _live holds what is current.
        self._data: dict[str, bytes] = (
            {key: encode_checked(value) for key, value in data.items()} if data else {}
        )
        # key -> decoded value (or _MISSING: deleted) of keys read or written since the last root.
        self._live: dict[str, Any] = {}
        self._journal: list[tuple[str, Any]] = []
        self._dirty: set[str] = set()
        # The trie of the map as it was at the last root(), and the keys written since then
        # (set, deleted, rolled back or applied): root() brings the trie up to date with them.
        self._trie: Trie | None = None
        self._stale: set[str] = set()
        # The keys written since _data was last brought up to date from _live.
        self._unencoded: set[str] = set()

    @classmethod
    def encoded(cls, rows: dict[str, bytes]) -> State:
        """The state of ``rows``: keys to the canonical bytes of their values, taken as they are
        (a store's rows; the state root tells whether they are what was certified)."""
        state = cls()
        state._data = rows
        return state

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value. Treat it as read-only: write a changed copy back with ``set``."""
        value = self._live.get(key, _MISSING)
        if value is _MISSING:
            if key in self._live:  # deleted since the last root
                return default
            raw = self._data.get(key)
            if raw is None:
                return default
            value = self._live[key] = _decode(raw)
        return value

    def _current(self, key: str) -> Any:
        """What ``key`` holds now, ``_MISSING`` if nothing."""
        return self.get(key, _MISSING)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            # None means "deleted" in take_changes() and in the stores; use delete().
            raise ValueError(f"state values cannot be null ({key}); delete the key instead")
        if not _plainly_canonical(value):
            check_canonical(value)  # refuses floats and other values the state root cannot hash
        self._journal.append((key, self._current(key)))
        self._written(key, value)

    def _written(self, key: str, value: Any) -> None:
        """``key`` now holds ``value`` (``_MISSING``: deleted): for the store, the trie and the
        bytes, which are brought up to date later."""
        self._live[key] = value
        self._dirty.add(key)
        self._stale.add(key)
        self._unencoded.add(key)

    def delete(self, key: str) -> None:
        old = self._current(key)
        if old is not _MISSING:
            self._journal.append((key, old))
            self._written(key, _MISSING)

    def keys(self, prefix: str) -> Iterator[str]:
        self._encode_stale()
        return (key for key in sorted(self._data) if key.startswith(prefix))

    def savepoint(self) -> int:
        return len(self._journal)

    def rollback_to(self, savepoint: int) -> None:
        while len(self._journal) > savepoint:
            key, old = self._journal.pop()
            self._written(key, old)  # a store may have taken the undone value already

    def changes_since(self, savepoint: int) -> dict[str, Any]:
        """The value now of every key written since ``savepoint`` (a private marker: deleted)."""
        keys = dict.fromkeys(key for key, _ in self._journal[savepoint:])
        return {key: self._current(key) for key in keys}

    def apply(self, changes: dict[str, Any]) -> None:
        """Write back what :meth:`changes_since` returned (values it checked already)."""
        for key, value in changes.items():
            self._written(key, value)

    def clear_journal(self) -> None:
        self._journal.clear()

    def take_changes(self) -> dict[str, Any]:
        """The keys written since the last call, with their values (``None``: deleted).

        A store persists these after each block instead of the whole state. A key changed and
        then rolled back is reported with its current value, which is harmless to write again.
        """
        changes = {}
        for key in sorted(self._dirty):
            value = self._current(key)
            changes[key] = None if value is _MISSING else copy_json(value)
        self._dirty.clear()
        return changes

    def take_encoded_changes(self) -> dict[str, bytes | None]:
        """:meth:`take_changes` as the values' canonical bytes, as a store writes them."""
        self._encode_stale()
        data = self._data
        changes = {key: data.get(key) for key in sorted(self._dirty)}
        self._dirty.clear()
        return changes

    def _encode_stale(self) -> None:
        """Bring ``_data`` up to date with the values written since the last root."""
        data, live = self._data, self._live
        for key in self._unencoded:
            value = live.get(key, _MISSING)
            if value is _MISSING:
                if key in live:
                    data.pop(key, None)
            else:
                data[key] = encode_checked(value)  # every value was checked when it was set
        self._unencoded.clear()

    def _synced(self) -> Trie:
        self._encode_stale()
        data = self._data
        if self._trie is None:
            self._trie = Trie.of_encoded(data)
        else:
            self._trie.update_encoded({key: data.get(key) for key in self._stale})
        self._stale.clear()
        # Decoded values are kept until the next root only: the heap holds bytes, not trees.
        self._live.clear()
        return self._trie

    def root(self) -> str:
        return self._synced().root().hex()

    def prove(self, key: str) -> list[dict[str, Any]]:
        """``key``'s proof of presence (with its value) or absence against :meth:`root`."""
        return self._synced().prove(key)

    def encoded_rows(self) -> dict[str, bytes]:
        """Every key with its value's canonical bytes (a copy)."""
        self._encode_stale()
        return dict(self._data)

    def to_json(self) -> dict[str, Any]:
        self._encode_stale()
        return {key: _decode(raw) for key, raw in self._data.items()}


def _decode(raw: bytes) -> Any:
    """A value from its canonical bytes (written by this process, or certified by the root)."""
    return json.loads(raw)
