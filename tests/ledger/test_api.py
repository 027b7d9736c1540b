"""The ledger's REST API: submission with every admission code, reads, proofs, the schema, and
one transaction end to end through four real validators and a real site worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection
from django.test import Client
from drf_spectacular.validation import validate_schema
from rest_framework.throttling import SimpleRateThrottle

from gridplatform.accounts import services as account_services
from gridplatform.accounts.models import User
from gridplatform.throttling import UserRate
from ledger import services
from ledger.crypto import (
    InvalidInclusionProof,
    Transaction,
    canonical,
    sign_transaction,
    verify_inclusion_hex,
)
from ledger.models import BlockRecord, SubmittedTransaction
from tests.ledger.chains import CHAIN, HOUSEHOLDS, OPERATOR, REGULATOR, build_chain
from tests.ledger.site import Site, use_network
from tests.processes import child_env

API = "/api/v1/ledger"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(settings: Any, tmp_path: Path, db: None) -> Site:
    """Blocks 0..4 of a real chain, projected: four households registered and trading."""
    chain = build_chain(4, 6)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def client_for(user: User) -> Client:
    _, token = account_services.api_token_create(user=user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


@pytest.fixture
def api(prosumer: User) -> Client:
    return client_for(prosumer)


def post(client: Client, body: Any) -> Any:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"{API}/transactions", raw, content_type="application/json")


def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


# --- submission: every admission code ------------------------------------------------------------
def test_it_accepts_a_signed_transaction_and_sends_it_once_recorded(
    site: Site, api: Client, prosumer: User, django_capture_on_commit_callbacks: Any
) -> None:
    tx = site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[0].address, amount=250)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, tx.to_json())
    assert response.status_code == 202
    assert response.json() == {"id": tx.id, "status": "pending"}
    pending = SubmittedTransaction.objects.get()
    assert (pending.tx_id, pending.sender, pending.nonce, pending.submitted_by) == (
        tx.id,
        OPERATOR.address,
        tx.nonce,
        prosumer,
    )
    assert pending.body == tx.to_json()
    assert len(callbacks) == 1  # the send to every validator, once the record commits
    status = api.get(f"{API}/transactions/{tx.id}").json()
    assert status == {
        "id": tx.id,
        "status": "pending",
        "type": "credit.issue",
        "sender": OPERATOR.address,
        "nonce": tx.nonce,
        "height": None,
        "position": None,
        "result": None,
        "proof": None,
        "chain": CHAIN,
        "payload": {"to": HOUSEHOLDS[0].address, "amount": 250},
        "signature": tx.signature,
        "redacted": False,
    }


def _submit_first(site: Site, api: Client, tx: Transaction) -> None:
    assert post(api, tx.to_json()).status_code == 202


def _malformed(site: Site, api: Client) -> Any:
    body = site.sign(OPERATOR, "credit.issue", to=OPERATOR.address, amount=1).to_json()
    del body["signature"]
    return body


def _wrong_chain(site: Site, api: Client) -> Any:
    return site.sign(OPERATOR, "credit.issue", chain="another-net", to=OPERATOR.address, amount=1)


def _unknown_sender(site: Site, api: Client) -> Any:
    return site.sign(HOUSEHOLDS[7], "credit.transfer", to=HOUSEHOLDS[0].address, amount=1)


def _bad_signature(site: Site, api: Client) -> Any:
    tx = site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[0].address, amount=1)
    forged = HOUSEHOLDS[0].sign(tx.signing_bytes())
    return {**tx.to_json(), "signature": forged}


def _bad_nonce(site: Site, api: Client) -> Any:
    nonce = site.nonce(OPERATOR) + 5
    return site.sign(OPERATOR, "credit.issue", nonce=nonce, to=HOUSEHOLDS[0].address, amount=1)


def _nonce_pending(site: Site, api: Client) -> Any:
    nonce = site.nonce(OPERATOR)
    first = site.sign(OPERATOR, "credit.issue", nonce=nonce, to=HOUSEHOLDS[0].address, amount=1)
    _submit_first(site, api, first)
    return site.sign(OPERATOR, "credit.issue", nonce=nonce, to=HOUSEHOLDS[1].address, amount=1)


def _duplicate_committed(site: Site, api: Client) -> Any:
    return site.blocks[3].transactions[1]


def _not_allowed(site: Site, api: Client) -> Any:
    # Regulators may stop things, never move money.
    return site.sign(REGULATOR, "credit.transfer", to=HOUSEHOLDS[0].address, amount=1)


def _unknown_type(site: Site, api: Client) -> Any:
    return site.sign(OPERATOR, "credit.print", to=OPERATOR.address, amount=1)


def _pool_full(site: Site, api: Client) -> Any:
    # The test sets LEDGER_POOL_LIMIT to 1 for this case.
    _submit_first(
        site, api, site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[0].address, amount=1)
    )
    return site.sign(HOUSEHOLDS[0], "credit.redeem", amount=1)


REFUSALS: dict[str, Callable[[Site, Client], Any]] = {
    "malformed": _malformed,
    "wrong_chain": _wrong_chain,
    "unknown_sender": _unknown_sender,
    "bad_signature": _bad_signature,
    "bad_nonce": _bad_nonce,
    "nonce_pending": _nonce_pending,
    "duplicate": _duplicate_committed,
    "not_allowed": _not_allowed,
    "unknown_type": _unknown_type,
    "pool_full": _pool_full,
}


@pytest.mark.parametrize("case", REFUSALS)
def test_it_refuses_with_the_admission_code_and_records_nothing(
    site: Site,
    api: Client,
    settings: Any,
    case: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    if case == "pool_full":
        settings.LEDGER_POOL_LIMIT = 1
    body = REFUSALS[case](site, api)
    if isinstance(body, Transaction):
        body = body.to_json()
    before = list(SubmittedTransaction.objects.values_list("tx_id", flat=True))
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, body)
    code = case.split(" ")[0]
    assert response.status_code == 400
    assert response.json() == {"code": code, "message": response.json()["message"]}
    assert response.json()["message"]
    assert list(SubmittedTransaction.objects.values_list("tx_id", flat=True)) == before
    assert callbacks == []  # nothing sent to any validator


def test_the_same_pending_transaction_again_is_sent_again_not_refused(
    site: Site, api: Client, django_capture_on_commit_callbacks: Any
) -> None:
    """A request that died mid-way, or a message lost on its way: the sender sends the same
    signed transaction again, and the site sends it to the validators again (they ignore a copy
    they have) instead of answering ``duplicate`` while nobody has it."""
    tx = site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[0].address, amount=1)
    _submit_first(site, api, tx)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, tx.to_json())
    assert response.status_code == 202
    assert list(SubmittedTransaction.objects.values_list("tx_id", flat=True)) == [tx.id]
    assert len(callbacks) == 1  # the send to every validator's queue


def test_every_admission_code_is_tested_through_the_api() -> None:
    assert {case.split(" ")[0] for case in REFUSALS} == set(services.ADMISSION_CODES)


def _valid() -> dict[str, Any]:
    return sign_transaction(
        keypair=OPERATOR,
        chain=CHAIN,
        type="credit.issue",
        nonce=0,
        payload={"to": OPERATOR.address, "amount": 1},
    ).to_json()


MALFORMED_BODIES: dict[str, Any] = {
    "not JSON": "{'chain': ",
    "empty body": "",
    "an array": "[]",
    "a string": '"transaction"',
    "float nonce": json.dumps(_valid()).replace('"nonce": 0', '"nonce": 0.0'),
    "float amount": json.dumps(_valid()).replace('"amount": 1', '"amount": 1.5'),
    "duplicate key": json.dumps(_valid())[:-1] + ', "nonce": 1}',
    "string nonce": {**_valid(), "nonce": "0"},
    "boolean nonce": {**_valid(), "nonce": True},
    "negative nonce": {**_valid(), "nonce": -1},
    "huge nonce": {**_valid(), "nonce": 2**64},
    "extra field": {**_valid(), "fee": 1},
    "payload not an object": {**_valid(), "payload": [1]},
    "sender with a typo": {**_valid(), "sender": "02" + _valid()["sender"][2:]},
    "short signature": {**_valid(), "signature": "ab"},
    "upper-case type": {**_valid(), "type": "Credit.Issue"},
    "NaN": json.dumps(_valid()).replace('"nonce": 0', '"nonce": NaN'),
    "not UTF-8": b'{"chain": "\xff"}',
}


@pytest.mark.parametrize("case", MALFORMED_BODIES)
def test_it_calls_any_body_that_is_not_a_transaction_malformed(
    site: Site, api: Client, case: str
) -> None:
    response = post(api, MALFORMED_BODIES[case])
    assert error_of(response) == (400, "malformed")
    assert not SubmittedTransaction.objects.exists()


def test_it_refuses_a_body_too_large_to_be_a_transaction(site: Site, api: Client) -> None:
    body = {**_valid(), "payload": {"memo": "x" * 70_000}}
    assert error_of(post(api, body)) == (400, "malformed")


def test_it_wants_json(site: Site, api: Client) -> None:
    response = api.post(f"{API}/transactions", {"chain": CHAIN})  # a form
    assert error_of(response) == (415, "unsupported_media_type")


def test_it_says_when_there_is_no_network(api: Client, settings: Any, tmp_path: Path) -> None:
    settings.LEDGER_DIR = tmp_path
    assert error_of(post(api, _valid())) == (503, "ledger_unavailable")


# --- signing for web users -----------------------------------------------------------------------
def test_it_signs_for_a_web_user_with_the_next_nonces(site: Site, prosumer: User) -> None:
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=500)
    to = HOUSEHOLDS[0].address
    first = services.transaction_sign_and_submit(
        user=prosumer, type="credit.transfer", payload={"to": to, "amount": 10}
    )
    second = services.transaction_sign_and_submit(
        user=prosumer, type="credit.transfer", payload={"to": to, "amount": 20}
    )
    assert (first.sender, first.nonce, second.nonce) == (prosumer.identity.address, 0, 1)
    assert list(SubmittedTransaction.objects.values_list("nonce", "submitted_by")) == [
        (0, prosumer.pk),
        (1, prosumer.pk),
    ]
    site.commit([first])
    third = services.transaction_sign_and_submit(
        user=prosumer, type="credit.redeem", payload={"amount": 5}
    )
    assert third.nonce == 2  # committed 1, plus the one still pending


def test_it_refuses_to_sign_what_the_validators_would_refuse(
    site: Site, prosumer: User, admin: User
) -> None:
    def refusal(user: User, type: str, payload: dict[str, Any]) -> str:
        with pytest.raises(services.TransactionRejected) as caught:
            services.transaction_sign_and_submit(user=user, type=type, payload=payload)
        return caught.value.code

    assert refusal(prosumer, "credit.redeem", {"amount": 1}) == "unknown_sender"
    site.register(prosumer.identity.address, prosumer.identity.public_key)
    assert refusal(prosumer, "credit.issue", {"to": HOUSEHOLDS[0].address, "amount": 1}) == (
        "not_allowed"
    )
    assert refusal(prosumer, "Bad Type", {}) == "malformed"
    assert refusal(prosumer, "credit.redeem", {"amount": 0.5}) == "malformed"
    assert refusal(admin, "credit.redeem", {"amount": 1}) == "no_identity"
    assert not SubmittedTransaction.objects.exists()


def test_it_gives_up_pending_transactions_that_waited_too_long(
    site: Site, prosumer: User, settings: Any
) -> None:
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=50)
    lost = services.transaction_sign_and_submit(
        user=prosumer, type="credit.redeem", payload={"amount": 1}
    )
    settings.LEDGER_PENDING_TIMEOUT_S = 0
    retry = services.transaction_sign_and_submit(
        user=prosumer, type="credit.redeem", payload={"amount": 2}
    )
    assert retry.nonce == lost.nonce == 0
    assert list(SubmittedTransaction.objects.values_list("tx_id", flat=True)) == [retry.id]


@pytest.mark.django_db(transaction=True)
def test_it_never_gives_two_concurrent_submissions_of_one_account_the_same_nonce(
    settings: Any, tmp_path: Path, prosumer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = build_chain(1, 2)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=1_000)
    sent: list[str] = []
    monkeypatch.setattr(
        services,
        "transactions_submit",
        lambda *, transactions: sent.extend(tx.id for tx in transactions),
    )
    start = threading.Barrier(6)

    def submit(amount: int) -> int:
        try:
            start.wait(timeout=10)
            tx = services.transaction_sign_and_submit(
                user=prosumer, type="credit.redeem", payload={"amount": amount}
            )
            return tx.nonce
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        nonces = list(pool.map(submit, range(1, 7)))
    assert sorted(nonces) == [0, 1, 2, 3, 4, 5]
    pending = SubmittedTransaction.objects.values_list("nonce", flat=True)
    assert sorted(pending) == [0, 1, 2, 3, 4, 5]
    assert len(sent) == 6  # each sent to the validators once its record committed


# --- reading transactions, blocks, accounts, validators ------------------------------------------
def test_it_proves_a_committed_transaction_against_its_block(site: Site, api: Client) -> None:
    block = site.blocks[3]
    for position, tx in enumerate(block.transactions):
        status = api.get(f"{API}/transactions/{tx.id}").json()
        result = block.results[position]
        assert status["status"] == ("committed" if result == "ok" else "failed")
        assert (status["height"], status["position"], status["result"]) == (3, position, result)
        header = api.get(f"{API}/blocks/3").json()
        proof = status["proof"]
        assert proof["root"] == header["tx_root"] == block.header.tx_root
        assert proof["tree_size"] == len(block.transactions)
        args = (proof["index"], proof["tree_size"], proof["path"], proof["root"])
        verify_inclusion_hex(tx.id, *args)
        other = block.transactions[(position + 1) % len(block.transactions)].id
        with pytest.raises(InvalidInclusionProof):
            verify_inclusion_hex(other, *args)
    assert {"committed", "failed"} == {
        api.get(f"{API}/transactions/{tx.id}").json()["status"] for tx in block.transactions
    }


def test_it_turns_pending_into_committed_when_the_block_is_projected(
    site: Site, api: Client
) -> None:
    tx = site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[1].address, amount=77)
    post(api, tx.to_json())
    block = site.commit([tx])
    status = api.get(f"{API}/transactions/{tx.id}").json()
    assert (status["status"], status["height"], status["result"]) == (
        "committed",
        block.height,
        "ok",
    )
    assert status["proof"] == {"root": block.header.tx_root, "index": 0, "tree_size": 1, "path": []}
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize("tx_id", ["0" * 64, "not-an-id", "A" * 64, "0" * 65])
def test_it_does_not_know_other_transactions(site: Site, api: Client, tx_id: str) -> None:
    assert error_of(api.get(f"{API}/transactions/{tx_id}")) == (404, "not_found")


def test_it_lists_blocks_newest_first_a_page_at_a_time(site: Site, api: Client) -> None:
    page = api.get(f"{API}/blocks?limit=2").json()
    assert page["count"] == 5
    assert [b["height"] for b in page["results"]] == [4, 3]
    assert page["next"].endswith("limit=2&offset=2")
    rest = api.get(f"{API}/blocks?limit=2&offset=2").json()
    assert [b["height"] for b in rest["results"]] == [2, 1]
    top = page["results"][0]
    assert top == {
        "height": 4,
        "hash": site.blocks[4].hash,
        "previous_hash": site.blocks[3].hash,
        "timestamp": top["timestamp"],
        "proposer": site.blocks[4].header.proposer,
        "tx_count": 6,
        "tx_root": site.blocks[4].header.tx_root,
        "state_root": site.blocks[4].header.state_root,
    }
    assert top["timestamp"] == "2026-01-01T00:00:20Z"
    # Bad paging is refused with a code, never silently replaced (gridplatform.api.Pagination).
    for query in ("limit=abc", "offset=-5", "limit=0"):
        assert error_of(api.get(f"{API}/blocks?{query}")) == (400, "bad_paging")
    assert api.get(f"{API}/blocks?offset=99999999999999999999999").json()["results"] == []


def test_it_shows_a_block_with_its_transactions_and_certificate(site: Site, api: Client) -> None:
    block = site.blocks[2]
    shown = api.get(f"{API}/blocks/2").json()
    header = block.header
    assert {key: shown[key] for key in ("chain", "timestamp_ms", "results_root")} == {
        "chain": CHAIN,
        "timestamp_ms": header.timestamp_ms,
        "results_root": header.results_root,
    }
    assert shown["signatures_root"] == header.signatures_root
    assert shown["proposer_signature"] == block.proposer_signature
    assert shown["transactions"] == [
        {"id": tx.id, **tx.to_json(), "redacted": False, "result": result}
        for tx, result in zip(block.transactions, block.results, strict=True)
    ]
    assert shown["certificate"] == [vote.to_json() for vote in block.certificate]


@pytest.mark.parametrize("height", ["5", "99999999999999999999999999"])
def test_it_does_not_know_blocks_to_come(site: Site, api: Client, height: str) -> None:
    assert error_of(api.get(f"{API}/blocks/{height}")) == (404, "not_found")


@pytest.fixture
def ledger_users(site: Site, prosumer: User, consumer: User) -> Site:
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=1_234)
    site.register(consumer.identity.address, consumer.identity.public_key, credits=99)
    return site


def account(client: Client, user: User) -> dict[str, Any]:
    response = client.get(f"{API}/accounts/{user.identity.address}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_it_shows_a_household_its_own_balance(ledger_users: Site, prosumer: User) -> None:
    assert account(client_for(prosumer), prosumer) == {
        "address": prosumer.identity.address,
        "public_key": prosumer.identity.public_key,
        "role": "household",
        "nonce": 0,
        "balance": 1_234,
    }


def test_it_hides_a_balance_from_other_households(
    ledger_users: Site, prosumer: User, consumer: User
) -> None:
    shown = account(client_for(consumer), prosumer)
    assert shown["balance"] is None
    assert (shown["public_key"], shown["nonce"]) == (prosumer.identity.public_key, 0)


def test_it_shows_every_balance_to_the_grid_operator_and_regulators(
    ledger_users: Site, prosumer: User, grid_operator: User, regulator: User
) -> None:
    for watcher in (grid_operator, regulator):
        assert account(client_for(watcher), prosumer)["balance"] == 1_234


def test_it_does_not_know_unregistered_addresses(ledger_users: Site, outsider: User) -> None:
    client = client_for(outsider)
    for address in (outsider.identity.address, "zz", "0" * 500):
        assert error_of(client.get(f"{API}/accounts/{address}")) == (404, "not_found")


def test_it_lists_the_validators_up_and_down(site: Site, api: Client) -> None:
    now_ms = int(time.time() * 1000)
    genesis_hash = site.chain.genesis.block_hash
    services.validator_status_record(
        index=0, height=4, view=0, at_ms=now_ms, genesis_hash=genesis_hash
    )
    services.validator_status_record(
        index=1, height=3, view=2, at_ms=now_ms - 60_000, genesis_hash=genesis_hash
    )
    listed = api.get(f"{API}/validators").json()
    assert [(v["index"], v["height"], v["view"], v["up"]) for v in listed] == [
        (0, 4, 0, True),
        (1, 3, 2, False),
        (2, None, None, False),
        (3, None, None, False),
    ]
    assert listed[0]["last_commit_at"] is not None
    assert listed[3]["last_seen_at"] is None


# --- who may call --------------------------------------------------------------------------------
# The chain's reads are public (tests/ledger/test_public_ledger.py); accounts, submitting are not.
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/accounts/" + OPERATOR.address),
        ("post", "/transactions"),
    ],
)
def test_it_turns_anonymous_callers_away(site: Site, method: str, path: str) -> None:
    response = getattr(Client(), method)(f"{API}{path}")
    assert error_of(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Token realm="api"'


def test_it_serves_a_logged_in_browser_by_its_session(site: Site, prosumer: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(prosumer, backend="django.contrib.auth.backends.ModelBackend")
    assert browser.get(f"{API}/blocks/0").status_code == 200
    # A session may not post without the CSRF token: a page of another site could otherwise.
    assert error_of(post(browser, _valid())) == (403, "permission_denied")


# --- errors are JSON with a code -----------------------------------------------------------------
def test_it_answers_unknown_endpoints_and_methods_in_json(site: Site, api: Client) -> None:
    assert error_of(api.get(f"{API}/nothing-here")) == (404, "not_found")
    assert error_of(api.get("/api/v2/ledger/blocks")) == (404, "not_found")
    assert error_of(api.delete(f"{API}/blocks/0")) == (405, "method_not_allowed")
    assert error_of(api.get(f"{API}/blocks", HTTP_ACCEPT="text/html")) == (406, "not_acceptable")


def test_it_throttles_with_a_json_answer(
    site: Site, prosumer: User, monkeypatch: pytest.MonkeyPatch, throttle_clock: float
) -> None:
    client = client_for(prosumer)
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    UserRate.forget(f"throttle_user_{prosumer.pk}")
    try:
        codes = [client.get(f"{API}/blocks/0").status_code for _ in range(3)]
        response = client.get(f"{API}/blocks/0")
    finally:
        UserRate.forget(f"throttle_user_{prosumer.pk}")
    assert codes == [200, 200, 200]
    assert error_of(response) == (429, "throttled")
    assert response.json()["detail"]["retry_after"] == 40  # to the window's end
    assert response["Retry-After"] == "40"


# --- the schema and the docs ---------------------------------------------------------------------
def test_it_publishes_a_valid_openapi_schema_with_every_ledger_path(db: None) -> None:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    paths = schema["paths"]
    assert {path: sorted(paths[path]) for path in paths if path.startswith(API)} == {
        f"{API}/transactions": ["post"],
        f"{API}/transactions/{{id}}": ["get"],
        f"{API}/blocks": ["get"],
        f"{API}/blocks/{{height}}": ["get"],
        f"{API}/blocks/{{height}}/events/{{index}}": ["get"],
        f"{API}/accounts/{{address}}": ["get"],
        f"{API}/state": ["get"],
        f"{API}/state/{{key}}": ["get"],
        f"{API}/validators": ["get"],
        f"{API}/genesis": ["get"],
        f"{API}/key": ["post"],
    }
    submit = paths[f"{API}/transactions"]["post"]
    assert set(submit["responses"]) == {"202", "400", "401", "503"}
    for code in services.ADMISSION_CODES:
        assert f"`{code}`" in submit["description"]
    assert schema["components"]["securitySchemes"]["tokenAuth"]["type"] == "apiKey"


def test_it_serves_the_api_docs_from_local_files_under_the_csp(db: None) -> None:
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<style" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    assert all('src="/' in attributes for attributes in scripts)  # no inline script, no CDN
    assert "https://" not in html
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
    assert "/api/schema/" in script.content.decode()


# --- end to end ----------------------------------------------------------------------------------
@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_it_commits_a_transaction_posted_to_the_api_on_four_real_validators(
    tmp_path: Path, settings: Any, grid_operator: User
) -> None:
    from tests.ledger.test_validators_live import LiveNetwork

    # Notifications left on the default queue by earlier runs would reach this site's worker.
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("celery")
    client.close()
    network = LiveNetwork(tmp_path)
    settings.LEDGER_DIR = tmp_path
    settings.LEDGER_STORE_URL = network.store_template
    log = open(tmp_path / "site-worker.log", "ab")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gridplatform.celery",
            "worker",
            "-Q",
            "celery",
            "--pool=solo",
            "--loglevel=INFO",
            "--hostname=site-e2e@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=child_env(LEDGER_DIR=str(tmp_path), LEDGER_STORE_URL=network.store_template),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for index in range(4):
            network.start(index)
        api = client_for(grid_operator)
        household = HOUSEHOLDS[0]
        tx = sign_transaction(
            keypair=OPERATOR,
            chain=CHAIN,
            type="account.register",
            nonce=0,
            payload={
                "address": household.address,
                "public_key": household.public_key_hex,
                "role": "household",
            },
        )
        response = post(api, canonical(tx.to_json()))
        assert response.status_code == 202, response.json()

        def status() -> dict[str, Any]:
            body: dict[str, Any] = api.get(f"{API}/transactions/{tx.id}").json()
            return body

        def site_worker_log() -> str:
            return (tmp_path / "site-worker.log").read_text()[-3000:]

        deadline = time.monotonic() + 90
        while status()["status"] == "pending":
            assert worker.poll() is None, f"the site worker died: {site_worker_log()}"
            assert time.monotonic() < deadline, (
                f"not committed within 90 s; validators {network.heights()}; "
                f"site worker: {site_worker_log()}"
            )
            time.sleep(0.3)
        committed = status()
        assert (committed["status"], committed["result"]) == ("committed", "ok")
        block = api.get(f"{API}/blocks/{committed['height']}").json()
        proof = committed["proof"]
        assert proof["root"] == block["tx_root"]
        verify_inclusion_hex(
            tx.id, proof["index"], proof["tree_size"], proof["path"], block["tx_root"]
        )
        assert tx.id in [item["id"] for item in block["transactions"]]
        assert BlockRecord.objects.get(height=committed["height"]).hash == block["hash"]
        # The validators' heartbeats reach the site too.
        while not all(v["up"] for v in api.get(f"{API}/validators").json()):
            assert time.monotonic() < deadline + 30, api.get(f"{API}/validators").json()
            time.sleep(0.3)
        account = api.get(f"{API}/accounts/{household.address}").json()
        assert (account["role"], account["nonce"]) == ("household", 0)
    finally:
        network.stop()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        network.drop()
