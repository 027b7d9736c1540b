"""The public ledger: anyone, without an account, reads blocks, signed transactions with their
proofs, the validators and the genesis document, through the API and the explorer pages,
rate-limited and cached; meter readings stay with their owner, the grid operator and the
regulators; and an outsider's script re-verifies the whole chain from the public API alone."""

from __future__ import annotations

import ast
import hashlib
import http.server
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.throttling import SimpleRateThrottle

from gridplatform.accounts.models import User
from gridplatform.throttling import AnonRate
from ledger import replica
from ledger.crypto import sign_transaction, verify_inclusion_hex
from ledger.identity import KeyPair
from ledger.models import BlockRecord
from ledger.trie import verify
from meters.chain.metering import device_message
from meters.chain.schema import window_key
from meters.models import Meter
from tests.ledger.chains import GENESIS_TIME_MS, HOUSEHOLDS, OPERATOR, build_chain, flip_hex
from tests.ledger.site import Site, project, use_network

API = "/api/v1/ledger"
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "verify_public_ledger.py"
METER = "hh-main"
DEVICE = KeyPair(private_key=hashlib.sha256(b"public ledger device").digest())
READINGS_START_MS = GENESIS_TIME_MS
BODY = json.dumps(
    {
        "readings": [
            {
                "start": "2026-01-01T00:00:00Z",
                "duration_s": 900,
                "import_wh": 0,
                "export_wh": 412,
                "quality": "actual",
            }
        ]
    },
    separators=(",", ":"),
)
ROTATED = KeyPair(private_key=hashlib.sha256(b"public ledger rotated key").digest())


def with_readings(site: Site, owner: str) -> int:
    """Commit a meter of the household at address ``owner`` and a batch of its readings, then a
    key rotation and a transfer signed with the new key; the height of the readings' block."""
    register = site.sign(
        OPERATOR,
        "meter.register",
        meter=METER,
        owner=owner,
        kind="bidirectional",
        public_key=DEVICE.public_key_hex,
        feeder="f1",
        interval_s=900,
    )
    # Relayed a minute after its interval ended: its slot is still open (not yet closed by
    # market.settlement_delay_ms), so the reading is in the meter's window.
    relayed_ms = GENESIS_TIME_MS + 960_000
    t = relayed_ms // 1000
    relay = site.sign(
        OPERATOR,
        "meter.readings",
        meter=METER,
        t=t,
        body=BODY,
        signature=DEVICE.sign(device_message(t, BODY.encode())),
    )
    block = site.commit([register, relay], timestamp_ms=relayed_ms)
    assert list(block.results) == ["ok", "ok"]
    rotate = site.sign(HOUSEHOLDS[1], "key.rotate", public_key=ROTATED.public_key_hex)
    transfer = sign_transaction(
        keypair=ROTATED,
        sender=HOUSEHOLDS[1].address,
        chain=site.chain.genesis.chain,
        type="credit.transfer",
        nonce=site.nonce(HOUSEHOLDS[1]),
        payload={"to": HOUSEHOLDS[2].address, "amount": 1},
    )
    after = site.commit([rotate, transfer])
    assert list(after.results) == ["ok", "ok"]
    return block.height


def readings_tx(site: Site, height: int) -> Any:
    return site.blocks[height].transactions[1]


# --- in-process: what each reader gets ---------------------------------------------------------


@pytest.fixture
def site(settings: Any, tmp_path: Path, db: None) -> Site:
    chain = build_chain(4, 6)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


@pytest.fixture
def metered(site: Site, prosumer: User, grid_operator: User) -> tuple[Site, int]:
    """The chain with a meter of the prosumer's (on the ledger and on the site) and a batch of
    its readings; the height of the readings' block."""
    address = prosumer.identity.address
    site.register(address, prosumer.identity.public_key)
    Meter.objects.create(
        meter_id=METER,
        owner=prosumer,
        kind="bidirectional",
        public_key=DEVICE.public_key_hex,
        feeder="f1",
        registered_by=grid_operator,
    )
    return site, with_readings(site, address)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_anyone_reads_the_blocks_a_page_at_a_time(site: Site) -> None:
    response = Client().get(f"{API}/blocks?limit=2")
    assert response.status_code == 200
    page = response.json()
    assert (page["count"], [b["height"] for b in page["results"]]) == (5, [4, 3])
    assert page["results"][0]["hash"] == site.blocks[4].hash
    assert page["next"].endswith("limit=2&offset=2")
    assert response["Cache-Control"] == "public, max-age=5"


