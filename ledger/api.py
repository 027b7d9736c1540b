"""The ledger's REST API, under /api/v1/ledger/: thin views, one per operation.

Each view validates its input, calls one service or selector, and serializes the answer; every
error is mapped to ``{"code", "message"}`` by ``gridplatform.api.exception_handler``.

The reads of the chain are public (``AllowAny``; anonymous callers are rate-limited per
address, ``gridplatform.throttling.AnonRate``): blocks, transactions with their signed bodies and
inclusion proofs, the validators, the genesis document and state proofs, with personal data
withheld by the selectors (docs/ledger.md, "The public ledger"). Submitting and accounts need an
account.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.generics import ListAPIView
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gridplatform.api import UNAUTHENTICATED, error_response
from gridplatform.errors import InvalidInput
from ledger import config, selectors, services
from ledger.crypto import LedgerCryptoError, loads
from ledger.public import COMMITTED_MAX_AGE_S, GENESIS_MAX_AGE_S, NEWEST_MAX_AGE_S, cache_for

# A transaction is a few hundred bytes; anything this large is not one.
MAX_TRANSACTION_BYTES = 64 * 1024

TAG = "ledger"
HEX64 = "a" * 64


NOT_FOUND = error_response("`not_found`.")
THROTTLED = error_response(
    "`throttled`: too many requests (anonymous callers: `API_THROTTLE_ANON` per address); "
    "`Retry-After` says when to try again."
)
PUBLIC = "\n\nPublic: no credentials needed (anonymous callers are rate-limited per address)."
ADMISSION_TABLE = "\n".join(
    f"- `{code}`: {meaning}" for code, meaning in services.ADMISSION_CODES.items()
)


class LedgerJSONParser(BaseParser):
    """JSON for signed objects: ``ledger.crypto.loads`` refuses floats, NaN and duplicate keys,
    which a signature would otherwise cover ambiguously (docs/ledger.md, canonical JSON)."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        data = stream.read(MAX_TRANSACTION_BYTES + 1)
        if len(data) > MAX_TRANSACTION_BYTES:
            raise ParseError(f"The body is larger than {MAX_TRANSACTION_BYTES} bytes.")
        try:
            return loads(data)
        except LedgerCryptoError as error:
            raise ParseError(f"The body is not JSON the ledger accepts: {error}") from None


class ProofSerializer(serializers.Serializer):
    root = serializers.CharField(help_text="The block's tx_root (64 hex).")
    index = serializers.IntegerField(help_text="The transaction's position in its block.")
    tree_size = serializers.IntegerField(help_text="The number of transactions in the block.")
    path = serializers.ListField(
        child=serializers.CharField(),
        help_text="RFC 6962 audit path, leaf side first, 64 hex each.",
    )


