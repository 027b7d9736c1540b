#!/usr/bin/env python3
"""Verify a grid platform ledger from outside, through its public API, trusting no site.

    python tools/verify_public_ledger.py https://grid.example.org [--genesis-hash HEX]

Standalone on purpose: the Python standard library, ``cryptography`` and ``rfc8785``, nothing of
the project, so that anyone can read it against docs/ledger.md and run it. It downloads,
anonymously, the genesis document (``/api/v1/ledger/genesis``), the validators
(``/validators``), the list of blocks (``/blocks``, page by page) and every block from 0 to the
newest (``/blocks/{height}``), waiting as told by ``Retry-After`` when rate-limited, and checks:

* the genesis document against its hash (and against ``--genesis-hash``, the hash the network's
  operators publish: pin it, or the rest proves only that the site is consistent with itself);
  the validators' public keys against the document;
* each block: its header hashes (SHA-256 of the RFC 8785 canonical JSON) to its hash, the same
  as the list gives; chain and height; the link to the previous block's hash; a later
  timestamp; ``tx_root`` is the RFC 6962 Merkle root of the transaction ids;
  ``results_root`` and ``signatures_root``; ``events_root`` is the RFC 6962 Merkle root of the
  block's events (each the canonical JSON of ``{"tx", "type", "data"}``), every event naming a
  successful transaction of the block, in order; the proposer's signature; a certificate of commit
  votes of at least N - f distinct validators, every vote valid;
* each transaction shown whole: its id is SHA-256 of its signing bytes, and its Ed25519
  signature verifies with the sender's key at that point of the chain (genesis members, then
  ``account.register`` and ``key.rotate``). A transaction whose body is withheld (``redacted``:
  personal data, meter readings) is checked only by the inclusion of its id in ``tx_root``.

With ``--check-proofs`` it also fetches each transaction (``/transactions/{id}``) and checks
its inclusion proof (RFC 9162) against the block's ``tx_root``.

Not checked: the state root (that needs the state and every application's rules: run a
validator), nonces and permissions. Block 0 without signatures (a site that took it from the
genesis document) is checked against the document's header fields; its state root is then
covered by block 1's certificate, which signs a header that names block 0's hash.

Prints ``ok`` and exits 0, or ``bad height H: reason`` for the first bad block and exits 1
(``bad genesis: ...``/``bad validators: ...`` before any block); 2 for anything else (the site
cannot be reached, bad arguments).
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

API = "/api/v1/ledger"
PAGE = 200  # the largest page the API gives
HEADER_FIELDS = (
    "chain",
    "height",
    "previous_hash",
    "timestamp_ms",
    "proposer",
    "tx_root",
    "results_root",
    "events_root",
    "signatures_root",
    "state_root",
)
SIGNED_FIELDS = ("chain", "type", "sender", "nonce", "payload")
GENESIS_PREVIOUS_HASH = "00" * 32
ADDRESS_VERSION = b"\x01"
# Results of transactions refused before their signature was found good (docs/ledger.md,
# "Execution and results"): their signatures are not checked here either.
UNSIGNED_RESULTS = frozenset({"unknown_sender", "wrong_chain", "bad_signature"})


class Bad(Exception):
    """What is wrong with the ledger as the site serves it."""


class Unreachable(Exception):
    """The site did not answer usably (not a fault of the ledger)."""


# --- bytes, hashes, signatures (docs/ledger.md) --------------------------------------------------


def _no_float(text: str) -> Any:
    raise ValueError(f"a float ({text}): the ledger has none")


def parse(data: bytes) -> Any:
    return json.loads(data, parse_float=_no_float, parse_constant=_no_float)


def canonical(value: Any) -> bytes:
    return rfc8785.dumps(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def address_of(public_key: str) -> str:
    """Version 0x01, SHA-256(public key)[:20], then a 4-byte checksum."""
    body = ADDRESS_VERSION + hashlib.sha256(bytes.fromhex(public_key)).digest()[:20]
    return (body + hashlib.sha256(body).digest()[:4]).hex()


def signature_valid(public_key: str, message: bytes, signature: Any) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        key.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1: MTH of the leaves (raw 32-byte transaction ids)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two < n
    return _node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_valid(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, _leaf(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def quorum(n: int) -> int:
    """N - f votes, f = (N - 1) // 3."""
    return n - (n - 1) // 3


def vote_bytes(kind: str, chain: str, height: int, block_hash: str) -> bytes:
    return canonical({"kind": kind, "chain": chain, "height": height, "block": block_hash})


# --- the site ----------------------------------------------------------------------------------


