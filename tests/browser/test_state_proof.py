"""A household's browser checks its balance and locked margin against the validators' signatures
(static/js/stateproof.js): the trie proofs, the block hash and the commit votes, with WebCrypto
alone. It says so when everything holds, says plainly which figure of the site is wrong when the
read model disagrees with what the validators signed, and refuses a tampered proof."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from gridplatform.accounts.models import User
from ledger.blocks import Block
from ledger.crypto import canonical
from ledger.models import LedgerAccount
from ledger.trie import EMPTY, Trie
from ledger.trie import verify as trie_verify
from market.models import MarketAccount
from tests.browser.support import LiveServer, outside_event_loop, server_with_environment
from tests.browser.test_accounts import LIVE_UPDATE_TIMEOUT_MS, log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import OPERATOR, VALIDATORS, Chain, build_chain, recent_start_ms
from tests.ledger.site import Site

NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
STATE_API = re.compile(r"/api/v1/ledger/state\?")
CREDITS = 100_000  # €1,000.00
# Collects what the page's CSP refused; Playwright injects it, so the CSP does not apply to it.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Chain]:
    """A network whose blocks are "now" (the dashboard's charts ask the market for its slots)."""
    directory = tmp_path_factory.mktemp("network")
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    chain.genesis.to_json_file(directory / "genesis.json")
    return directory, chain


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network: tuple[Path, Chain]) -> Iterator[LiveServer]:
    """The conftest's server, started with this network's LEDGER_DIR in its environment: the
    dashboard embeds the genesis validators' keys, and the proofs are read from its replica."""
    directory, _ = network
    server = server_with_environment(LEDGER_DIR=str(directory))
    yield server
    server.stop()


@pytest.fixture
def site(network: tuple[Path, Chain], live_server_url: str, settings: Any) -> Site:
    """The network's chain, projected into the test database the server reads."""
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    site = Site(chain)
    outside_event_loop(site.project_all)
    return site


