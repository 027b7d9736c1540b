"""A validator's store: its blocks, its transaction index, its state and its own metadata.

No Django import. Every validator writes only its own store, a separate database named by a URL:

* ``sqlite:///absolute/path.sqlite3`` (``sqlite:////absolute/path.sqlite3``, the form an
  f-string over an absolute path gives, means the same file): the standard library's ``sqlite3``
  in WAL mode with ``synchronous=FULL``, so that a committed write survives a power cut;
* ``postgres://user@host:port/dbname`` or ``postgresql://...``: PostgreSQL through psycopg 3,
  with ``synchronous_commit = on``. The database must exist; :func:`create_database` and
  :func:`drop_database` make and remove one (for the genesis command and the tests).

Tables (portable SQL, the same on both backends)::

    blocks   (height PK, hash UNIQUE, body)   body: canonical JSON of ledger.blocks.block_to_json
    tx_index (tx_id PK, height, position)     where each transaction id was first included
    state    (key PK, value)                  value: canonical JSON; the state after the tip
    meta     (key PK, value)                  the genesis document, consensus votes, ...

The state table always holds the state after the stored tip: :meth:`Store.append` writes a
block, its index rows and the state changes of executing it in one database transaction.
Metadata writes (:meth:`Store.put_meta`) are committed, durably, before the call returns: a
validator persists its vote before it sends it.

A transaction id does not cover the signature, so a Byzantine proposer can put one transaction
in the chain twice (the second is refused ``bad_nonce`` when executed). The index keeps the first
inclusion of each id.

The store checks that an appended block extends the tip (height and hash link) and nothing else:
verifying blocks and executing them is the caller's business (``ledger.blocks``, ``ledger.audit``).

Threads: one ``Store`` object is used by one thread at a time. It may move between threads (the
validator host serializes access to it with a lock); it must not be used by two at once.
Several processes may open one database (e.g. ``ledger verify`` while the validator runs), but
only one writes to it: the validator process and ``ledger repair`` take the store's exclusive
lock first (``Store.lock``: a file lock beside a SQLite database, an advisory lock in a
PostgreSQL one), and a second validator on the same store, or a repair of a running one, is
refused with ``StoreLocked``.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from ledger.blocks import GENESIS_PREVIOUS_HASH, Block, block_from_json, block_to_json
from ledger.crypto import MAX_SAFE_INTEGER, LedgerCryptoError, encode_checked, loads
from ledger.state import PROTOCOL_VERSION, RECREATE_HINT, State

SCHEMA_VERSION = "1"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS blocks ("
    " height BIGINT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tx_index ("
    " tx_id TEXT PRIMARY KEY, height BIGINT NOT NULL, position INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tx_index_height ON tx_index (height)",
    "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
SQLITE_BUSY_TIMEOUT_S = 10.0
# The key of the advisory lock a PostgreSQL store is held by (Store.lock): any fixed 64-bit value.
_PG_LOCK_KEY = int.from_bytes(b"gridstor", "big", signed=True)
_DBNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class StoreError(Exception):
    """Base of every error this module raises."""


class UnsupportedStoreURL(StoreError, ValueError):
    """The URL names no backend this module supports, or is malformed."""


class StoreUnavailable(StoreError):
    """The database cannot be opened (no server, no such database, no permission)."""


class DatabaseExists(StoreError):
    """create_database: the database is there already."""


class AppendRefused(StoreError):
    """The block does not extend the stored tip: wrong height, or previous_hash is not its hash."""


class ProtocolMismatch(StoreError):
    """The store was written by a validator of another ledger protocol."""


class StoreLocked(StoreError):
    """Another process holds the store: a running validator, or a repair (``Store.lock``)."""


class StoreFailed(StoreError):
    """The store's database failed under a read or a write: a full disk, an I/O error, its server
    restarted. What was being written was not stored (its transaction rolled back); a validator
    stops and starts again from what is stored (``ledger.runtime``)."""


class CorruptRow(StoreError):
    """A stored block does not parse, or is not the block its height and hash columns name."""


@dataclass(frozen=True)
class BlockRow:
    """A row of the blocks table as stored, unparsed (for the audit)."""

    height: int
    hash: str
    body: str


@dataclass(frozen=True)
class TxIndexRow:
    tx_id: str
    height: int
    position: int


# --- backends --------------------------------------------------------------------------------

Row = tuple[Any, ...]


class _Backend:
    """The little of DB-API both backends share; SQL is written with ``?`` placeholders."""

    name = ""

    def try_lock(self) -> bool:
        """Take this store's exclusive lock for as long as the connection is open; False if
        another connection holds it."""
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """One database transaction: committed on exit, rolled back on an exception."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SQLite(_Backend):
    name = "sqlite"

    def __init__(self, path: str) -> None:
        try:
            # Autocommit (isolation_level=None): every statement outside an explicit BEGIN
            # commits at once; transactions are explicit, BEGIN IMMEDIATE ... COMMIT.
            self._conn = sqlite3.connect(
                path,
                isolation_level=None,
                check_same_thread=False,  # one thread at a time, not always the same one
                timeout=SQLITE_BUSY_TIMEOUT_S,
            )
        except sqlite3.Error as error:
            raise StoreUnavailable(f"cannot open {path}: {error}") from error
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self._conn.close()
            raise StoreUnavailable(f"{path}: cannot switch to WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._path = path
        self._lock_file: Any = None

    def try_lock(self) -> bool:
        # An advisory lock on a file beside the database, released by the kernel when the
        # process ends however it ends (kill -9 included).
        if self._lock_file is not None:
            return True
        handle = open(f"{self._path}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _failed_as(sqlite3.Error):
            return list(self._conn.execute(sql, tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _failed_as(sqlite3.Error):
            self._conn.execute(sql, tuple(params))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with _failed_as(sqlite3.Error):
                self._conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with _failed_as(sqlite3.Error):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._conn.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None


class _Postgres(_Backend):
    name = "postgres"

    def __init__(self, url: str) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as error:
            raise StoreUnavailable(f"cannot open {_redacted(url)}: {error}") from error
        # A commit returns only once it is on disk, whatever the server's default.
        self._conn.execute("SET synchronous_commit = on")
        self._errors = psycopg.Error

    def try_lock(self) -> bool:
        # A session-level advisory lock in the store's database, released when the connection
        # closes (the server notices a killed process's connection going away).
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (_PG_LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _failed_as(self._errors):
            return list(self._conn.execute(self._sql(sql), tuple(params)).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        with _failed_as(self._errors):
            self._conn.execute(self._sql(sql), tuple(params))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with _failed_as(self._errors), self._conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with _failed_as(self._errors), self._conn.transaction():
            yield

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _failed_as(errors: type[Exception]) -> Iterator[None]:
    """A driver's error under a read or a write becomes ``StoreFailed``."""
    try:
        yield
    except errors as error:
        raise StoreFailed(f"the store failed: {error}") from error


def _redacted(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest.lstrip("/")) == 0 or "?" in rest or "#" in rest:
        raise UnsupportedStoreURL("expected sqlite:///absolute/path.sqlite3")
    return "/" + rest.lstrip("/")


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def _postgres_parts(url: str) -> tuple[str, str]:
    """(conninfo of the server's ``postgres`` database, the named database) for CREATE/DROP."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        dbname = str(conninfo_to_dict(url).get("dbname") or "")
    except Exception as error:  # psycopg.ProgrammingError for a malformed URL
        raise UnsupportedStoreURL(f"malformed PostgreSQL URL: {error}") from error
    if not _DBNAME.fullmatch(dbname):
        raise UnsupportedStoreURL(f"database name {dbname!r}: letters, digits and _ only")
    return make_conninfo(url, dbname="postgres"), dbname


# --- opening, creating, dropping -------------------------------------------------------------


def open_store(url: str) -> Store:
    """Open the store at ``url`` (see the module docstring). Call ``init_schema`` on a new one."""
    if url.startswith("sqlite://"):
        return Store(_SQLite(_sqlite_path(url)), url)
    if _is_postgres(url):
        return Store(_Postgres(url), url)
    raise UnsupportedStoreURL(f"unsupported store URL {_redacted(url)!r}")


def create_database(url: str) -> None:
    """Create the database ``url`` names, empty; DatabaseExists if it is there already.

    PostgreSQL: connects to the server's ``postgres`` database and runs CREATE DATABASE.
    SQLite: creates the empty file (the directory must exist).
    """
    if url.startswith("sqlite://"):
        path = _sqlite_path(url)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise DatabaseExists(f"{path} exists") from None
        return
    if not _is_postgres(url):
        raise UnsupportedStoreURL(f"unsupported store URL {_redacted(url)!r}")
    import psycopg
    from psycopg import sql

    server, dbname = _postgres_parts(url)
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        raise DatabaseExists(f"database {dbname} exists") from None
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot reach {_redacted(url)}: {error}") from error


def drop_database(url: str, *, force: bool = False) -> None:
    """Remove the database ``url`` names, if it exists.

    PostgreSQL: DROP DATABASE IF EXISTS; ``force`` also ends other sessions still connected to
    it (PostgreSQL 13+). SQLite: deletes the file and its ``-wal`` and ``-shm`` companions.
    """
    if url.startswith("sqlite://"):
        path = _sqlite_path(url)
        for name in (path, f"{path}-wal", f"{path}-shm"):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        return
    if not _is_postgres(url):
        raise UnsupportedStoreURL(f"unsupported store URL {_redacted(url)!r}")
    import psycopg
    from psycopg import sql

    server, dbname = _postgres_parts(url)
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    try:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(dbname)))
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot drop {_redacted(url)}: {error}") from error


# --- the store -------------------------------------------------------------------------------


def _canonical_text(value: Any) -> str:
    """A block's or state value's canonical text; ``value`` may be its canonical bytes already."""
    if type(value) is bytes:
        return value.decode("utf-8")
    return encode_checked(value).decode("utf-8")  # blocks and state values were checked when built


class Store:
    """One validator's store. Use :func:`open_store`; one thread at a time (module docstring)."""

    def __init__(self, backend: _Backend, url: str) -> None:
        self._db = backend
        self.url = url

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._db.name

    def __repr__(self) -> str:
        return f"Store({_redacted(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def lock(self, purpose: str) -> None:
        """Hold this store for this process alone until it is closed: one validator process per
        store, and no repair while it runs. Raises StoreLocked if another process holds it."""
        if not self._db.try_lock():
            raise StoreLocked(
                f"{_redacted(self.url)} is in use by another process (a running validator, or a "
                f"repair); stop it before {purpose}"
            )

    def init_schema(self) -> None:
        """Create the tables if they are missing; harmless on an initialized store of this
        protocol. A store that holds blocks of another protocol is refused (ProtocolMismatch)."""
        with self._db.transaction():
            for statement in SCHEMA:
                self._db.run(statement)
            self._db.run(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO NOTHING",
                (SCHEMA_VERSION,),
            )
            if self._protocol() is None and self.height() < 0:
                self._db.run(
                    "INSERT INTO meta (key, value) VALUES ('protocol', ?)",
                    (str(PROTOCOL_VERSION),),
                )
        self.check_protocol()

    def _protocol(self) -> str | None:
        rows = self._db.query("SELECT value FROM meta WHERE key = 'protocol'")
        return str(rows[0][0]) if rows else None

    def check_protocol(self) -> None:
        """Refuse a store written by another ledger protocol (one without the mark is of
        protocol 1), saying how to make a new network."""
        found = self._protocol() or "1"
        if found != str(PROTOCOL_VERSION):
            raise ProtocolMismatch(f"{self!r} holds a ledger of protocol {found}: {RECREATE_HINT}")

    # --- blocks ------------------------------------------------------------------------------

    def height(self) -> int:
        """The height of the highest stored block; -1 when the store holds none."""
        value = self._db.query("SELECT MAX(height) FROM blocks")[0][0]
        return -1 if value is None else int(value)

    def append(self, block: Block, changes: Mapping[str, Any]) -> None:
        """Store ``block`` and the state changes of executing it, in one transaction.

        ``changes`` maps state keys to their new values (canonical JSON, or its bytes), ``None``
        meaning the key is deleted: what ``State.take_encoded_changes`` returns after the block
        (for genesis, the whole genesis state). Raises AppendRefused unless the block's height is
        ``height() + 1`` and its previous_hash is the stored tip's hash (64 zeros for height 0).
        """
        header = block.header
        block_hash = block.hash
        body = _canonical_text(block_to_json(block))
        index: list[tuple[str, int, int]] = [
            (tx.id, header.height, position) for position, tx in enumerate(block.transactions)
        ]
        upserts = [(key, _canonical_text(v)) for key, v in changes.items() if v is not None]
        deletes = [(key,) for key, v in changes.items() if v is None]
        with self._db.transaction():
            tip = self._db.query("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1")
            tip_height, tip_hash = (int(tip[0][0]), str(tip[0][1])) if tip else (-1, None)
            if header.height != tip_height + 1:
                raise AppendRefused(
                    f"block at height {header.height}, but the store's next height is "
                    f"{tip_height + 1}"
                )
            expected = GENESIS_PREVIOUS_HASH if tip_hash is None else tip_hash
            if header.previous_hash != expected:
                raise AppendRefused(
                    f"block {header.height} links to {header.previous_hash}, "
                    f"not to the stored tip {expected}"
                )
            self._db.run(
                "INSERT INTO blocks (height, hash, body) VALUES (?, ?, ?)",
                (header.height, block_hash, body),
            )
            self._db.run_many(
                "INSERT INTO tx_index (tx_id, height, position) VALUES (?, ?, ?)"
                " ON CONFLICT (tx_id) DO NOTHING",
                index,
            )
            self._db.run_many(
                "INSERT INTO state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                upserts,
            )
            self._db.run_many("DELETE FROM state WHERE key = ?", deletes)

    def block(self, height: int) -> Block | None:
        """The block at ``height``, or None. Raises CorruptRow if the stored row is damaged."""
        rows = self.block_rows(height, height)
        return _parse_row(rows[0]) if rows else None

    def blocks(self, from_height: int, to_height: int) -> list[Block]:
        """The stored blocks with ``from_height <= height <= to_height`` (both included), in
        order of height. Heights that are not stored are skipped. Raises CorruptRow."""
        return [_parse_row(row) for row in self.block_rows(from_height, to_height)]

    def tip(self) -> Block | None:
        """The highest stored block, or None for an empty store."""
        rows = self._db.query("SELECT height, hash, body FROM blocks ORDER BY height DESC LIMIT 1")
        return _parse_row(_block_row(rows[0])) if rows else None

    def locate_tx(self, tx_id: str) -> tuple[int, int] | None:
        """(height, position) of the first block that includes ``tx_id``, or None."""
        rows = self._db.query("SELECT height, position FROM tx_index WHERE tx_id = ?", (tx_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def committed_ids(self, tx_ids: Sequence[str]) -> set[str]:
        """Those of ``tx_ids`` that a stored block includes: one query per 500 ids, not one per
        transaction (a validator admits transactions in batches; on PostgreSQL each query is a
        round trip)."""
        found: set[str] = set()
        for start in range(0, len(tx_ids), 500):
            chunk = list(tx_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            rows = self._db.query(f"SELECT tx_id FROM tx_index WHERE tx_id IN ({marks})", chunk)  # noqa: S608  (placeholders only)
            found.update(str(row[0]) for row in rows)
        return found

    def truncate_from(self, height: int) -> None:
        """Delete the blocks at ``height`` and above, and their index rows, in one transaction.

        Index rows pointing below height 0, which no block can have put there, go too. The
        state table is left alone: the caller rebuilds it (``replace_state``) by replaying the
        blocks that remain.
        """
        with self._db.transaction():
            self._db.run("DELETE FROM tx_index WHERE height >= ? OR height < 0", (height,))
            self._db.run("DELETE FROM blocks WHERE height >= ?", (height,))

    # --- state -------------------------------------------------------------------------------

    def load_state(self) -> State:
        """The persisted state (after the tip), its values kept as the canonical text stored.

        Nothing is parsed here: a value is decoded when a transaction reads it, and a damaged
        row changes the state root, which the validator checks against its tip's before it runs
        (``StateMismatch``).
        """
        return State.encoded(
            {key: value.encode("utf-8") for key, value in self.state_rows().items()}
        )

    def replace_state(self, state: State) -> None:
        """Make the state table exactly ``state``, in one transaction."""
        rows = [(key, raw.decode("utf-8")) for key, raw in state.encoded_rows().items()]
        with self._db.transaction():
            self._db.run("DELETE FROM state")
            self._db.run_many("INSERT INTO state (key, value) VALUES (?, ?)", rows)

    # --- metadata ----------------------------------------------------------------------------

    def put_meta(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``; committed durably before this returns."""
        self._db.run(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        rows = self._db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def delete_meta(self, key: str) -> None:
        self._db.run("DELETE FROM meta WHERE key = ?", (key,))

    # --- raw rows, for the audit -------------------------------------------------------------

    def block_rows(self, from_height: int, to_height: int) -> list[BlockRow]:
        """The rows of the blocks table with heights in ``[from_height, to_height]``, unparsed."""
        rows = self._db.query(
            "SELECT height, hash, body FROM blocks WHERE height >= ? AND height <= ?"
            " ORDER BY height",
            (from_height, to_height),
        )
        return [_block_row(row) for row in rows]

    def tx_index_rows(
        self, from_height: int = -MAX_SAFE_INTEGER, to_height: int = MAX_SAFE_INTEGER
    ) -> list[TxIndexRow]:
        """The index rows with heights in ``[from_height, to_height]``, by height and position."""
        rows = self._db.query(
            "SELECT tx_id, height, position FROM tx_index WHERE height >= ? AND height <= ?"
            " ORDER BY height, position, tx_id",
            (from_height, to_height),
        )
        return [TxIndexRow(str(row[0]), int(row[1]), int(row[2])) for row in rows]

    def state_rows(self) -> dict[str, str]:
        """The state table as stored: key to the canonical JSON text of its value."""
        return {
            str(key): str(value) for key, value in self._db.query("SELECT key, value FROM state")
        }


def _block_row(row: Row) -> BlockRow:
    return BlockRow(height=int(row[0]), hash=str(row[1]), body=str(row[2]))


def _parse_row(row: BlockRow) -> Block:
    try:
        block = block_from_json(loads(row.body))
    except LedgerCryptoError as error:
        raise CorruptRow(f"block {row.height} does not parse: {error}") from error
    if block.header.height != row.height or block.hash != row.hash:
        raise CorruptRow(f"block {row.height} is not the block its row names")
    return block
