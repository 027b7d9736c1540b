"""Identities: Ed25519 key pairs, account addresses, and private keys sealed at rest.

No Django import: the ledger's crypto builds on this module, and it is tested on its own.

Address format (50 lowercase hex characters, 25 bytes)::

    version   1 byte    0x01
    key hash  20 bytes  SHA-256(raw 32-byte Ed25519 public key)[:20]
    checksum  4 bytes   SHA-256(version || key hash)[:4]

A mistyped address fails its checksum. Public keys travel as 64 lowercase hex characters.

Sealed private key format (bytes)::

    b"s1"      2 bytes   format version
    kek id     8 bytes   SHA-256(key-encryption key)[:8], so the right key is found after rotation
    nonce      12 bytes  random, never reused under one key
    sealed     48 bytes  AES-256-GCM(raw 32-byte private key) with its 16-byte tag

The associated data is the account address, so a sealed key copied onto another account does not
open. Key-encryption keys are 32 random bytes written as URL-safe base64 (44 characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ADDRESS_VERSION = 0x01
ADDRESS_HEX_LENGTH = 50
PUBLIC_KEY_HEX_LENGTH = 64
_SEAL_FORMAT = b"s1"
_KEK_ID_LENGTH = 8
_NONCE_LENGTH = 12


class IdentityError(Exception):
    """Base of every error this module raises."""


class InvalidAddress(IdentityError):
    """Not an address: wrong length, not hex, unknown version."""


class AddressChecksumMismatch(InvalidAddress):
    """Well-formed, but the checksum does not match: most likely a typo."""


class InvalidPublicKey(IdentityError):
    """Not a 32-byte Ed25519 public key in lowercase hex."""


class BadSignature(IdentityError):
    """The signature does not verify under the given public key."""


class InvalidKeyEncryptionKey(IdentityError):
    """A key-encryption key that is not 32 bytes of URL-safe base64."""


class UnknownKeyEncryptionKey(IdentityError):
    """The sealed key names a key-encryption key that is not configured."""


class SealBroken(IdentityError):
    """The sealed key is malformed, was tampered with, or belongs to another address."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _from_hex(text: str, *, length: int, error: type[IdentityError]) -> bytes:
    if not isinstance(text, str) or len(text) != length or text != text.lower():
        raise error(f"expected {length} lowercase hex characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise error(f"expected {length} lowercase hex characters") from None


# --- addresses -------------------------------------------------------------------------------


def address_from_public_key(public_key_hex: str) -> str:
    """The account address of a public key (see the module docstring)."""
    raw = public_key_bytes(public_key_hex)
    body = bytes([ADDRESS_VERSION]) + _sha256(raw)[:20]
    return (body + _sha256(body)[:4]).hex()


def validate_address(address: str) -> str:
    """Return the address unchanged, or raise InvalidAddress / AddressChecksumMismatch."""
    raw = _from_hex(address, length=ADDRESS_HEX_LENGTH, error=InvalidAddress)
    if raw[0] != ADDRESS_VERSION:
        raise InvalidAddress(f"unknown address version 0x{raw[0]:02x}")
    if not hmac.compare_digest(_sha256(raw[:21])[:4], raw[21:]):
        raise AddressChecksumMismatch("address checksum does not match; check for a typo")
    return address


def public_key_bytes(public_key_hex: str) -> bytes:
    raw = _from_hex(public_key_hex, length=PUBLIC_KEY_HEX_LENGTH, error=InvalidPublicKey)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidPublicKey("not an Ed25519 public key") from None
    return raw


# --- key pairs and signatures ----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KeyPair:
    """An Ed25519 key pair held in memory. ``repr`` never shows the private key."""

    private_key: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(private_key=raw)

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.private_key)

    @property
    def public_key_hex(self) -> str:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @property
    def address(self) -> str:
        return address_from_public_key(self.public_key_hex)

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, as 128 lowercase hex characters."""
        return self._key.sign(message).hex()

    def __repr__(self) -> str:
        return f"KeyPair(address={self.address!r})"


def verify(public_key_hex: str, message: bytes, signature_hex: str) -> None:
    """Raise BadSignature unless ``signature_hex`` signs ``message`` under the public key."""
    key = Ed25519PublicKey.from_public_bytes(public_key_bytes(public_key_hex))
    try:
        signature = bytes.fromhex(signature_hex)
    except (TypeError, ValueError):
        raise BadSignature("signature is not hex") from None
    if len(signature) != 64:
        raise BadSignature("an Ed25519 signature is 64 bytes")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None


# --- sealing private keys at rest ------------------------------------------------------------


def generate_key_encryption_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _kek_bytes(kek: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(kek.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidKeyEncryptionKey("a key-encryption key is URL-safe base64") from None
    if len(raw) != 32:
        raise InvalidKeyEncryptionKey("a key-encryption key is 32 bytes")
    return raw


def key_encryption_key_id(kek: str) -> bytes:
    return _sha256(_kek_bytes(kek))[:_KEK_ID_LENGTH]


class KeyRing:
    """The current key-encryption key, which seals, and retired ones, which only unseal."""

    def __init__(self, current: str, retired: list[str] | tuple[str, ...] = ()) -> None:
        self._current_id = key_encryption_key_id(current)
        self._keys = {key_encryption_key_id(k): _kek_bytes(k) for k in (*retired, current)}

    def seal(self, private_key: bytes, *, address: str) -> bytes:
        nonce = os.urandom(_NONCE_LENGTH)
        sealed = AESGCM(self._keys[self._current_id]).encrypt(
            nonce, private_key, address.encode("ascii")
        )
        return _SEAL_FORMAT + self._current_id + nonce + sealed

    def unseal(self, blob: bytes, *, address: str) -> KeyPair:
        blob = bytes(blob)
        header = len(_SEAL_FORMAT) + _KEK_ID_LENGTH + _NONCE_LENGTH
        if len(blob) != header + 48 or not blob.startswith(_SEAL_FORMAT):
            raise SealBroken("not a sealed key")
        kek_id = blob[2 : 2 + _KEK_ID_LENGTH]
        nonce = blob[2 + _KEK_ID_LENGTH : header]
        if kek_id not in self._keys:
            raise UnknownKeyEncryptionKey(f"no key-encryption key with id {kek_id.hex()}")
        try:
            private_key = AESGCM(self._keys[kek_id]).decrypt(
                nonce, blob[header:], address.encode("ascii")
            )
        except InvalidTag:
            raise SealBroken("sealed key does not open: tampered, or another account's") from None
        pair = KeyPair(private_key=private_key)
        if pair.address != address:
            raise SealBroken("sealed key does not belong to this address")
        return pair

    def is_current(self, blob: bytes) -> bool:
        return bytes(blob)[2 : 2 + _KEK_ID_LENGTH] == self._current_id