class TransactionSubmitApi(APIView):
    """Submit a signed transaction to the ledger."""

    parser_classes = [LedgerJSONParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TransactionSubmission"

        chain = serializers.CharField(help_text="The network id, from genesis.")
        type = serializers.CharField(help_text="The transaction type, e.g. credit.transfer.")
        sender = serializers.CharField(help_text="The sender's address (50 hex).")
        nonce = serializers.IntegerField(min_value=0, help_text="The sender's next nonce.")
        payload = serializers.DictField(help_text="Type-specific; integers, never floats.")
        signature = serializers.CharField(help_text="Ed25519 over the signing bytes (128 hex).")

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TransactionAccepted"

        id = serializers.CharField(help_text="The transaction id (64 hex).")
        status = serializers.ChoiceField(choices=[selectors.PENDING])

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_transaction_submit",
        summary="Submit a signed transaction",
        description=(
            "The transaction is checked as every validator checks it, then sent to all of "
            "them; poll `GET /api/v1/ledger/transactions/{id}` for its outcome. The body is "
            "parsed strictly: floats and duplicate keys are `malformed`.\n\n"
            "Refusal codes (400):\n" + ADMISSION_TABLE
        ),
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: error_response("A refusal; `code` is one of the admission codes above."),
            401: UNAUTHENTICATED,
            503: error_response("`ledger_unavailable`: this site has no ledger network yet."),
        },
        examples=[
            OpenApiExample(
                "A refusal",
                value={"code": "bad_nonce", "message": services.ADMISSION_CODES["bad_nonce"]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        # Deliberately no serializer validation of the body: DRF's fields would coerce "5" or
        # 5.0 to 5, and a signature covers exact bytes. The service parses it strictly.
        tx = services.transaction_admit(data=request.data, submitted_by=request.user)
        body = self.OutputSerializer({"id": tx.id, "status": selectors.PENDING}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


PAYLOAD_HELP = (
    "As signed, except for personal data (meter readings) the caller may not see: then the "
    "payload's `body` is replaced by `body_sha256`, the SHA-256 hex of its UTF-8 text, and "
    "`redacted` is true."
)
REDACTED_HELP = (
    "True when the payload's `body` was replaced by `body_sha256`: the id and the signature "
    "cannot be recomputed from what is shown; check the id's inclusion in the block."
)


class TransactionDetailApi(APIView):
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TransactionStatus"

        id = serializers.CharField()
        status = serializers.ChoiceField(
            choices=[selectors.PENDING, selectors.COMMITTED, selectors.FAILED],
            help_text="pending: admitted, not in a block yet; committed: in a block with "
            "result ok; failed: in a block with an error result.",
        )
        type = serializers.CharField()
        sender = serializers.CharField()
        nonce = serializers.IntegerField()
        height = serializers.IntegerField(allow_null=True)
        position = serializers.IntegerField(allow_null=True)
        result = serializers.CharField(allow_null=True, help_text='"ok" or an error code.')
        proof = ProofSerializer(allow_null=True, help_text="Merkle inclusion proof.")
        chain = serializers.CharField()
        payload = serializers.JSONField(help_text=PAYLOAD_HELP)
        signature = serializers.CharField(help_text="Ed25519 over the signing bytes (128 hex).")
        redacted = serializers.BooleanField(help_text=REDACTED_HELP)

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_transaction_get",
        summary="A transaction: its signed body, status, result and Merkle proof",
        description="Committed and failed transactions are cached (`Cache-Control`)." + PUBLIC,
        responses={200: OutputSerializer, 404: NOT_FOUND, 429: THROTTLED},
    )
    def get(self, request: Request, id: str) -> Response:
        found = selectors.transaction_status(tx_id=id, user=request.user)
        response = Response(self.OutputSerializer(found).data)
        final = found.status != selectors.PENDING
        return cache_for(response, request, COMMITTED_MAX_AGE_S if final else None)


class BlockSummarySerializer(serializers.Serializer):
    height = serializers.IntegerField()
    hash = serializers.CharField()
    previous_hash = serializers.CharField()
    timestamp = serializers.DateTimeField()
    proposer = serializers.IntegerField()
    tx_count = serializers.IntegerField()
    tx_root = serializers.CharField()
    state_root = serializers.CharField()


class BlockListApi(ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = BlockSummarySerializer

    def get_queryset(self) -> Any:
        return selectors.block_list()

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_block_list",
        summary="Committed blocks, newest first",
        description=f"Cached for {NEWEST_MAX_AGE_S} seconds for anonymous callers." + PUBLIC,
        responses={200: BlockSummarySerializer(many=True), 429: THROTTLED},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        return cache_for(response, request, NEWEST_MAX_AGE_S, accounts=False)


class BlockTransactionSerializer(serializers.Serializer):
    id = serializers.CharField()
    chain = serializers.CharField()
    type = serializers.CharField()
    sender = serializers.CharField()
    nonce = serializers.IntegerField()
    payload = serializers.JSONField(help_text=PAYLOAD_HELP)
    signature = serializers.CharField(help_text="Ed25519 over the signing bytes (128 hex).")
    redacted = serializers.BooleanField(help_text=REDACTED_HELP)
    result = serializers.CharField(help_text='"ok" or an error code.')


class CommitVoteSerializer(serializers.Serializer):
    validator = serializers.IntegerField()
    signature = serializers.CharField()


class EventSerializer(serializers.Serializer):
    tx = serializers.IntegerField(help_text="The index of its transaction in the block.")
    type = serializers.CharField(help_text="What happened, e.g. `market.contract_made`.")
    data = serializers.JSONField(help_text="The event's fields (docs/ledger.md, Events).")


class EventProofApi(APIView):
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        height = serializers.IntegerField()
        index = serializers.IntegerField(help_text="The event's position in its block.")
        event = EventSerializer()
        proof = ProofSerializer(help_text="Inclusion proof against the header's events_root.")
        header = serializers.JSONField(help_text="The block header (hashes to block_hash).")
        block_hash = serializers.CharField()
        certificate = CommitVoteSerializer(many=True)

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_event_get",
        summary="One event of a block, with its inclusion proof, header and certificate",
        description=(
            "Check it from the docs alone: the leaf is the canonical JSON of `event`, the path "
            "an RFC 6962 audit path to `events_root`, the header hashes to `block_hash` and the "
            "certificate signs it (docs/ledger.md, Events)." + PUBLIC
        ),
        responses={200: OutputSerializer, 404: NOT_FOUND, 429: THROTTLED},
    )
    def get(self, request: Request, height: int, index: int) -> Response:
        found = selectors.event_proof(height=height, index=index)
        response = Response(self.OutputSerializer(found).data)
        return cache_for(response, request, COMMITTED_MAX_AGE_S)


class BlockDetailApi(APIView):
    permission_classes = [AllowAny]

    class OutputSerializer(BlockSummarySerializer):
        class Meta:
            ref_name = "BlockDetail"

        chain = serializers.CharField()
        timestamp_ms = serializers.IntegerField()
        results_root = serializers.CharField()
        events_root = serializers.CharField(
            help_text="RFC 6962 Merkle root of the events' canonical JSON."
        )
        signatures_root = serializers.CharField()
        proposer_signature = serializers.CharField(
            allow_null=True, help_text="Null only for block 0 projected from genesis.json."
        )
        transactions = BlockTransactionSerializer(many=True)
        events = EventSerializer(many=True)
        certificate = CommitVoteSerializer(many=True)

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_block_get",
        summary="A block: header, signed transactions, their results and events, certificate",
        description="A committed block never changes: cached (`Cache-Control`)." + PUBLIC,
        responses={200: OutputSerializer, 404: NOT_FOUND, 429: THROTTLED},
    )
    def get(self, request: Request, height: int) -> Response:
        record = selectors.access_block(height=height)
        header = record.body["header"]
        data = {
            "height": record.height,
            "hash": record.hash,
            "previous_hash": record.previous_hash,
            "timestamp": record.timestamp,
            "proposer": record.proposer,
            "tx_count": record.tx_count,
            "tx_root": record.tx_root,
            "state_root": record.state_root,
            "chain": header["chain"],
            "timestamp_ms": header["timestamp_ms"],
            "results_root": header["results_root"],
            "events_root": header["events_root"],
            "signatures_root": header["signatures_root"],
            "proposer_signature": record.body["proposer_signature"],
            "transactions": selectors.block_transactions(record, user=request.user),
            "events": selectors.block_events(record),
            "certificate": record.body["certificate"],
        }
        response = Response(self.OutputSerializer(data).data)
        return cache_for(response, request, COMMITTED_MAX_AGE_S)


class AccountDetailApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "LedgerAccount"

        address = serializers.CharField()
        public_key = serializers.CharField()
        role = serializers.CharField()
        nonce = serializers.IntegerField(help_text="The next nonce the account must use.")
        balance = serializers.IntegerField(
            allow_null=True,
            help_text="Credits in minor units; null unless you are the account's owner, the "
            "grid operator or a regulator.",
        )

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_account_get",
        summary="A ledger account: public key, nonce and (to whom it may see it) balance",
        responses={200: OutputSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, address: str) -> Response:
        account = selectors.access_ledger_account(user=request.user, address=address)
        return Response(self.OutputSerializer(account).data)


class ValidatorListApi(APIView):
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ValidatorStatus"

        index = serializers.IntegerField()
        public_key = serializers.CharField(
            allow_null=True,
            help_text="Its Ed25519 key (64 hex), from the genesis document: what its commit "
            "votes verify with.",
        )
        height = serializers.IntegerField(allow_null=True)
        view = serializers.IntegerField(allow_null=True)
        last_commit_at = serializers.DateTimeField(allow_null=True)
        last_seen_at = serializers.DateTimeField(allow_null=True)
        up = serializers.BooleanField(help_text="Heard from within the last 10 seconds.")

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_validator_list",
        summary="The validators: public key, height, view, last commit, up or down",
        description=PUBLIC.strip(),
        responses={200: OutputSerializer(many=True), 429: THROTTLED},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(selectors.validator_list(), many=True).data)


class GenesisApi(APIView):
    """The network's genesis document, for an outsider to pin by its hash."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "GenesisDocument"

        document = serializers.JSONField(
            help_text="The genesis document: chain, timestamp_ms, validators (public keys by "
            "index), issuer_public_key, regulator_public_keys, options, protocol."
        )
        document_hash = serializers.CharField(
            help_text="SHA-256 hex of the document's canonical JSON (RFC 8785): compare it with "
            "the one the network's operators publish."
        )

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_genesis_get",
        summary="The genesis document and its hash",
        description=PUBLIC.strip(),
        responses={
            200: OutputSerializer,
            429: THROTTLED,
            503: error_response("`ledger_unavailable`: this site has no ledger network yet."),
        },
    )
    def get(self, request: Request) -> Response:
        genesis = config.load_genesis()
        if genesis is None:
            raise services.LedgerUnavailable("This site has no ledger network yet.")
        data = {"document": genesis.to_json(), "document_hash": genesis.document_hash()}
        return cache_for(Response(self.OutputSerializer(data).data), request, GENESIS_MAX_AGE_S)


# --- state proofs: public, anonymous --------------------------------------------------------------

UNAVAILABLE = error_response("`ledger_unavailable`: no block is projected yet.")


class TrieNodeField(serializers.JSONField):
    """A node of a trie proof (docs/ledger.md, "The state trie"): a branch ``{"prefix",
    "children"}`` or a leaf ``{"key_hash", "value_hash"}``."""


class StateEntrySerializer(serializers.Serializer):
    key = serializers.CharField()
    present = serializers.BooleanField()
    value = serializers.JSONField(
        allow_null=True, help_text="The value; null when absent, or when value_redacted."
    )
    value_redacted = serializers.BooleanField(
        help_text="True when the value is personal data the caller may not see (a meter "
        "reading): value is null, the proof (whose leaf holds the value's hash) is given."
    )
    proof = serializers.ListField(child=TrieNodeField(), help_text="Root first.")


class ProvenSerializer(serializers.Serializer):
    height = serializers.IntegerField(help_text="The block whose state root the proofs are for.")
    block_hash = serializers.CharField()
    header = serializers.JSONField(help_text="The block's header: its hash is block_hash.")
    certificate = CommitVoteSerializer(many=True)


class StateProofApi(APIView):
    """One state key's value and its proof, with the header and certificate it is proven by."""

    permission_classes = [AllowAny]

    class OutputSerializer(ProvenSerializer, StateEntrySerializer):
        class Meta:
            ref_name = "StateProof"

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_state_get",
        summary="A state key's value, its trie proof, the block header and its certificate",
        responses={200: OutputSerializer, 503: UNAVAILABLE},
    )
    def get(self, request: Request, key: str) -> Response:
        proven = selectors.state_proofs(keys=[key], user=request.user)
        (entry,) = proven.pop("entries")
        return Response(self.OutputSerializer(proven | entry).data)


