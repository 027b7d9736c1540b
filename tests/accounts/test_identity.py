"""The identity module: fixed vectors, checksums, and sealing. No database needed."""

from __future__ import annotations

import ast
import hashlib

import pytest

from ledger import identity
from ledger.identity import KeyPair, KeyRing

# RFC 8032, section 7.1, test 1.
RFC8032_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_EMPTY_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
    "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# The address of that public key: 01 || SHA-256(pk)[:20] || SHA-256(01 || SHA-256(pk)[:20])[:4].
RFC8032_ADDRESS = "0121fe31dfa154a261626bf854046fd2271b7bed4bd11fd052"

KEK_A = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # 32 x "A"
KEK_B = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="  # 32 x "B"


@pytest.fixture
def rfc_pair() -> KeyPair:
    return KeyPair(private_key=bytes.fromhex(RFC8032_SECRET))


def test_it_derives_the_rfc8032_public_key_and_signature(rfc_pair: KeyPair) -> None:
    assert rfc_pair.public_key_hex == RFC8032_PUBLIC
    assert rfc_pair.sign(b"") == RFC8032_EMPTY_SIGNATURE


def test_it_derives_the_address_of_the_fixed_vector(rfc_pair: KeyPair) -> None:
    assert rfc_pair.address == RFC8032_ADDRESS
    assert identity.address_from_public_key(RFC8032_PUBLIC) == RFC8032_ADDRESS


def test_it_lays_out_the_address_as_specified() -> None:
    raw = bytes.fromhex(RFC8032_ADDRESS)
    key_hash = hashlib.sha256(bytes.fromhex(RFC8032_PUBLIC)).digest()[:20]
    assert len(RFC8032_ADDRESS) == 50
    assert raw[0] == 0x01
    assert raw[1:21] == key_hash
    assert raw[21:] == hashlib.sha256(raw[:21]).digest()[:4]


def test_it_accepts_a_valid_address() -> None:
    assert identity.validate_address(RFC8032_ADDRESS) == RFC8032_ADDRESS


@pytest.mark.parametrize("position", [0, 1, 10, 25, 42, 49])
def test_it_rejects_every_single_character_typo(position: int) -> None:
    wrong = "1" if RFC8032_ADDRESS[position] != "1" else "2"
    typo = RFC8032_ADDRESS[:position] + wrong + RFC8032_ADDRESS[position + 1 :]
    with pytest.raises(identity.InvalidAddress):
        identity.validate_address(typo)


def test_it_names_a_checksum_mismatch_as_such() -> None:
    typo = (
        RFC8032_ADDRESS[:10] + ("0" if RFC8032_ADDRESS[10] != "0" else "1") + RFC8032_ADDRESS[11:]
    )
    with pytest.raises(identity.AddressChecksumMismatch):
        identity.validate_address(typo)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        RFC8032_ADDRESS[:-2],
        RFC8032_ADDRESS + "00",
        RFC8032_ADDRESS.upper(),
        "zz" + RFC8032_ADDRESS[2:],
        "02" + RFC8032_ADDRESS[2:],
    ],
)
def test_it_rejects_malformed_addresses(bad: str) -> None:
    with pytest.raises(identity.InvalidAddress):
        identity.validate_address(bad)


def test_it_verifies_good_signatures_and_rejects_bad_ones(rfc_pair: KeyPair) -> None:
    signature = rfc_pair.sign(b"slot 2026-11-21T10:00Z sell 1500 Wh")
    identity.verify(RFC8032_PUBLIC, b"slot 2026-11-21T10:00Z sell 1500 Wh", signature)
    with pytest.raises(identity.BadSignature):
        identity.verify(RFC8032_PUBLIC, b"slot 2026-11-21T10:00Z sell 9999 Wh", signature)
    with pytest.raises(identity.BadSignature):
        identity.verify(RFC8032_PUBLIC, b"", "00" * 63)
    with pytest.raises(identity.BadSignature):
        identity.verify(RFC8032_PUBLIC, b"", "not hex")


def test_it_rejects_a_public_key_that_is_not_one() -> None:
    with pytest.raises(identity.InvalidPublicKey):
        identity.address_from_public_key("ab" * 31)
    with pytest.raises(identity.InvalidPublicKey):
        identity.address_from_public_key(RFC8032_PUBLIC.upper())


def test_it_never_shows_the_private_key_in_repr(rfc_pair: KeyPair) -> None:
    assert RFC8032_SECRET not in repr(rfc_pair)
    assert RFC8032_ADDRESS in repr(rfc_pair)


def test_it_seals_and_unseals_a_private_key(rfc_pair: KeyPair) -> None:
    ring = KeyRing(KEK_A)
    sealed = ring.seal(rfc_pair.private_key, address=rfc_pair.address)
    assert bytes.fromhex(RFC8032_SECRET) not in sealed
    assert len(sealed) == 2 + 8 + 12 + 48
    assert ring.unseal(sealed, address=rfc_pair.address).private_key == rfc_pair.private_key


def test_it_refuses_a_sealed_key_moved_to_another_address(rfc_pair: KeyPair) -> None:
    ring = KeyRing(KEK_A)
    sealed = ring.seal(rfc_pair.private_key, address=rfc_pair.address)
    other = KeyPair.generate().address
    with pytest.raises(identity.SealBroken):
        ring.unseal(sealed, address=other)


def test_it_refuses_a_tampered_sealed_key(rfc_pair: KeyPair) -> None:
    ring = KeyRing(KEK_A)
    sealed = bytearray(ring.seal(rfc_pair.private_key, address=rfc_pair.address))
    sealed[-1] ^= 0x01
    with pytest.raises(identity.SealBroken):
        ring.unseal(bytes(sealed), address=rfc_pair.address)


def test_it_opens_keys_sealed_under_a_retired_kek_and_seals_under_the_current(
    rfc_pair: KeyPair,
) -> None:
    old = KeyRing(KEK_A).seal(rfc_pair.private_key, address=rfc_pair.address)
    rotated = KeyRing(KEK_B, retired=[KEK_A])
    assert not rotated.is_current(old)
    assert rotated.unseal(old, address=rfc_pair.address).private_key == rfc_pair.private_key
    assert rotated.is_current(rotated.seal(rfc_pair.private_key, address=rfc_pair.address))


def test_it_names_an_unknown_kek(rfc_pair: KeyPair) -> None:
    sealed = KeyRing(KEK_A).seal(rfc_pair.private_key, address=rfc_pair.address)
    with pytest.raises(identity.UnknownKeyEncryptionKey):
        KeyRing(KEK_B).unseal(sealed, address=rfc_pair.address)


@pytest.mark.parametrize("kek", ["short", "QUFB", "not base64 at all!!"])
def test_it_rejects_a_kek_that_is_not_32_bytes(kek: str) -> None:
    with pytest.raises(identity.InvalidKeyEncryptionKey):
        KeyRing(kek)


def test_it_has_no_django_import() -> None:
    tree = ast.parse(open(identity.__file__, encoding="utf-8").read())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "cryptography" in imported
    assert "django" not in imported
