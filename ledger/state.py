"""The ledger's state: a flat map of string keys to canonical JSON values, with a state root.

No Django import. Every validator holds one ``State`` and changes it only by executing blocks.
Keys are namespaced by who owns them: ``acct/<address>`` and ``bal/<address>`` belong to the
ledger; an application registering transaction types (the market) uses its own prefix.

The state root is the hex SHA-256 of the RFC 8785 canonical JSON of the whole map (the keys
sorted by RFC 8785's rule). Values must be canonical: integers, strings, booleans, null, lists
and objects of them; never a float.

Changes can be undone back to a savepoint, so that a failing transaction leaves no trace
(``savepoint`` / ``rollback_to``); the journal is cleared when a block's execution ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from ledger.crypto import MAX_SAFE_INTEGER, check_canonical, copy_json, encode_checked

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
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = copy_json(data) if data else {}
        self._journal: list[tuple[str, Any]] = []
        self._dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value. Treat it as read-only: write a changed copy back with ``set``."""
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if value is None:
            # None means "deleted" in take_changes() and in the stores; use delete().
            raise ValueError(f"state values cannot be null ({key}); delete the key instead")
        if not _plainly_canonical(value):
            check_canonical(value)  # refuses floats and other values the state root cannot hash
        self._journal.append((key, self._data.get(key, _MISSING)))
        self._data[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        if key in self._data:
            self._journal.append((key, self._data.pop(key)))
            self._dirty.add(key)

    def keys(self, prefix: str) -> Iterator[str]:
        return (key for key in sorted(self._data) if key.startswith(prefix))

    def savepoint(self) -> int:
        return len(self._journal)

    def rollback_to(self, savepoint: int) -> None:
        while len(self._journal) > savepoint:
            key, old = self._journal.pop()
            if old is _MISSING:
                self._data.pop(key, None)
            else:
                self._data[key] = old

    def changes_since(self, savepoint: int) -> dict[str, Any]:
        """The value now of every key written since ``savepoint`` (a private marker: deleted)."""
        keys = dict.fromkeys(key for key, _ in self._journal[savepoint:])
        return {key: self._data.get(key, _MISSING) for key in keys}

    def apply(self, changes: dict[str, Any]) -> None:
        """Write back what :meth:`changes_since` returned (values it checked already)."""
        for key, value in changes.items():
            if value is _MISSING:
                self._data.pop(key, None)
            else:
                self._data[key] = value
            self._dirty.add(key)

    def clear_journal(self) -> None:
        self._journal.clear()

    def take_changes(self) -> dict[str, Any]:
        """The keys written since the last call, with their values (``None``: deleted).

        A store persists these after each block instead of the whole state. A key changed and
        then rolled back is reported with its current value, which is harmless to write again.
        """
        changes = {key: copy_json(self._data.get(key)) for key in sorted(self._dirty)}
        self._dirty.clear()
        return changes

    def root(self) -> str:
        return hashlib.sha256(encode_checked(self._data)).hexdigest()  # every value was checked

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = copy_json(self._data)
        return data