class StateProofListApi(APIView):
    """Several keys proven against one block (``?key=...&key=...``)."""

    permission_classes = [AllowAny]

    class OutputSerializer(ProvenSerializer):
        class Meta:
            ref_name = "StateProofs"

        entries = StateEntrySerializer(many=True)

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_state_list",
        summary="Several state keys proven against one block",
        parameters=[
            OpenApiParameter(
                "key", str, many=True, description=f"A state key (1-{selectors.MAX_PROOF_KEYS})."
            )
        ],
        responses={200: OutputSerializer, 400: error_response("`bad_keys`."), 503: UNAVAILABLE},
    )
    def get(self, request: Request) -> Response:
        keys = request.query_params.getlist("key")
        if not 1 <= len(keys) <= selectors.MAX_PROOF_KEYS or not all(
            0 < len(key) <= 255 for key in keys
        ):
            raise InvalidInput(
                f"Name 1 to {selectors.MAX_PROOF_KEYS} state keys (?key=...), each 1-255 "
                "characters.",
                code="bad_keys",
            )
        proven = selectors.state_proofs(keys=keys, user=request.user)
        return Response(self.OutputSerializer(proven).data)


class KeyTakeOverApi(APIView):
    """POST: take over your own signing key (self-custody)."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "KeyTakeOver"

        public_key = serializers.CharField(
            help_text="Your own Ed25519 public key, 64 lowercase hex; keep its private key."
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "KeyTakeOverSubmitted"

        transaction = serializers.CharField(help_text="The key.rotate transaction's id.")

    @extend_schema(
        tags=[TAG],
        operation_id="ledger_key_take_over",
        summary="Take over your own key: the platform stops signing for you",
        description="Signs `key.rotate` to your key with the key the platform holds for you, "
        "and deletes that key once the rotation commits. From then on only your key signs for "
        "your account: submit your transactions with `POST /api/v1/ledger/transactions`, "
        "`sender` your address. Refusals (400): `bad_public_key`, `same_key`, `key_taken`, "
        "`unknown_account` (not on the ledger yet), `not_custodial` (you hold your key "
        "already), `no_identity`.",
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: error_response("A refusal; `code` is one of the codes above."),
            401: UNAUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        public_key = request.data.get("public_key") if isinstance(request.data, dict) else None
        if not isinstance(public_key, str):
            raise InvalidInput('Send {"public_key": "<64 hex>"}.', code="bad_public_key")
        tx = services.key_take_over(user=request.user, public_key=public_key)
        return Response({"transaction": tx.id}, status=status.HTTP_202_ACCEPTED)
