"""The ledger's error catalogue: every refusal code the ledger gives, with its message.

No Django import; nothing but the standard library. One catalogue per owner (docs/ledger.md,
"Error codes"): the ledger's here; each application's validators' codes in its chain package
(``<app>.chain.errors``), and its site's own codes in its site package (``<app>.errors``). A
code is defined once, by the lowest owner that gives it (ledger < meters < market <
supervision), and the catalogues above use it from there: :func:`compose` refuses a code that
two catalogues define.

The ledger gives three kinds of code: admission's (:data:`ADMISSION`, in the order they are
checked, by the site and by every validator), execution's (``ledger.application``: the ledger's
own transaction types), and the site's signing service's (:data:`SIGNING`).
"""

from __future__ import annotations

from collections.abc import Mapping

# Admission, in the order it checks (docs/ledger.md, "Admission and error codes").
ADMISSION = (
    "malformed",
    "duplicate",
    "pool_full",
    "nonce_pending",
    "unknown_sender",
    "wrong_chain",
    "bad_signature",
    "bad_nonce",
    "unknown_type",
    "not_allowed",
)
# The refusals of the web users' signing services (signing for them, handing them their own key
# with ledger.services.key_take_over), beyond admission's.
SIGNING = ("no_identity", "not_custodial", "key_taken")

MESSAGES: dict[str, str] = {
    # admission (and the first steps of execution)
    "malformed": "The request is not well-formed (a JSON object with the expected fields and "
    "types).",
    "duplicate": "This transaction is already committed.",
    "pool_full": "Too many transactions are waiting; try again shortly.",
    "nonce_pending": "A transaction of this sender with this nonce is already pending.",
    "unknown_sender": "No account is registered at the sender's address.",
    "wrong_chain": "The transaction is signed for another network.",
    "bad_signature": "The signature is not the sender's current key's.",
    "bad_nonce": "The nonce is not the sender's next one.",
    "unknown_type": "There is no such transaction type.",
    "not_allowed": "The sender's role may not send this type of transaction.",
    # signing
    "no_identity": "This account has no ledger identity.",
    "not_custodial": "This account signs for itself: the platform holds no key that can sign "
    "for it. Send it through the API, signed with your own key, or with your own client.",
    "key_taken": "Another account has that public key.",
    # execution: the ledger's own transaction types and the payload helpers
    "bad_payload": "The request does not have exactly the fields it needs.",
    "bad_amount": "The amount must be a positive number of cents.",
    "bad_address": "That is not an account address (50 hexadecimal characters, starting 01).",
    "unknown_account": "No account has that address.",
    "bad_role": "Only households, storage providers and retailers are registered by transaction.",
    "bad_public_key": "The public key is an Ed25519 public key, 64 lowercase hex.",
    "address_key_mismatch": "The address does not derive from the public key.",
    "already_registered": "That account is on the ledger already.",
    "same_key": "That is the account's current key already.",
    "not_issuer": "Only the issuer of credits creates them.",
    "self_transfer": "Credits cannot be sent to their own account.",
    "insufficient_balance": "Not enough credits.",
}


def compose(*catalogues: Mapping[str, str]) -> dict[str, str]:
    """One lookup of the catalogues of several owners, lowest first.

    Raises ``ValueError`` if two of them define one code, even with the same message: a code has
    one owner and one message, and a catalogue above uses the lower one's.
    """
    composed: dict[str, str] = {}
    for catalogue in catalogues:
        twice = sorted(composed.keys() & catalogue.keys())
        if twice:
            raise ValueError(f"error codes defined in two catalogues: {', '.join(twice)}")
        composed.update(catalogue)
    return composed