def test_anyone_reads_a_block_with_its_signed_transactions_and_certificate(site: Site) -> None:
    block = site.blocks[3]
    response = Client().get(f"{API}/blocks/3")
    assert response.status_code == 200
    shown = response.json()
    assert shown["hash"] == block.hash
    assert shown["tx_root"] == block.header.tx_root
    assert shown["transactions"] == [
        {"id": tx.id, **tx.to_json(), "redacted": False, "result": result}
        for tx, result in zip(block.transactions, block.results, strict=True)
    ]
    assert shown["proposer_signature"] == block.proposer_signature
    assert shown["certificate"] == [vote.to_json() for vote in block.certificate]
    assert response["Cache-Control"] == "public, max-age=86400"
    assert {"Cookie", "Authorization"} <= {v.strip() for v in response["Vary"].split(",")}


def test_anyone_reads_a_transaction_with_its_body_and_proof(site: Site) -> None:
    block = site.blocks[2]
    tx = block.transactions[1]
    response = Client().get(f"{API}/transactions/{tx.id}")
    assert response.status_code == 200
    shown = response.json()
    assert {key: shown[key] for key in tx.to_json()} == tx.to_json()
    assert (shown["height"], shown["position"], shown["redacted"]) == (2, 1, False)
    proof = shown["proof"]
    verify_inclusion_hex(
        tx.id, proof["index"], proof["tree_size"], proof["path"], block.header.tx_root
    )
    assert response["Cache-Control"] == "public, max-age=86400"


def test_a_pending_transaction_is_not_cached(site: Site, prosumer: User) -> None:
    from ledger import services

    tx = site.sign(OPERATOR, "credit.issue", to=HOUSEHOLDS[0].address, amount=5)
    services.transaction_admit(data=tx.to_json(), submitted_by=prosumer)
    response = Client().get(f"{API}/transactions/{tx.id}")
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    assert response.json()["payload"] == tx.payload
    assert response["Cache-Control"] == "no-cache"


def test_anyone_reads_the_validators_with_their_keys_and_the_genesis_document(
    site: Site,
) -> None:
    genesis = site.chain.genesis
    validators = Client().get(f"{API}/validators")
    assert validators.status_code == 200
    assert [(v["index"], v["public_key"]) for v in validators.json()] == list(
        enumerate(genesis.validators)
    )
    response = Client().get(f"{API}/genesis")
    assert response.status_code == 200
    assert response.json() == {
        "document": genesis.to_json(),
        "document_hash": genesis.document_hash(),
    }
    assert response["Cache-Control"] == "public, max-age=300"


def test_there_is_no_genesis_without_a_network(settings: Any, tmp_path: Path, db: None) -> None:
    settings.LEDGER_DIR = tmp_path
    response = Client().get(f"{API}/genesis")
    assert (response.status_code, response.json()["code"]) == (503, "ledger_unavailable")


def test_accounts_stay_for_accounts(site: Site) -> None:
    response = Client().get(f"{API}/accounts/{HOUSEHOLDS[0].address}")
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


def test_an_accounts_answers_are_cached_in_its_browser_only(site: Site, prosumer: User) -> None:
    client = logged_in(prosumer)
    assert client.get(f"{API}/blocks/3")["Cache-Control"] == "private, max-age=86400"
    # The newest blocks: a logged-in page re-reads them on a live hint.
    assert client.get(f"{API}/blocks")["Cache-Control"] == "no-cache"
    page = client.get(reverse("ledger-block", args=[3]))
    assert page["Cache-Control"] == "private, max-age=86400"
    assert Client().get(reverse("ledger-block", args=[3]))["Cache-Control"] == (
        "public, max-age=86400"
    )


# --- privacy of meter readings -----------------------------------------------------------------


def _withheld(tx: Any) -> dict[str, Any]:
    public = {name: value for name, value in tx.payload.items() if name != "body"}
    return public | {"body_sha256": hashlib.sha256(BODY.encode()).hexdigest()}


