"""Genesis: the document every validator starts from, block 0, and validator key files.

No Django import. The genesis document fixes the network: its chain id, the genesis time, the
validator set (public keys; a validator's index is its position), the issuer of credits (the grid
operator) and the regulators, and integer ``options`` for the applications (slot length...). As
JSON (canonical when written by :meth:`Genesis.dumps`)::

    {
      "chain":                 str, the network id
      "timestamp_ms":          int, genesis time, ms since 1970-01-01 UTC; block 0's timestamp
      "validators":            [64-hex public key, ...], N = 3f + 1 of them, f >= 1
      "issuer_public_key":     64-hex public key of the grid operator
      "regulator_public_keys": [64-hex public key, ...]
      "options":               {name: int, ...}
      "protocol":              4, the ledger protocol (``ledger.state.PROTOCOL_VERSION``)
      "members":               [{"public_key": 64-hex, "role": str}, ...], optional
    }

``members`` lists participants that exist from block 0 with their role: ``household``,
``storage_provider`` or ``retailer`` (``ledger.application.REGISTRABLE_ROLES``; the others are
registered later by the grid operator). A document without members has no ``members`` key at
all, so the documents (and block 0 hashes) of networks created before it existed are unchanged.

A document of another protocol (one without ``protocol`` is of protocol 1, whose state root
hashed the whole state) is refused with a message that says how to create a new network.

Block 0 is fully determined by the document: height 0, previous_hash 64 zeros, the genesis time,
proposer 0, no transactions, and the state root of ``application.genesis_state``. It carries
validator 0's proposer signature and a certificate signed by *every* validator (the genesis
command holds all the keys when it creates the network), so it verifies with
``verify_block(previous=None)`` like any other block.

Block 0's hash covers the whole document: the chain id and time in its header, and the members,
validator list and options in its genesis state.

Key files hold one validator's private key as JSON (``chain``, ``index``, ``public_key``,
``private_key``, hex). They are created with mode 0600 and never overwritten; a key file that
its group or others may read is refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ledger import application
from ledger.blocks import (
    GENESIS_PREVIOUS_HASH,
    Block,
    BlockHeader,
    block_hash,
    events_root_of,
    propose_block,
    results_root_of,
    sign_commit,
    signatures_root_of,
    tx_root_of,
    verify_block,
)
from ledger.crypto import MAX_SAFE_INTEGER, LedgerCryptoError, canonical, is_name, loads
from ledger.identity import IdentityError, KeyPair, public_key_bytes
from ledger.state import PROTOCOL_VERSION, RECREATE_HINT, State
from ledger.store import DatabaseExists, Store, create_database, open_store

GENESIS_META_KEY = "genesis"
GENESIS_FIELDS = frozenset(
    {
        "chain",
        "timestamp_ms",
        "validators",
        "issuer_public_key",
        "regulator_public_keys",
        "options",
        "protocol",
    }
)
OPTIONAL_GENESIS_FIELDS = frozenset({"members"})
MEMBER_FIELDS = frozenset({"public_key", "role"})
KEY_FILE_FIELDS = frozenset({"chain", "index", "public_key", "private_key"})
KEY_FILE_MODE = 0o600


class GenesisError(ValueError):
    """A genesis document or block that is malformed or inconsistent."""


class KeyFileError(Exception):
    """A key file that cannot be written or read safely."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_public_key(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise GenesisError(f"{what} must be a 64-hex public key")
    try:
        public_key_bytes(value)
    except IdentityError as error:
        raise GenesisError(f"{what}: {error}") from None
    return value


