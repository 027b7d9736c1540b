"""The supervised network most of supervision's site tests share (``tests.supervision.support``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import User
from tests.ledger.site import Site
from tests.supervision.support import supervised_site


@pytest.fixture
def site(
    settings: Any,
    tmp_path: Path,
    grid_operator: User,
    regulator: User,
    prosumer: User,
    consumer: User,
    outsider: User,
) -> Site:
    """The seller (``prosumer``) on f1, the buyer (``consumer``) and the outsider on f2."""
    return supervised_site(
        settings,
        tmp_path,
        grid_operator=grid_operator,
        regulator=regulator,
        households={prosumer: "f1", consumer: "f2", outsider: "f2"},
    )
