"""The block explorer: blocks, their signed transactions and certificates, inclusion proofs that
the reader's browser checks itself, the validators and state proofs.

Public, like the API's reads (docs/ledger.md, "The public ledger"): anonymous visitors see every
page but the consoles' validator rows, rate-limited with the anonymous API budget and cached
(``ledger.public``). Meter readings are withheld from whoever may not see them (the selectors);
balances are not shown here.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from gridplatform.accounts.models import Identity, Role
from gridplatform.decorators import role_required
from ledger import config, selectors, services
from ledger.blocks import quorum
from ledger.crypto import canonical
from ledger.identity import IdentityError, validate_address
from ledger.models import SubmittedTransaction
from ledger.public import (
    COMMITTED_MAX_AGE_S,
    NEWEST_MAX_AGE_S,
    cache_for,
    throttled_when_anonymous,
)
from ledger.replica import ReplicaUnavailable

BLOCKS_PER_PAGE = 50
MAX_KEY_LENGTH = 255


def _blocks_page(request: HttpRequest) -> object:
    return Paginator(selectors.block_list(), BLOCKS_PER_PAGE).get_page(request.GET.get("page"))


def _json(value: Any) -> str:
    """Compact JSON for a page (in a ``<code>``, which wraps long values)."""
    return json.dumps(value, separators=(", ", ": "), sort_keys=True, ensure_ascii=False)


def _fields(value: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [(name, _json(item)) for name, item in sorted((value or {}).items())]


@throttled_when_anonymous
def block_list(request: HttpRequest) -> HttpResponse:
    response = render(request, "ledger/block_list.html", {"page": _blocks_page(request)})
    return cache_for(response, request, NEWEST_MAX_AGE_S, accounts=False)


@throttled_when_anonymous
def block_rows(request: HttpRequest) -> HttpResponse:
    """The rows the live page reloads when a block is projected."""
    response = render(request, "ledger/_block_rows.html", {"page": _blocks_page(request)})
    return cache_for(response, request, NEWEST_MAX_AGE_S, accounts=False)


@throttled_when_anonymous
def block_detail(request: HttpRequest, height: int) -> HttpResponse:
    record = selectors.access_block(height=height)
    header = record.body["header"]
    context = {
        "record": record,
        "header": header,
        "transactions": selectors.block_transactions(record, user=request.user),
        "events": [
            event | {"text": canonical(event["data"]).decode()}
            for event in selectors.block_events(record)
        ],
        "certificate": record.body["certificate"],
        "proposer_signature": record.body["proposer_signature"],
    }
    response = render(request, "ledger/block_detail.html", context)
    return cache_for(response, request, COMMITTED_MAX_AGE_S)


@throttled_when_anonymous
@require_http_methods(["GET"])
def search(request: HttpRequest) -> HttpResponse:
    """The explorer's search box: straight to the block, transaction or address it names, or a
    short list of transactions whose ids start with what was typed, or why nothing matched."""
    text = request.GET.get("q", "")[:100]
    found = selectors.ledger_search(text=text)
    if found.url:
        return redirect(found.url)
    context = {"q": text, "found": found}
    return render(request, "ledger/search.html", context, status=200 if found.transactions else 404)


@throttled_when_anonymous
@require_http_methods(["GET"])
def address_detail(request: HttpRequest, address: str) -> HttpResponse:
    """An address's committed transactions, newest first: those it sent and those that name it
    (types and ids only; each transaction's page shows what the viewer may see of it)."""
    try:
        validate_address(address)
    except IdentityError as error:
        return render(
            request, "ledger/search.html", {"q": address, "error": str(error)}, status=404
        )
    page = Paginator(selectors.address_transactions(address=address), BLOCKS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "ledger/address.html", {"address": address, "page": page})


@throttled_when_anonymous
def transaction_detail(request: HttpRequest, tx_id: str) -> HttpResponse:
    status = selectors.transaction_status(tx_id=tx_id, user=request.user)
    proof = status.proof
    context = {
        "tx": status,
        "proof": proof,
        "path": ",".join(proof["path"]) if proof else "",
        "payload": _fields(status.payload),
    }
    response = render(request, "ledger/transaction_detail.html", context)
    final = status.status != selectors.PENDING
    return cache_for(response, request, COMMITTED_MAX_AGE_S if final else None)


@throttled_when_anonymous
def validator_list(request: HttpRequest) -> HttpResponse:
    """The validator set with its public keys, and the genesis document to pin."""
    genesis = config.load_genesis()
    context = {
        "validators": selectors.validator_list(),
        "genesis": genesis,
        "document_hash": genesis.document_hash() if genesis is not None else None,
        "quorum": quorum(len(genesis.validators)) if genesis is not None else None,
        "document": _fields(genesis.to_json() if genesis is not None else None),
    }
    response = render(request, "ledger/validators.html", context)
    # Short: the page says which validators are up.
    return cache_for(response, request, NEWEST_MAX_AGE_S, accounts=False)


@throttled_when_anonymous
def state_proof(request: HttpRequest) -> HttpResponse:
    """A state key's value and its proof against the newest block (``?key=``), as the API's
    ``GET /api/v1/ledger/state/{key}`` gives it."""
    key = request.GET.get("key", "").strip()
    context: dict[str, Any] = {"key": key}
    if key and len(key) > MAX_KEY_LENGTH:
        context["error"] = f"A state key is 1-{MAX_KEY_LENGTH} characters."
    elif key:
        try:
            proven = selectors.state_proofs(keys=[key], user=request.user)
        except ReplicaUnavailable:
            context["error"] = "No block is projected yet: there is no state to prove."
        else:
            (entry,) = proven["entries"]
            context |= {
                "proven": proven,
                "entry": entry,
                "value": _json(entry["value"]),
                "proof": [_json(node) for node in entry["proof"]],
            }
    return render(request, "ledger/state.html", context)


@role_required(Role.GRID_OPERATOR, Role.REGULATOR, Role.ADMIN)
def validator_rows(request: HttpRequest) -> HttpResponse:
    """The validator health rows of the consoles (reloaded every few seconds and on blocks)."""
    return render(
        request, "ledger/_validator_rows.html", {"validators": selectors.validator_list()}
    )


@login_required
@require_http_methods(["GET", "POST"])
def signing_key(request: HttpRequest) -> HttpResponse:
    """Who holds this account's signing key, and taking it over (self-custody)."""
    identity_ = Identity.objects.filter(user=request.user).first()
    error = ""
    if request.method == "POST":
        try:
            tx = services.key_take_over(
                user=request.user, public_key=request.POST.get("public_key", "").strip().lower()
            )
        except services.TransactionRejected as refused:
            error = refused.message
        else:
            messages.success(
                request,
                f"Your key takes over with the next block (transaction {tx.id[:12]}…); the "
                "platform then deletes the key it held for you and can no longer sign for you.",
            )
            return redirect("ledger-signing-key")
    pending = (
        identity_ is not None
        and SubmittedTransaction.objects.filter(
            sender=identity_.address, body__type="key.rotate"
        ).exists()
    )
    context = {"identity": identity_, "error": error, "pending": pending}
    return render(request, "ledger/signing_key.html", context, status=400 if error else 200)
