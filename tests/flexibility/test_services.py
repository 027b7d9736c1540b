"""The site's beat ends trading for slots with open requirements: the market's own clearing looks
at orders and offers only, and a slot whose requirement was left open could never settle."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from flexibility import services
from flexibility.models import Requirement
from gridplatform.accounts.models import User
from ledger.projection import datetime_of_ms
from tests.flexibility.support import SLOT_MS, History, commit_pending
from tests.ledger.chains import OPERATOR
from tests.ledger.site import Site

pytestmark = pytest.mark.django_db
GATE = timedelta(minutes=5)


def test_a_slot_whose_requirement_was_left_open_is_cleared_once_after_its_gate(
    site: Site, operator: User
) -> None:
    history = History(site)
    slot_ms = (history.at // SLOT_MS + 4) * SLOT_MS  # an hour after the last block: past now
    post = site.sign(
        OPERATOR,
        "market.requirement.post",
        slot=slot_ms,
        feeder="north",
        direction="import",
        energy_wh=1_000,
        price=50,
    )
    history.commit([post])
    slot = datetime_of_ms(slot_ms)
    assert services.slots_due_for_clearing(now=slot - GATE - timedelta(seconds=1)) == []
    assert services.slots_due_for_clearing(now=slot - GATE) == [slot]

    (sent,) = services.slots_clear(operator=operator, now=timezone.now())
    assert (sent.type, sent.payload) == ("market.slot.clear", {"slot": slot_ms})
    assert services.slots_clear(operator=operator, now=timezone.now()) == []  # pending already
    commit_pending(site)
    assert Requirement.objects.get(id=post.id).status == "expired"
    assert services.slots_due_for_clearing(now=timezone.now()) == []