def _check_members(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise GenesisError("members must be a list of (public key, role)")
    members = []
    for index, member in enumerate(value):
        if isinstance(member, (str, bytes)) or not isinstance(member, Sequence) or len(member) != 2:
            raise GenesisError(f"member {index} must be a public key and a role")
        key, role = member
        _check_public_key(f"member {index}", key)
        if role not in application.REGISTRABLE_ROLES:
            raise GenesisError(
                f"member {index}: role {role!r} is not one of"
                f" {sorted(application.REGISTRABLE_ROLES)}"
            )
        members.append((key, role))
    return tuple(members)


def fault_tolerance(validator_count: int) -> int:
    """f for N = 3f + 1 validators; GenesisError unless N is 3f + 1 with f >= 1 (4, 7, 10...)."""
    if validator_count < 4 or (validator_count - 1) % 3:
        raise GenesisError(
            f"{validator_count} validators: a network needs N = 3f + 1 with f >= 1 (4, 7, 10, ...)"
        )
    return (validator_count - 1) // 3


@dataclass(frozen=True)
class Genesis:
    """The genesis document (module docstring). Construction validates it."""

    chain: str
    timestamp_ms: int
    validators: tuple[str, ...]
    issuer_public_key: str
    regulator_public_keys: tuple[str, ...] = ()
    options: Mapping[str, int] = field(default_factory=dict)
    protocol: int = PROTOCOL_VERSION
    # (public key, role) of each participant listed in genesis, in the document's order.
    members: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.protocol != PROTOCOL_VERSION or not _is_int(self.protocol):
            raise GenesisError(f"a genesis document of protocol {self.protocol!r}: {RECREATE_HINT}")
        if not isinstance(self.chain, str) or not is_name(self.chain):
            raise GenesisError("chain must be 1-64 characters of [a-z0-9._-]")
        if not _is_int(self.timestamp_ms) or not 0 <= self.timestamp_ms <= MAX_SAFE_INTEGER:
            raise GenesisError("timestamp_ms must be an integer between 0 and 2**53 - 1")
        for name in ("validators", "regulator_public_keys"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise GenesisError(f"{name} must be a list of public keys")
            object.__setattr__(self, name, tuple(value))
        for index, key in enumerate(self.validators):
            _check_public_key(f"validator {index}", key)
        if len(set(self.validators)) != len(self.validators):
            raise GenesisError("a validator key is listed twice")
        fault_tolerance(len(self.validators))
        _check_public_key("issuer_public_key", self.issuer_public_key)
        for index, key in enumerate(self.regulator_public_keys):
            _check_public_key(f"regulator {index}", key)
        members = [self.issuer_public_key, *self.regulator_public_keys]
        if len(set(members)) != len(members):
            raise GenesisError("the issuer and the regulators must have distinct keys")
        object.__setattr__(self, "members", _check_members(self.members))
        keys = [*members, *(key for key, _ in self.members)]
        if len(set(keys)) != len(keys):
            raise GenesisError("every member of genesis must have a key of its own")
        if not isinstance(self.options, Mapping):
            raise GenesisError("options must be an object")
        for name, value in self.options.items():
            if not isinstance(name, str) or not is_name(name):
                raise GenesisError(f"option name {name!r}: 1-64 characters of [a-z0-9._-]")
            if not _is_int(value) or not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                raise GenesisError(f"option {name}: integers only, within +-(2**53 - 1)")
        object.__setattr__(self, "options", MappingProxyType(dict(sorted(self.options.items()))))

    def __hash__(self) -> int:
        return hash(self.dumps())

    @property
    def f(self) -> int:
        """The number of faulty validators the network tolerates."""
        return fault_tolerance(len(self.validators))

    # --- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "chain": self.chain,
            "timestamp_ms": self.timestamp_ms,
            "validators": list(self.validators),
            "issuer_public_key": self.issuer_public_key,
            "regulator_public_keys": list(self.regulator_public_keys),
            "options": dict(self.options),
            "protocol": self.protocol,
        }
        if self.members:
            document["members"] = [{"public_key": k, "role": r} for k, r in self.members]
        return document

    @classmethod
    def from_json(cls, obj: object) -> Genesis:
        """Parse a decoded genesis document strictly: exactly its seven fields, and ``members``
        if it lists any."""
        if isinstance(obj, dict) and obj.keys() == GENESIS_FIELDS - {"protocol"}:
            raise GenesisError(f"a genesis document of protocol 1: {RECREATE_HINT}")
        if not isinstance(obj, dict) or not GENESIS_FIELDS <= obj.keys() <= (
            GENESIS_FIELDS | OPTIONAL_GENESIS_FIELDS
        ):
            raise GenesisError(
                f"a genesis document is an object with keys {sorted(GENESIS_FIELDS)}"
                f" and optionally {sorted(OPTIONAL_GENESIS_FIELDS)}"
            )
        if "members" in obj:
            listed = obj["members"]
            if not isinstance(listed, list) or not listed:
                raise GenesisError("members must be a non-empty list (or left out)")
            if not all(isinstance(m, dict) and m.keys() == MEMBER_FIELDS for m in listed):
                raise GenesisError('each member is {"public_key": ..., "role": ...}')
            obj = obj | {"members": [(m["public_key"], m["role"]) for m in listed]}
        for name in ("validators", "regulator_public_keys"):
            if not isinstance(obj[name], list):
                raise GenesisError(f"{name} must be a list")
        if not isinstance(obj["options"], dict):
            raise GenesisError("options must be an object")
        return cls(**obj)

    def dumps(self) -> str:
        """The document as canonical JSON text."""
        return canonical(self.to_json()).decode("utf-8")

    @classmethod
    def loads(cls, text: str | bytes) -> Genesis:
        try:
            obj = loads(text)
        except LedgerCryptoError as error:
            raise GenesisError(f"genesis document: {error}") from None
        return cls.from_json(obj)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> Genesis:
        with open(path, "rb") as handle:
            return cls.loads(handle.read())

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Write the canonical document to a new file (mode 0644); refuse to overwrite one."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise GenesisError(
                f"{os.fspath(path)} exists; a genesis file is never overwritten"
            ) from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.dumps().encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def document_hash(self) -> str:
        """SHA-256 of the canonical document, to compare out of band."""
        return hashlib.sha256(canonical(self.to_json())).hexdigest()

    # --- block 0 -----------------------------------------------------------------------------

    def genesis_state(self) -> State:
        """The state at height 0 (a new object on every call)."""
        return application.genesis_state(
            chain=self.chain,
            issuer_public_key=self.issuer_public_key,
            regulator_public_keys=list(self.regulator_public_keys),
            validators=list(self.validators),
            options=dict(self.options),
            members=self.members,
        )

    def block_header(self) -> BlockHeader:
        """Block 0's header, which the document alone determines."""
        return BlockHeader(
            chain=self.chain,
            height=0,
            previous_hash=GENESIS_PREVIOUS_HASH,
            timestamp_ms=self.timestamp_ms,
            proposer=0,
            tx_root=tx_root_of([]),
            results_root=results_root_of([]),
            events_root=events_root_of([]),
            signatures_root=signatures_root_of([]),
            state_root=self.genesis_state().root(),
        )

    @functools.cached_property
    def block_hash(self) -> str:
        """Block 0's hash (a property, like ``Block.hash``)."""
        return block_hash(self.block_header())

    def verify_block(self, block: Block) -> None:
        """Raise unless ``block`` is this network's block 0 with valid signatures.

        Raises GenesisError if it is another block 0, or an InvalidBlock subclass.
        """
        verify_block(block, validators=list(self.validators), previous=None)
        if block.hash != self.block_hash:
            raise GenesisError("block 0 is not the block of this genesis document")