@pytest.mark.parametrize("reader", ["anonymous", "consumer"])
def test_it_withholds_meter_readings_from_others(
    metered: tuple[Site, int], reader: str, request: pytest.FixtureRequest
) -> None:
    site, height = metered
    client = Client() if reader == "anonymous" else logged_in(request.getfixturevalue(reader))
    tx = readings_tx(site, height)

    shown = client.get(f"{API}/transactions/{tx.id}").json()
    assert (shown["id"], shown["type"], shown["sender"], shown["nonce"]) == (
        tx.id,
        "meter.readings",
        OPERATOR.address,
        tx.nonce,
    )
    assert (shown["signature"], shown["redacted"]) == (tx.signature, True)
    assert shown["payload"] == _withheld(tx)
    assert "body" not in shown["payload"]
    # What an outsider can still check: the id is in the certified block's Merkle root.
    proof = shown["proof"]
    args = (proof["index"], proof["tree_size"], proof["path"])
    verify_inclusion_hex(tx.id, *args, site.blocks[height].header.tx_root)

    listed = client.get(f"{API}/blocks/{height}").json()["transactions"][1]
    assert (listed["payload"], listed["redacted"]) == (_withheld(tx), True)

    key = window_key(METER)
    entry = client.get(f"{API}/state/{key}").json()
    assert (entry["present"], entry["value"], entry["value_redacted"]) == (True, None, True)
    # The proof is given all the same; its leaf holds the value's hash.
    real = site.state.get(key)
    assert verify(entry["header"]["state_root"], key, real, entry["proof"])

    page = client.get(reverse("ledger-transaction", args=[tx.id])).content.decode()
    assert "body_sha256" in page
    assert "export_wh" not in page
    block_page = client.get(reverse("ledger-block", args=[height])).content.decode()
    assert "(readings withheld)" in block_page
    state_page = client.get(reverse("ledger-state"), {"key": key}).content.decode()
    assert 'data-testid="value-redacted"' in state_page
    assert '"export_wh"' not in state_page


@pytest.mark.parametrize("reader", ["prosumer", "grid_operator", "regulator"])
def test_it_shows_meter_readings_to_the_owner_the_grid_operator_and_regulators(
    metered: tuple[Site, int], reader: str, request: pytest.FixtureRequest
) -> None:
    site, height = metered
    client = logged_in(request.getfixturevalue(reader))
    tx = readings_tx(site, height)
    shown = client.get(f"{API}/transactions/{tx.id}").json()
    assert (shown["payload"], shown["redacted"]) == (tx.payload, False)
    listed = client.get(f"{API}/blocks/{height}").json()["transactions"][1]
    assert {key: listed[key] for key in tx.to_json()} == tx.to_json()
    key = window_key(METER)
    entry = client.get(f"{API}/state?key={key}&key=ledger/supply").json()["entries"][0]
    assert entry["value"] == site.state.get(key)
    assert entry["value"]["readings"][str(READINGS_START_MS)]["export_wh"] == 412
    assert entry["value_redacted"] is False
    page = client.get(reverse("ledger-transaction", args=[tx.id])).content.decode()
    assert "export_wh" in page


def test_it_asks_who_may_see_a_meter_once_per_reader(
    metered: tuple[Site, int], consumer: User, django_assert_num_queries: Any
) -> None:
    """A block of many batches of readings costs one question per meter, not per batch."""
    from django.contrib.auth.models import AnonymousUser

    from ledger.selectors import Privacy

    site, height = metered
    body = readings_tx(site, height).to_json()
    privacy = Privacy(consumer)
    with django_assert_num_queries(1):
        assert all(privacy.transaction_json(body)[1] for _ in range(3))
    with django_assert_num_queries(0):  # nobody to look up
        assert Privacy(AnonymousUser()).transaction_json(body)[1]
        assert Privacy(None).transaction_json(body)[1]


def test_it_shows_public_state_to_anyone(metered: tuple[Site, int]) -> None:
    site, _ = metered
    key = f"bal/{HOUSEHOLDS[0].address}"
    entry = Client().get(f"{API}/state/{key}").json()
    assert (entry["value"], entry["value_redacted"]) == (site.state.get(key), False)


# --- rate limits -------------------------------------------------------------------------------


@pytest.fixture
def three_a_minute(monkeypatch: pytest.MonkeyPatch, throttle_clock: float) -> Iterator[str]:
    """Anonymous callers may make 3 requests a minute; the address this test calls from (its
    own, so that no other test's requests count)."""
    address = "198.51.100.23"
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"user": "1000000/min", "anon": "3/min"}
    )
    AnonRate.forget(f"throttle_anon_{address}")
    yield address
    AnonRate.forget(f"throttle_anon_{address}")


