"""The validators' signing history (``ledger.selectors.signing_histories`` and ``validator_list``):
read from the commit certificates of the projected blocks alone, with no heartbeat, in one query
however long the chain; and the consoles' validator rows that show it.

Blocks 1..12 of a real chain, certified by real validator keys: validators 0 and 1 sign every
block, validator 2 misses blocks 4-5 and 11-12 (the newest), validator 3 misses block 8.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from gridplatform.accounts.models import User
from ledger.models import BlockRecord, ValidatorStatus
from ledger.projection import datetime_of_ms
from ledger.selectors import Gap, signing_histories, validator_list
from tests.ledger.chains import (
    BLOCK_INTERVAL_MS,
    GENESIS_TIME_MS,
    VALIDATORS,
    Chain,
    build_chain,
    make_block,
    registry,
)
from tests.ledger.site import project, use_network
from tests.ledger.test_explorer import logged_in

pytestmark = pytest.mark.django_db
MISSED = {2: {4, 5, 11, 12}, 3: {8}}
TO = "\u2013"  # the en dash of a range of heights


def at(height: int) -> datetime:
    return datetime_of_ms(GENESIS_TIME_MS + BLOCK_INTERVAL_MS * height)


def project_history(chain: Chain) -> None:
    """Project ``chain``'s genesis, then blocks 1..12 certified as MISSED says (the site's
    LEDGER_DIR holds ``chain``'s genesis document); and forget every heartbeat."""
    project(chain.blocks[0])
    reg = registry()
    for height in range(1, 13):
        voters = [i for i in range(len(VALIDATORS)) if height not in MISSED.get(i, set())]
        block = make_block(chain.blocks[-1], chain.states[-1], [], registry_=reg, voters=voters)
        chain.blocks.append(block)
        assert project(block)
    ValidatorStatus.objects.all().delete()  # no heartbeat: the certificates alone


@pytest.fixture
def chain(settings: Any, tmp_path: Path) -> Chain:
    chain = build_chain(0, 0)  # genesis only
    use_network(settings, tmp_path, chain)
    project_history(chain)
    return chain


def test_it_marks_each_block_a_validator_signed_and_who_proposed_it(chain: Chain) -> None:
    history = signing_histories([0, 2])
    assert [mark.height for mark in history[2].marks] == list(range(1, 13))  # oldest first
    assert [mark.signed for mark in history[2].marks] == [
        height not in MISSED[2] for height in range(1, 13)
    ]
    assert all(mark.signed for mark in history[0].marks)
    assert [mark.proposer for mark in history[2].marks] == [h % 4 for h in range(1, 13)]
    assert [mark.at for mark in history[2].marks] == [at(h) for h in range(1, 13)]
    assert (history[2].blocks, history[2].signed, history[0].signed) == (12, 8, 12)
    assert (history[2].first, history[2].last) == (1, 12)
    assert history[2].proposed == 3  # heights 2, 6 and 10


def test_it_finds_when_a_validator_went_missing_and_came_back(chain: Chain) -> None:
    history = signing_histories([0, 1, 2, 3])
    assert history[0].gaps == history[1].gaps == ()
    assert history[0].last_gap is None
    # Down from block 4's time, back at block 6's; down again from block 11 and not back yet.
    assert history[2].gaps == (Gap(4, 5, at(4), at(6)), Gap(11, 12, at(11), None))
    assert history[2].last_gap == Gap(11, 12, at(11), None)
    assert history[2].last_gap.blocks == 2
    assert history[3].gaps == (Gap(8, 8, at(8), at(9)),)


def test_it_reads_a_fixed_number_of_the_newest_blocks_in_one_query(chain: Chain) -> None:
    with CaptureQueriesContext(connection) as queries:
        history = signing_histories([0, 1, 2, 3], blocks=5)
    assert len(queries) == 1
    assert [mark.height for mark in history[2].marks] == [8, 9, 10, 11, 12]
    assert history[2].gaps == (Gap(11, 12, at(11), None),)
    assert history[3].gaps == (Gap(8, 8, at(8), at(9)),)  # the oldest block shown


def test_a_block_not_projected_breaks_a_gap_rather_than_counting_as_missed(chain: Chain) -> None:
    BlockRecord.objects.filter(height=12).delete()
    BlockRecord.objects.filter(height=5).delete()
    history = signing_histories([2])[2]
    assert [mark.height for mark in history.marks] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert history.gaps == (Gap(4, 4, at(4), at(6)), Gap(11, 11, at(11), None))


def test_the_validator_list_carries_each_history_and_the_newest_block_signed(
    chain: Chain,
) -> None:
    views = {view.index: view for view in validator_list(now=at(12) + timedelta(seconds=1))}
    assert views[2].history == signing_histories([2])[2]
    assert (views[2].signed_height, views[2].signed_at) == (10, at(10))
    assert (views[3].signed_height, views[0].signed_height) == (12, 12)
    # Up is judged from the commits: 2 last signed 11 s ago (more than 10), with no heartbeat.
    assert {index for index, view in views.items() if view.up} == {0, 1, 3}


def test_the_consoles_rows_show_each_history_as_marks_and_words(
    chain: Chain, grid_operator: User
) -> None:
    html = logged_in(grid_operator).get(reverse("ledger-validator-rows")).content.decode()
    row = html[html.index('<tr data-validator="2">') : html.index('<tr data-validator="3">')]
    signed = re.search(r'<td data-testid="validator-signed">(.*?)</td>', row, re.S)
    assert signed is not None
    assert " ".join(signed[1].split()) == (
        f"8 of the last 12 blocks (1{TO}12); missed 4{TO}5, 11{TO}12. Newest signed: block 10. "
        "Proposed 3."
    )
    # One mark per block, oldest first, hidden from screen readers: the words say it all.
    # Compactly, for static/js/signing.js to draw (tests/browser/test_validator_health.py).
    strip = re.search(
        r'<div class="signing-strip" aria-hidden="true" data-validator="2" '
        r'data-heights="([0-9,-]+)" data-signed="([01]+)" data-proposers="([0-9,]+)"></div>',
        row,
    )
    assert strip is not None
    assert strip[1] == "1-12"
    assert [c == "1" for c in strip[2]] == [h not in MISSED[2] for h in range(1, 13)]
    proposers = strip[3].split(",")
    assert [height for height, p in enumerate(proposers, 1) if p == "2"] == [2, 6, 10]
    assert len(row) < 3_000  # the row stays small however many blocks its strip shows
    gap = re.search(r'<p class="help" data-testid="validator-gap">(.*?)</p>', row, re.S)
    assert gap is not None
    words = " ".join(re.sub(r"<[^>]+>", "", gap[1]).split())
    assert words == (
        f"Last seen down: {at(11):%Y-%m-%d %H:%M:%S} (block 11); not in a certificate since."
    )
    three = html[html.index('<tr data-validator="3">') :]
    assert f"11 of the last 12 blocks (1{TO}12); missed 8." in " ".join(three.split())
    assert f'up again: <time datetime="{at(9).isoformat()}">' in three
    console = logged_in(grid_operator).get(reverse("operator-console")).content.decode()
    assert '<th scope="col">Signed, of the last 60 blocks</th>' in console