def create_genesis(
    *,
    chain: str,
    timestamp_ms: int,
    validator_keys: Sequence[KeyPair],
    issuer_public_key: str,
    regulator_public_keys: Sequence[str] = (),
    options: Mapping[str, int] | None = None,
    members: Sequence[tuple[str, str]] = (),
) -> tuple[Genesis, Block]:
    """A new network's genesis document and block 0, signed by every validator key.

    Raises GenesisError unless there are N = 3f + 1 validator keys with f >= 1.
    """
    genesis = Genesis(
        chain=chain,
        timestamp_ms=timestamp_ms,
        validators=tuple(pair.public_key_hex for pair in validator_keys),
        issuer_public_key=issuer_public_key,
        regulator_public_keys=tuple(regulator_public_keys),
        options=dict(options or {}),
        members=tuple(members),
    )
    header = genesis.block_header()
    proposal = propose_block(
        keypair=validator_keys[0],
        chain=chain,
        height=0,
        previous_hash=GENESIS_PREVIOUS_HASH,
        timestamp_ms=timestamp_ms,
        proposer=0,
        transactions=[],
        results=[],
        state_root=header.state_root,
    )
    assert proposal.header == header
    votes = tuple(
        sign_commit(keypair=pair, validator=index, header=header)
        for index, pair in enumerate(validator_keys)
    )
    block = Block(
        header=header,
        transactions=(),
        results=(),
        proposer_signature=proposal.proposer_signature,
        certificate=votes,
    )
    genesis.verify_block(block)
    return genesis, block