class Site:
    """GETs of the public API, anonymous; waits as ``Retry-After`` says on 429 and 503."""

    def __init__(
        self,
        base_url: str,
        *,
        max_wait_s: float = 120.0,
        attempts: int = 20,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_wait_s = max_wait_s
        self.attempts = attempts
        self.sleep = sleep
        self.requests = 0

    def url(self, path: str, **query: Any) -> str:
        url = self.base_url + API + path
        return f"{url}?{urllib.parse.urlencode(query)}" if query else url

    def get(self, url: str) -> Any:
        """The decoded JSON at ``url``; Unreachable when the site does not give it."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise Unreachable(f"{url}: not an http(s) URL")
        headers = {"Accept": "application/json", "User-Agent": "verify_public_ledger"}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked)
        for _ in range(self.attempts):
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    data = response.read()
            except urllib.error.HTTPError as error:
                if error.code in (429, 503):
                    self.sleep(self._retry_after(error.headers.get("Retry-After")))
                    continue
                raise Unreachable(f"{url}: HTTP {error.code}") from None
            except (urllib.error.URLError, OSError) as error:
                raise Unreachable(f"{url}: {error}") from None
            try:
                return parse(data)
            except ValueError as error:  # a float, or not JSON: the answer is wrong
                raise Bad(f"{url}: {error}") from None
        raise Unreachable(f"{url}: still refused after {self.attempts} attempts")

    def _retry_after(self, value: str | None) -> float:
        wait = 1.0
        if value:
            try:
                wait = float(int(value))
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                wait = when.timestamp() - time.time() if when else 1.0
        return min(max(wait, 0.0), self.max_wait_s)


# --- the checks --------------------------------------------------------------------------------


def check_genesis(answer: Any, pinned: str | None) -> dict[str, Any]:
    document = answer.get("document") if isinstance(answer, dict) else None
    if not isinstance(document, dict):
        raise Bad("no genesis document")
    digest = sha256_hex(canonical(document))
    if digest != answer.get("document_hash"):
        raise Bad("the document does not hash to its document_hash")
    if pinned is not None and digest != pinned.lower():
        raise Bad(f"the document's hash is {digest}, not the pinned {pinned}")
    validators = document.get("validators")
    if not isinstance(validators, list) or not validators:
        raise Bad("the document names no validators")
    return document


def check_validators(answer: Any, genesis: dict[str, Any]) -> None:
    keys = genesis["validators"]
    listed = answer if isinstance(answer, list) else []
    if len(listed) != len(keys):
        raise Bad(f"the site lists {len(listed)} validators, the genesis document {len(keys)}")
    for item in listed:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(keys):
            raise Bad(f"unknown validator index {index!r}")
        if item.get("public_key") != keys[index]:
            raise Bad(f"validator {index}'s public key is not the genesis document's")


class Chain:
    """Blocks checked in order from 0; what the next one must link to; the accounts' keys."""

    def __init__(self, genesis: dict[str, Any]) -> None:
        self.genesis = genesis
        self.chain = genesis["chain"]
        self.validators: list[str] = genesis["validators"]
        members = [genesis["issuer_public_key"], *genesis["regulator_public_keys"]]
        self.keys = {address_of(key): key for key in members}
        self.previous: dict[str, Any] | None = None
        self.previous_hash = ""
        self.transactions = 0
        self.redacted = 0
        self.unsigned_genesis = False

    def check(self, height: int, block: Any, listed_hash: str | None) -> None:
        """Raise Bad unless ``block`` (the API's answer) is a valid block at ``height``."""
        if not isinstance(block, dict) or block.get("height") != height:
            raise Bad("the site answered another block")
        try:
            header = {name: block[name] for name in HEADER_FIELDS}
            transactions = block["transactions"]
            events = block["events"]
            certificate = block["certificate"]
        except KeyError as missing:
            raise Bad(f"the answer has no {missing}") from None
        digest = sha256_hex(canonical(header))
        if digest != block.get("hash"):
            raise Bad("the header does not hash to the block's hash")
        if listed_hash is not None and listed_hash != digest:
            raise Bad("the list of blocks gives another hash")
        if header["chain"] != self.chain:
            raise Bad(f"a block of chain {header['chain']!r}")
        self._check_link(height, header)
        if block.get("tx_count") != len(transactions):
            raise Bad("tx_count is not the number of transactions")
        self._check_transactions(transactions)
        ids = [bytes.fromhex(tx["id"]) for tx in transactions]
        if merkle_root(ids).hex() != header["tx_root"]:
            raise Bad("tx_root is not the Merkle root of the transaction ids")
        if sha256_hex(canonical([tx["result"] for tx in transactions])) != header["results_root"]:
            raise Bad("results_root does not match the results")
        self._check_events(events, transactions, header["events_root"])
        signatures = [tx["signature"] for tx in transactions]
        if sha256_hex(canonical(signatures)) != header["signatures_root"]:
            raise Bad("signatures_root does not match the transactions' signatures")
        if height == 0 and block.get("proposer_signature") is None and certificate == []:
            self._check_unsigned_genesis(header)
        else:
            self._check_signatures(header, digest, block.get("proposer_signature"), certificate)
        self.previous, self.previous_hash = header, digest

    def _check_link(self, height: int, header: dict[str, Any]) -> None:
        if height == 0:
            if header["previous_hash"] != GENESIS_PREVIOUS_HASH:
                raise Bad("block 0 links to something")
            if header["timestamp_ms"] != self.genesis["timestamp_ms"]:
                raise Bad("block 0 is not dated at the genesis time")
            return
        assert self.previous is not None
        if header["previous_hash"] != self.previous_hash:
            raise Bad("previous_hash is not the hash of the previous block")
        if not isinstance(header["timestamp_ms"], int) or (
            header["timestamp_ms"] <= self.previous["timestamp_ms"]
        ):
            raise Bad("its timestamp is not later than the previous block's")

    def _check_transactions(self, transactions: list[Any]) -> None:
        for index, tx in enumerate(transactions):
            try:
                self._check_transaction(tx)
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise Bad(f"transaction {index}: malformed ({error!r})") from None
            except Bad as error:
                raise Bad(f"transaction {index}: {error}") from None

    def _check_transaction(self, tx: dict[str, Any]) -> None:
        if tx["chain"] != self.chain:
            raise Bad(f"for chain {tx['chain']!r}")
        if len(bytes.fromhex(tx["id"])) != 32:
            raise Bad("an id is 64 hex digits")
        self.transactions += 1
        if tx.get("redacted"):
            # Its body is withheld: only the inclusion of its id (tx_root) can be checked.
            self.redacted += 1
            return
        signing_bytes = canonical({name: tx[name] for name in SIGNED_FIELDS})
        if sha256_hex(signing_bytes) != tx["id"]:
            raise Bad("its id is not the hash of its signing bytes")
        result = tx["result"]
        if result in UNSIGNED_RESULTS:
            return
        key = self.keys.get(tx["sender"])
        if key is None:
            raise Bad(f"sender {tx['sender']} has no account, yet the result is {result!r}")
        if not signature_valid(key, signing_bytes, tx["signature"]):
            raise Bad("its signature does not verify with the sender's key")
        if result != "ok":
            return
        payload = tx["payload"]
        if tx["type"] == "account.register":
            self.keys[payload["address"]] = payload["public_key"]
        elif tx["type"] == "key.rotate":
            self.keys[tx["sender"]] = payload["public_key"]

    @staticmethod
    def _check_events(events: Any, transactions: list[Any], root: str) -> None:
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise Bad("the events are not a list of objects")
        if merkle_root([canonical(event) for event in events]).hex() != root:
            raise Bad("events_root is not the Merkle root of the events")
        last = 0
        for event in events:
            at = event.get("tx")
            if (
                not isinstance(at, int)
                or not last <= at < len(transactions)
                or transactions[at]["result"] != "ok"
            ):
                raise Bad("an event names no successful transaction of the block, in order")
            last = at

    def _check_unsigned_genesis(self, header: dict[str, Any]) -> None:
        """Block 0 as the genesis document alone determines it (a site that never had the
        validators' copy): no transactions and proposer 0. Its state root is covered by the next
        block's certificate only."""
        empty = sha256_hex(canonical([]))
        if header["proposer"] != 0 or header["tx_root"] != merkle_root([]).hex():
            raise Bad("block 0 without signatures is not the genesis document's")
        if header["events_root"] != merkle_root([]).hex():
            raise Bad("block 0 without signatures is not the genesis document's")
        if header["results_root"] != empty or header["signatures_root"] != empty:
            raise Bad("block 0 without signatures is not the genesis document's")
        self.unsigned_genesis = True

    def _check_signatures(
        self, header: dict[str, Any], digest: str, proposer_signature: Any, certificate: Any
    ) -> None:
        chain, height, n = header["chain"], header["height"], len(self.validators)
        proposer = header["proposer"]
        if not isinstance(proposer, int) or not 0 <= proposer < n:
            raise Bad(f"no validator {proposer!r} proposed it")
        message = vote_bytes("proposal", chain, height, digest)
        if not signature_valid(self.validators[proposer], message, proposer_signature):
            raise Bad("the proposer's signature does not verify")
        if not isinstance(certificate, list):
            raise Bad("no certificate")
        message = vote_bytes("commit", chain, height, digest)
        voters: set[int] = set()
        for vote in certificate:
            validator = vote.get("validator") if isinstance(vote, dict) else None
            if not isinstance(validator, int) or not 0 <= validator < n:
                raise Bad(f"certificate: no validator {validator!r}")
            if validator in voters:
                raise Bad(f"certificate: validator {validator} votes twice")
            voters.add(validator)
            if not signature_valid(self.validators[validator], message, vote.get("signature")):
                raise Bad(f"certificate: the vote of validator {validator} does not verify")
        if len(voters) < quorum(n):
            raise Bad(f"certificate: {len(voters)} votes, {quorum(n)} of {n} needed")


def check_proofs(site: Site, header: dict[str, Any], transactions: list[dict[str, Any]]) -> None:
    """Each transaction's own inclusion proof, as ``/transactions/{id}`` gives it."""
    root = bytes.fromhex(header["tx_root"])
    for index, tx in enumerate(transactions):
        answer = site.get(site.url(f"/transactions/{tx['id']}"))
        proof = answer.get("proof") or {}
        try:
            path = [bytes.fromhex(p) for p in proof["path"]]
            valid = proof["root"] == header["tx_root"] and inclusion_valid(
                bytes.fromhex(tx["id"]), proof["index"], proof["tree_size"], path, root
            )
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid or answer.get("height") != header["height"]:
            raise Bad(f"transaction {index}: its inclusion proof does not lead to tx_root")


def listed_hashes(site: Site) -> tuple[int, dict[int, str]]:
    """The newest height and each block's hash, from the paged list (newest first)."""
    url: str | None = site.url("/blocks", limit=PAGE)
    tip = -1
    hashes: dict[int, str] = {}
    while url:
        page = site.get(url)
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise Bad("the list of blocks is not a page")
        for summary in page["results"]:
            height = summary.get("height") if isinstance(summary, dict) else None
            if not isinstance(height, int) or height < 0:
                raise Bad("the list of blocks holds something that is not a block")
            tip = max(tip, height)
            hashes.setdefault(height, summary.get("hash"))
        url = page.get("next")
    return tip, hashes


def verify(site: Site, *, pinned: str | None, proofs: bool, out: Callable[[str], None]) -> int:
    """Check the whole ledger the site serves; 0 when it holds, 1 at the first fault."""
    try:
        genesis = check_genesis(site.get(site.url("/genesis")), pinned)
    except Bad as error:
        out(f"bad genesis: {error}")
        return 1
    out(f"genesis document hash {sha256_hex(canonical(genesis))}, chain {genesis['chain']}")
    if pinned is None:
        out("(not pinned: compare it with the network's published hash, or pass --genesis-hash)")
    try:
        check_validators(site.get(site.url("/validators")), genesis)
        tip, hashes = listed_hashes(site)
    except Bad as error:
        out(f"bad validators: {error}")
        return 1
    chain = Chain(genesis)
    for height in range(tip + 1):
        try:
            block = site.get(site.url(f"/blocks/{height}"))
            chain.check(height, block, hashes.get(height))
            if proofs:
                check_proofs(site, chain.previous or {}, block["transactions"])
        except Bad as error:
            out(f"bad height {height}: {error}")
            return 1
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            out(f"bad height {height}: a malformed answer ({error!r})")
            return 1
    if tip < 0:
        out("no blocks yet")
    else:
        out(
            f"blocks 0..{tip}: {chain.transactions} transactions, {chain.redacted} of them "
            "withheld (personal data: checked by inclusion only)"
        )
    if chain.unsigned_genesis:
        out("block 0 carries no signatures: it is covered by block 1's certificate")
    out("ok")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="the site, e.g. https://grid.example.org")
    parser.add_argument("--genesis-hash", help="the genesis document's hash, as published")
    parser.add_argument(
        "--check-proofs",
        action="store_true",
        help="also fetch each transaction and check its inclusion proof",
    )
    parser.add_argument(
        "--max-wait", type=float, default=120.0, help="longest wait when rate-limited (s)"
    )
    args = parser.parse_args(argv)
    site = Site(args.base_url, max_wait_s=args.max_wait)
    try:
        return verify(
            site, pinned=args.genesis_hash, proofs=args.check_proofs, out=lambda s: print(s)
        )
    except Unreachable as error:
        print(f"cannot read the ledger: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
