"""A meter's signature over one request body. No Django import: the validators re-check it.

A meter signs every batch it sends with its own Ed25519 key (the public key registered for the
meter, 64 lowercase hex). The signature travels in one header::

    X-Meter-Signature: t=<unix seconds>,sig=<128 lowercase hex>

and covers exactly these bytes (``t`` as written in the header, in ASCII)::

    <t> "." <the request body, byte for byte>

for example ``b"1767270900." + b'{"readings":[...]}'``. Nothing is re-encoded before
verifying: the site keeps the body as received (``meters.models.ReadingBatch``) so that anyone
holding the meter's public key, the validators included, can check the same bytes again with
:func:`check`. The site also asks that ``t`` be within :data:`MAX_SKEW_S` of its clock
(:func:`verify_header`), which bounds how long a captured request can be replayed; a replayed
batch holds readings already stored, which count as duplicates and change nothing.
"""

from __future__ import annotations

import re

from gridplatform.errors import DomainError
from ledger import identity

HEADER = "X-Meter-Signature"
# How far the signature's time may be from the site's clock, either way.
MAX_SKEW_S = 300
_HEADER_VALUE = re.compile(r"t=(0|[1-9][0-9]{0,11}),sig=([0-9a-f]{128})")


class SignatureError(DomainError):
    status_code = 401


class BadSignature(SignatureError):
    """No signature, a malformed header, or a signature that does not verify."""

    code = "bad_signature"


class StaleSignature(SignatureError):
    """A signature whose time is more than ``MAX_SKEW_S`` from the site's clock."""

    code = "stale_signature"


def signed_message(t: int, body: bytes) -> bytes:
    """The bytes a meter signs: ``b"<t>." + body``."""
    return str(t).encode("ascii") + b"." + body


def header_value(key: identity.KeyPair, body: bytes, *, t: int) -> str:
    """The ``X-Meter-Signature`` value a meter holding ``key`` sends with ``body`` at ``t``."""
    return f"t={t},sig={key.sign(signed_message(t, body))}"


def parse_header(value: str | None) -> tuple[int, str]:
    """``(t, signature hex)`` from the header's value, or ``BadSignature``.

    Spaces around the value and after the comma are tolerated; the parts are not optional and
    come in this order.
    """
    if value is None or not value.strip():
        raise BadSignature(f"The request has no {HEADER} header.")
    found = _HEADER_VALUE.fullmatch(value.strip().replace(", ", ","))
    if found is None:
        raise BadSignature(f"The {HEADER} header is not 't=<unix seconds>,sig=<128 hex>'.")
    return int(found.group(1)), found.group(2)


def check(public_key: str, *, t: int, body: bytes, signature: str) -> None:
    """Raise ``BadSignature`` unless ``signature`` signs ``body`` at ``t`` under
    ``public_key``. No clock: what the validators run on a relayed batch."""
    try:
        identity.verify(public_key, signed_message(t, body), signature)
    except identity.IdentityError:
        raise BadSignature("The signature does not verify under the meter's key.") from None


def verify_header(
    public_key: str, *, header: str | None, body: bytes, now_s: int
) -> tuple[int, str]:
    """Check a request's signature header against its body at time ``now_s``; return
    ``(t, signature)``. Raises ``BadSignature`` (missing, malformed, wrong) or
    ``StaleSignature`` (``t`` more than ``MAX_SKEW_S`` seconds before or after ``now_s``)."""
    t, signature = parse_header(header)
    if abs(now_s - t) > MAX_SKEW_S:
        raise StaleSignature(
            f"The signature's time t={t} is more than {MAX_SKEW_S} s from the site's clock "
            f"({now_s}); sign each request when it is sent.",
            detail={"t": t, "now": now_s, "max_skew_s": MAX_SKEW_S},
        )
    check(public_key, t=t, body=body, signature=signature)
    return t, signature