def _commit(site: Site, txs: list[Any]) -> Block:
    now_ms = max(site.blocks[-1].timestamp_ms + 1, time.time_ns() // 1_000_000)
    block = site.commit(txs, timestamp_ms=now_ms)
    assert set(block.results) == {"ok"}, block.results
    return block


def _enrolled_household(site: Site) -> User:
    """A household on the ledger with credits and a feeder (so a market account), in a block."""
    user: User = UserFactory(name="Ada Seller", email="ada@test.example")
    address, public_key = user.identity.address, user.identity.public_key
    _commit(
        site,
        [
            site.sign(
                OPERATOR,
                "account.register",
                address=address,
                public_key=public_key,
                role="household",
            ),
            site.sign(OPERATOR, "credit.issue", to=address, amount=CREDITS),
            site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
        ],
    )
    return user


@pytest.fixture
def household(site: Site) -> User:
    return outside_event_loop(_enrolled_household, site)


def dashboard(new_page: NewPage, user: User) -> tuple[Page, list[str]]:
    """``user``'s dashboard, and the list the page's script errors and CSP refusals go to."""
    page = new_page()
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    log_in(page, email=user.email, password=PASSWORD)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    return page, problems


def proof_result(page: Page) -> Locator:
    return page.locator("[data-state-proof-result]")


def no_problems(page: Page, problems: list[str]) -> None:
    assert problems == []
    assert page.evaluate("window.__cspViolations") == []


def test_the_dashboard_shows_its_money_verified_against_the_signed_block(
    site: Site, household: User, new_page: NewPage
) -> None:
    block = site.blocks[-1]
    votes = len(block.certificate)
    assert votes in (3, 4)

    page, problems = dashboard(new_page, household)

    result = proof_result(page)
    expect(result).to_have_attribute("aria-live", "polite")
    expect(result).to_have_text(
        f"Verified against block {block.height}, signed by {votes} of 4 validators: your balance "
        "of €1,000.00 and locked margin of €0.00 are what they signed."
    )
    expect(result).to_have_attribute("data-state", "verified")
    expect(page.get_by_test_id("balance")).to_have_text("€1,000.00")
    # The keys it checked against are on the page, with the genesis document's hash.
    page.get_by_text("The validators' keys your browser checks against").click()
    expect(page.get_by_test_id("genesis-hash")).to_have_text(site.chain.genesis.document_hash())
    for index, validator in enumerate(VALIDATORS):
        expect(page.get_by_text(f"Validator {index}: {validator.public_key_hex}")).to_be_visible()

    # The button checks again, on demand.
    page.get_by_role("button", name="Verify with the validators' signatures").click()
    expect(result).to_have_text(re.compile(rf"^Verified against block {block.height}, "))
    no_problems(page, problems)


def test_it_says_plainly_which_figure_of_the_site_is_wrong(
    site: Site, household: User, new_page: NewPage
) -> None:
    """The read model is changed behind the ledger's back; the proof comes from the site's replica
    of the validators' state, which the read model's rows do not touch."""
    height = site.blocks[-1].height
    address = household.identity.address
    LedgerAccount.objects.filter(address=address).update(balance=123_456)

    page, problems = dashboard(new_page, household)

    result = proof_result(page)
    expect(page.get_by_test_id("balance")).to_have_text("€1,234.56")
    expect(result).to_have_text(
        f"The site shows a balance of €1,234.56, but the validators signed €1,000.00 at block "
        f"{height}: the site's figure is wrong."
    )
    expect(result).to_have_attribute("data-state", "wrong")

    LedgerAccount.objects.filter(address=address).update(balance=CREDITS)
    MarketAccount.objects.filter(address=address).update(locked=2_500)
    page.reload()
    expect(page.get_by_test_id("locked")).to_have_text("€25.00")
    expect(result).to_have_text(
        f"The site shows a locked margin of €25.00, but the validators signed €0.00 at block "
        f"{height}: the site's figure is wrong."
    )

    LedgerAccount.objects.filter(address=address).update(balance=7)
    page.reload()
    expect(result).to_have_text(
        f"The site shows a balance of €0.07, but the validators signed €1,000.00 at block "
        f"{height}: the site's figure is wrong. The site shows a locked margin of €25.00, but "
        f"the validators signed €0.00 at block {height}: the site's figure is wrong."
    )
    no_problems(page, problems)


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def _flip_a_proof_hash(body: dict[str, Any]) -> None:
    (balance,) = [e for e in body["entries"] if e["key"].startswith("bal/")]
    children = balance["proof"][0]["children"]
    nibble = sorted(children)[0]
    children[nibble] = _flip(children[nibble])


def _flip_a_signature(body: dict[str, Any]) -> None:
    vote = body["certificate"][-1]
    vote["signature"] = _flip(vote["signature"])


def _change_the_header(body: dict[str, Any]) -> None:
    body["header"]["timestamp_ms"] += 1


def _drop_a_vote(body: dict[str, Any]) -> None:
    body["certificate"] = body["certificate"][:2]


def test_a_tampered_proof_does_not_verify(site: Site, household: User, new_page: NewPage) -> None:
    block = site.blocks[-1]
    last_voter = block.certificate[-1].validator
    tampering: list[Callable[[dict[str, Any]], None]] = [_flip_a_proof_hash]

    def tamper(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        tampering[0](body)
        route.fulfill(response=response, json=body)

    page = new_page()
    page.route(STATE_API, tamper)
    log_in(page, email=household.email, password=PASSWORD)
    result = proof_result(page)
    expect(result).to_have_text(
        f"Could not verify: the proof of your balance does not lead to the state root of block "
        f"{block.height}."
    )
    expect(result).to_have_attribute("data-state", "unverified")

    button = page.get_by_role("button", name="Verify with the validators' signatures")
    for change, message in [
        (
            _flip_a_signature,
            f"the signature of validator {last_voter} on block {block.height} does not verify",
        ),
        (
            _change_the_header,
            f"the header of block {block.height} does not hash to the block's hash",
        ),
        (_drop_a_vote, f"only 2 of 4 validators signed block {block.height}, and 3 must"),
    ]:
        tampering[0] = change
        button.click()
        expect(result).to_have_text(f"Could not verify: {message}.")

    # The same page, the answer untouched: it verifies.
    page.unroute(STATE_API)
    button.click()
    expect(result).to_have_text(re.compile(rf"^Verified against block {block.height}, "))


def test_a_block_committed_while_the_page_is_open_is_checked_with_the_new_figures(
    site: Site, household: User, new_page: NewPage
) -> None:
    """The page's figures are of the block they were read at: when a later block changes them,
    the live region shows the new ones and the browser checks those against the new block,
    never calling the site wrong for figures of another block."""
    page, problems = dashboard(new_page, household)
    expect(page.locator("[data-live-status]")).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)
    result = proof_result(page)
    expect(result).to_have_text(re.compile(rf"^Verified against block {site.blocks[-1].height}, "))

    address = household.identity.address
    block = outside_event_loop(
        _commit, site, [site.sign(OPERATOR, "credit.issue", to=address, amount=1_000)]
    )

    expect(page.get_by_test_id("balance")).to_have_text("€1,010.00", timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(result).to_have_text(
        f"Verified against block {block.height}, signed by {len(block.certificate)} of 4 "
        "validators: your balance of €1,010.00 and locked margin of €0.00 are what they signed.",
        timeout=LIVE_UPDATE_TIMEOUT_MS,
    )
    no_problems(page, problems)


def test_it_compares_nothing_when_it_finds_no_figures_of_the_proven_block(
    site: Site, household: User, new_page: NewPage
) -> None:
    """Figures of another block than the proof's are never compared: the browser reads them
    again, three times at most, then says what was signed and that it compared nothing."""
    height = site.blocks[-1].height
    pages: list[str] = []

    def older_figures(route: Route) -> None:  # as if the proof were always one block ahead
        pages.append(route.request.resource_type)
        response = route.fetch()
        html = response.text().replace(f'data-height="{height}"', f'data-height="{height - 1}"')
        route.fulfill(response=response, body=html)

    page = new_page()
    log_in(page, email=household.email, password=PASSWORD)
    page.route(re.compile(r"/dashboard/$"), older_figures)
    page.reload()

    expect(proof_result(page)).to_have_text(
        f"The validators signed your balance of €1,000.00 and locked margin of €0.00 at block "
        f"{height} ({len(site.blocks[-1].certificate)} of 4 signatures), but new blocks kept "
        "arriving, so the page's figures were not compared with them: check again."
    )
    expect(proof_result(page)).to_have_attribute("data-state", "unknown")
    assert pages == ["document", "fetch", "fetch", "fetch"]


def _trie_cases() -> tuple[str, list[tuple[str, Any, list[dict[str, Any]], bool]]]:
    """A state of 300 keys, its root, and (key, value, proof, holds) cases: presence, absence at
    a leaf of another key, at a branch without the child or off a prefix, and lies."""
    data: dict[str, Any] = {}
    for i in range(300):
        data[f"k/{i}"] = [i, {"a": [i, "x"], "b": None, "é": True}, "s" * (i % 7), False][i % 4]
    trie = Trie.of(data)
    cases = [(key, data[key], trie.prove(key), True) for key in ("k/0", "k/1", "k/2", "k/3")]
    cases += [(f"absent/{i}", None, trie.prove(f"absent/{i}"), True) for i in range(40)]
    cases += [
        ("k/4", 5, trie.prove("k/4"), False),  # another value
        ("k/4", None, trie.prove("k/4"), False),  # "absent", with its own proof
        ("k/5", data["k/5"], trie.prove("k/4"), False),  # another key's proof
        ("k/4", data["k/4"], trie.prove("k/4")[:-1], False),  # cut short
        ("absent/0", 0, trie.prove("absent/0"), False),  # "present" where it is not
    ]
    lying = trie.prove("k/6")
    lying[0]["children"]["0"] = "00" * 32  # a hash of the root branch changed
    cases.append(("k/6", data["k/6"], lying, False))
    root = trie.root().hex()
    # The reference agrees with every expectation, so the browser is compared with it.
    assert [trie_verify(root, k, v, p) for k, v, p, _ in cases] == [c[3] for c in cases]
    return root, cases


def test_the_browsers_trie_and_canonical_json_agree_with_the_ledgers(
    household: User, new_page: NewPage
) -> None:
    page, problems = dashboard(new_page, household)
    root, cases = _trie_cases()

    verified = page.evaluate(
        """async ([root, cases]) => Promise.all(cases.map(([key, value, proof]) =>
             window.gridStateProof.verifyTrie(root, key, value, proof)))""",
        [root, [case[:3] for case in cases]],
    )
    assert verified == [case[3] for case in cases]
    # The empty trie: every key absent, with an empty proof; nothing present.
    for value, holds in ((None, True), (0, False)):
        assert (
            page.evaluate(
                "([root, value]) => window.gridStateProof.verifyTrie(root, 'any/key', value, [])",
                [EMPTY.hex(), value],
            )
            is holds
        )

    values = [
        {"b": 1, "a": [True, None, -5, 'x"\n\x01/'], "é": {}, "\U0001f600": 0, "\uffff": 2},
        9_007_199_254_740_991,
        "€ and ünïcödé",
        [],
    ]
    in_browser = page.evaluate("values => values.map(window.gridStateProof.canonical)", values)
    assert in_browser == [canonical(value).decode() for value in values]
    no_problems(page, problems)
