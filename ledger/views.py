"""The block explorer: blocks, their transactions and certificates, and inclusion proofs that the
reader's browser checks itself. Open to every logged-in account: blocks are public to the
participants (balances are not shown here)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gridplatform.accounts.models import Role
from gridplatform.decorators import role_required
from ledger import selectors

BLOCKS_PER_PAGE = 50


def _blocks_page(request: HttpRequest) -> object:
    return Paginator(selectors.block_list(), BLOCKS_PER_PAGE).get_page(request.GET.get("page"))


@login_required
def block_list(request: HttpRequest) -> HttpResponse:
    return render(request, "ledger/block_list.html", {"page": _blocks_page(request)})


@login_required
def block_rows(request: HttpRequest) -> HttpResponse:
    """The rows the live page reloads when a block is projected."""
    return render(request, "ledger/_block_rows.html", {"page": _blocks_page(request)})


@login_required
def block_detail(request: HttpRequest, height: int) -> HttpResponse:
    record = selectors.access_block(height=height)
    header = record.body["header"]
    context = {
        "record": record,
        "header": header,
        "transactions": selectors.block_transactions(record),
        "certificate": record.body["certificate"],
        "proposer_signature": record.body["proposer_signature"],
    }
    return render(request, "ledger/block_detail.html", context)


@login_required
def transaction_detail(request: HttpRequest, tx_id: str) -> HttpResponse:
    status = selectors.transaction_status(tx_id=tx_id)
    proof = status.proof
    return render(
        request,
        "ledger/transaction_detail.html",
        {"tx": status, "proof": proof, "path": ",".join(proof["path"]) if proof else ""},
    )


@role_required(Role.GRID_OPERATOR, Role.REGULATOR, Role.ADMIN)
def validator_rows(request: HttpRequest) -> HttpResponse:
    """The validator health rows of the consoles (reloaded every few seconds and on blocks)."""
    return render(
        request, "ledger/_validator_rows.html", {"validators": selectors.validator_list()}
    )