def install_genesis(store: Store, genesis: Genesis, block: Block) -> None:
    """Initialize an empty store with the genesis document (meta) and block 0 and its state.

    Raises GenesisError if the store already holds blocks or ``block`` is not this genesis's.
    """
    genesis.verify_block(block)
    store.init_schema()
    if store.height() >= 0:
        raise GenesisError("the store already holds blocks")
    store.put_meta(GENESIS_META_KEY, genesis.dumps())
    store.append(block, genesis.genesis_state().to_json())


GENESIS_FILE = "genesis.json"


def key_file_name(index: int) -> str:
    return f"validator-{index}.key"


def install_network(
    directory: str | os.PathLike[str],
    *,
    genesis: Genesis,
    block: Block,
    keys: Sequence[KeyPair],
    store_urls: Sequence[str],
) -> None:
    """Write a new network: validator K's key file (mode 0600) and ``genesis.json`` into
    ``directory``, and genesis into validator K's store at ``store_urls[K]``, creating its
    database unless it exists (it must then be empty: ``install_genesis`` refuses blocks)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (pair, url) in enumerate(zip(keys, store_urls, strict=True)):
        write_key_file(folder / key_file_name(index), pair, index, genesis.chain)
        try:
            create_database(url)
        except DatabaseExists:
            pass
        store = open_store(url)
        try:
            install_genesis(store, genesis, block)
        finally:
            store.close()
    genesis.to_json_file(folder / GENESIS_FILE)


def stored_genesis(store: Store) -> Genesis | None:
    """The genesis document the store was installed with, or None."""
    text = store.get_meta(GENESIS_META_KEY)
    return None if text is None else Genesis.loads(text)


# --- validator key files ---------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KeyFile:
    """A validator's key as read from its key file. ``repr`` never shows the private key."""

    keypair: KeyPair
    index: int
    chain: str

    def __repr__(self) -> str:
        return f"KeyFile(chain={self.chain!r}, index={self.index}, keypair={self.keypair!r})"


def write_key_file(path: str | os.PathLike[str], keypair: KeyPair, index: int, chain: str) -> None:
    """Write a validator's key file, created with mode 0600; refuse to overwrite any file.

    The file is created with O_CREAT | O_EXCL (which also refuses a symlink at ``path``), so it
    is never readable by anyone else, not even for a moment. A failed write removes it.
    """
    if not _is_int(index) or index < 0:
        raise KeyFileError("index must be a non-negative integer")
    if not is_name(chain):
        raise KeyFileError("chain must be 1-64 characters of [a-z0-9._-]")
    text = canonical(
        {
            "chain": chain,
            "index": index,
            "public_key": keypair.public_key_hex,
            "private_key": keypair.private_key.hex(),
        }
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(f"{os.fspath(path)} exists; key files are never overwritten") from None
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # exactly 0600, whatever the umask
        view = memoryview(text + b"\n")
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def read_key_file(path: str | os.PathLike[str]) -> KeyFile:
    """Read a validator's key file; refuse one that its group or others may access."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise KeyFileError(f"cannot open {os.fspath(path)}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{os.fspath(path)} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{os.fspath(path)} has mode {stat.S_IMODE(info.st_mode):04o}; a key file must "
                "not be accessible to group or others (chmod 600)"
            )
        data = handle.read()
    try:
        obj = json.loads(data)
    except ValueError:
        raise KeyFileError(f"{os.fspath(path)} is not JSON") from None
    if not isinstance(obj, dict) or obj.keys() != KEY_FILE_FIELDS:
        raise KeyFileError(f"a key file is an object with keys {sorted(KEY_FILE_FIELDS)}")
    private_key, public_key = obj["private_key"], obj["public_key"]
    index, chain = obj["index"], obj["chain"]
    if not isinstance(private_key, str) or len(private_key) != 64:
        raise KeyFileError("private_key must be 64 hex characters")
    try:
        keypair = KeyPair(private_key=bytes.fromhex(private_key))
    except ValueError:
        raise KeyFileError("private_key must be 64 hex characters") from None
    if keypair.public_key_hex != public_key:
        raise KeyFileError("public_key is not the public key of private_key")
    if not _is_int(index) or index < 0:
        raise KeyFileError("index must be a non-negative integer")
    if not isinstance(chain, str) or not is_name(chain):
        raise KeyFileError("chain must be 1-64 characters of [a-z0-9._-]")
    return KeyFile(keypair=keypair, index=index, chain=chain)