def test_anonymous_pages_and_api_calls_share_one_budget(site: Site, three_a_minute: str) -> None:
    client = Client(REMOTE_ADDR=three_a_minute)
    codes = [
        client.get(f"{API}/blocks/1").status_code,
        client.get(reverse("ledger-block", args=[1])).status_code,
        # A forged X-Forwarded-For is no fresh budget: only the address counts.
        client.get(f"{API}/blocks/2", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code,
    ]
    page = client.get(reverse("ledger-blocks"), HTTP_X_FORWARDED_FOR="203.0.113.10")
    api = client.get(f"{API}/genesis")
    assert codes == [200, 200, 200]
    assert page.status_code == 429
    assert 0 < int(page["Retry-After"]) <= 60
    assert "Too many requests" in page.content.decode()
    assert (api.status_code, api.json()["code"]) == (429, "throttled")
    assert api["Retry-After"] == str(api.json()["detail"]["retry_after"])
    # Another address has its own budget.
    assert Client(REMOTE_ADDR="198.51.100.24").get(reverse("ledger-blocks")).status_code == 200
    AnonRate.forget("throttle_anon_198.51.100.24")


def test_accounts_pages_are_not_counted_as_anonymous(
    site: Site, three_a_minute: str, prosumer: User
) -> None:
    client = logged_in(prosumer)
    client.defaults["REMOTE_ADDR"] = three_a_minute
    codes = {client.get(reverse("ledger-block", args=[1])).status_code for _ in range(5)}
    assert codes == {200}


# --- the schema --------------------------------------------------------------------------------


def test_the_schema_says_which_reads_are_public(db: None) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    validate_schema(schema)
    paths = schema["paths"]
    public = [
        ("get", f"{API}/blocks"),
        ("get", f"{API}/blocks/{{height}}"),
        ("get", f"{API}/transactions/{{id}}"),
        ("get", f"{API}/validators"),
        ("get", f"{API}/genesis"),
        ("get", f"{API}/state"),
        ("get", f"{API}/state/{{key}}"),
    ]
    for method, path in public:
        operation = paths[path][method]
        assert {} in operation["security"], path  # no credentials needed
        assert "401" not in operation["responses"], path
    for method, path in (("get", f"{API}/accounts/{{address}}"), ("post", f"{API}/transactions")):
        assert {} not in paths[path][method]["security"], path


# --- the explorer, anonymously -----------------------------------------------------------------


def test_anyone_sees_the_validators_and_the_genesis_hash(site: Site) -> None:
    page = Client().get(reverse("ledger-validators")).content.decode()
    assert site.chain.genesis.document_hash() in page
    for key in site.chain.genesis.validators:
        assert key in page
    assert page.count("<tr data-validator=") == 4


def test_anyone_sees_a_transactions_signed_body(site: Site) -> None:
    tx = site.blocks[2].transactions[0]
    page = Client().get(reverse("ledger-transaction", args=[tx.id])).content.decode()
    assert tx.signature in page
    assert tx.payload["to"] in page
    assert 'data-testid="tx-redacted"' not in page


def test_the_state_page_proves_a_key_or_says_why_not(site: Site) -> None:
    client = Client()
    page = client.get(reverse("ledger-state"), {"key": "ledger/supply"}).content.decode()
    assert str(site.state.get("ledger/supply")) in page
    assert site.blocks[4].hash in page
    too_long = client.get(reverse("ledger-state"), {"key": "k" * 256}).content.decode()
    assert "1-255 characters" in too_long
    assert client.get(reverse("ledger-state")).status_code == 200


# --- the outsider's script ---------------------------------------------------------------------


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated, as an outsider runs it: no project on the path, no PYTHON* variables.
    return subprocess.run(
        [sys.executable, "-I", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def served(settings: Any, tmp_path: Path, transactional_db: None) -> Site:
    """A real chain with a meter's withheld readings and a key rotation, projected for a live
    server (its thread reads what this test committed)."""
    replica.forget()
    network = tmp_path / "network"
    network.mkdir()
    chain = build_chain(4, 6)
    use_network(settings, network, chain)
    site = Site(chain)
    site.project_all()
    with_readings(site, HOUSEHOLDS[0].address)
    return site


def _flip_vote(body: dict[str, Any]) -> None:
    vote = body["certificate"][1]
    vote["signature"] = flip_hex(vote["signature"], 7)


def _change_amount(body: dict[str, Any]) -> None:
    body["transactions"][0]["payload"]["amount"] += 1


def _flip_proposer(body: dict[str, Any]) -> None:
    body["proposer_signature"] = flip_hex(body["proposer_signature"], 3)


@pytest.mark.parametrize(
    ("height", "damage", "says"),
    [
        (3, _flip_vote, "certificate: the vote of validator"),
        (2, _flip_proposer, "the proposer's signature does not verify"),
        (4, _change_amount, "transaction 0: its signature does not verify"),
    ],
)
def test_an_outsider_verifies_the_ledger_and_names_a_damaged_height(
    served: Site, live_server: Any, tmp_path: Path, height: int, damage: Any, says: str
) -> None:
    genesis_hash = served.chain.genesis.document_hash()
    checked = run_script(
        live_server.url, "--genesis-hash", genesis_hash, "--check-proofs", cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[-1] == "ok"
    tip = len(served.blocks) - 1
    assert f"blocks 0..{tip}:" in checked.stdout
    assert "1 of them withheld" in checked.stdout  # the meter's readings

    record = BlockRecord.objects.get(height=height)
    damage(record.body)
    record.save(update_fields=["body"])
    broken = run_script(live_server.url, "--genesis-hash", genesis_hash, cwd=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    last = broken.stdout.splitlines()[-1]
    assert last.startswith(f"bad height {height}: "), last
    assert says in last


def test_an_outsider_refuses_another_genesis_document(
    served: Site, live_server: Any, tmp_path: Path
) -> None:
    result = run_script(live_server.url, "--genesis-hash", "ab" * 32, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("bad genesis: the document's hash is")


def test_an_outsider_checks_block_zero_by_the_genesis_document(
    settings: Any, tmp_path: Path, transactional_db: None, live_server: Any
) -> None:
    """A site that took block 0 from its genesis document holds it without signatures: the
    script checks it against the document, and block 1's certificate covers its hash."""
    replica.forget()
    network = tmp_path / "network"
    network.mkdir()
    chain = build_chain(2, 3)
    use_network(settings, network, chain)
    for block in chain.blocks[1:]:
        assert project(block)
    assert BlockRecord.objects.get(height=0).body["certificate"] == []
    result = run_script(live_server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "block 0 carries no signatures" in result.stdout
    assert result.stdout.splitlines()[-1] == "ok"


def test_the_script_needs_nothing_of_the_project() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    outside = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert outside == {"cryptography", "rfc8785"}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_public_ledger", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_waits_as_retry_after_says() -> None:
    script = _load_script()
    answers = [(429, {"Retry-After": "7"}, b"{}"), (200, {}, b'{"document": 1}')]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = answers.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    waits: list[float] = []
    try:
        site = script.Site(f"http://127.0.0.1:{server.server_port}", sleep=waits.append)
        assert site.get(site.url("/genesis")) == {"document": 1}
    finally:
        server.shutdown()
    assert (waits, site.requests) == ([7.0], 2)


def test_the_script_computes_the_ledgers_bytes_as_the_ledger_does() -> None:
    from ledger.blocks import proposal_bytes
    from ledger.crypto import inclusion_proof, merkle_root
    from ledger.identity import address_from_public_key

    script = _load_script()
    ids = [hashlib.sha256(bytes([i])).digest() for i in range(7)]
    for n in range(len(ids) + 1):
        assert script.merkle_root(ids[:n]) == merkle_root(ids[:n])
    for index in range(len(ids)):
        path = inclusion_proof(ids, index)
        assert script.inclusion_valid(ids[index], index, len(ids), path, merkle_root(ids))
        assert not script.inclusion_valid(ids[index - 1], index, len(ids), path, merkle_root(ids))
    assert script.address_of(OPERATOR.public_key_hex) == address_from_public_key(
        OPERATOR.public_key_hex
    )
    assert script.vote_bytes("proposal", "c", 3, "ab" * 32) == proposal_bytes("c", 3, "ab" * 32)
    assert (script.quorum(4), script.quorum(7)) == (3, 5)
