"""Commands and shells talk to the running system or refuse (gridplatform.embedded_redis).

The run command publishes its embedded Redis in ``var/run/redis.url``; a process started without
``REDIS_URL`` beside it uses that Redis, so its transactions reach the validators. Alone, with a
private Redis no validator listens to, a process refuses to take transactions and says how to
reach the system, instead of leaving them pending for ever.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from gridplatform import embedded_redis
from ledger.crypto import sign_transaction
from ledger.models import SubmittedTransaction
from ledger.services import LedgerUnavailable, transaction_admit
from tests.ledger.chains import CHAIN, OPERATOR


def test_a_process_finds_the_running_systems_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_redis, "source", embedded_redis.source)
    monkeypatch.setattr(embedded_redis, "_owner", embedded_redis._owner)
    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    assert embedded_redis.system_url(tmp_path) is None  # nothing published: no system
    embedded_redis.publish(tmp_path, settings.REDIS_URL)
    published = tmp_path / embedded_redis.RUN_FILE
    assert published.stat().st_mode & 0o777 == 0o600
    assert embedded_redis.resolve(tmp_path, "") == settings.REDIS_URL
    assert embedded_redis.source == "system"
    assert os.environ["REDIS_URL"] == settings.REDIS_URL  # and the processes it starts
    assert not embedded_redis.alone()
    # A file left by a system that was killed names a Redis that no longer answers.
    published.write_text("redis://127.0.0.1:9/0\n")
    assert embedded_redis.system_url(tmp_path) is None
    # REDIS_URL, when set, wins over everything.
    assert (
        embedded_redis.resolve(tmp_path, "redis://elsewhere:6379/0") == "redis://elsewhere:6379/0"
    )
    assert embedded_redis.source == "configured"


def test_a_process_alone_refuses_transactions_and_says_how_to_reach_the_system(
    monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    monkeypatch.setattr(embedded_redis, "source", "private")
    monkeypatch.setattr(embedded_redis, "_owner", False)
    assert embedded_redis.alone()
    tx = sign_transaction(
        keypair=OPERATOR,
        chain=CHAIN,
        type="credit.issue",
        nonce=0,
        payload={"to": "x", "amount": 1},
    )
    with pytest.raises(LedgerUnavailable) as refused:
        transaction_admit(data=tx.to_json(), submitted_by=None)
    assert refused.value.code == "ledger_unavailable"
    assert "make run" in refused.value.message
    assert "REDIS_URL" in refused.value.message
    assert not SubmittedTransaction.objects.exists()
    # The process that runs the system (the run command, this test run) takes them.
    monkeypatch.setattr(embedded_redis, "_owner", True)
    assert not embedded_redis.alone()
