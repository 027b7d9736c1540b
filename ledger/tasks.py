"""Celery as the ledger's transport. Tasks are thin: they hand a message to the validator.

Validators' tasks are always sent to one validator's own queue (``validator.<index>``); a task
that reaches the wrong process is refused rather than run there. Delivery is at least once
(``acks_late``): the consensus and the pool handle duplicates, reordering and loss.
"""

from __future__ import annotations

import os
from typing import Any

from celery import shared_task

from ledger import runtime


def _mine(index: int) -> bool:
    return os.environ.get(runtime.INDEX_VARIABLE) == str(index)


@shared_task(name="ledger.deliver", ignore_result=True, time_limit=30, soft_time_limit=25)
def deliver(index: int, message: dict[str, Any]) -> None:
    """A consensus message for validator ``index``."""
    if _mine(index):
        runtime.run("deliver", message)


@shared_task(name="ledger.submit", ignore_result=True, time_limit=30, soft_time_limit=25)
def submit(index: int, transaction: dict[str, Any]) -> str | None:
    """A signed transaction for validator ``index``'s pool; returns its admission code."""
    if _mine(index):
        code: str | None = runtime.run("submit", transaction)
        return code
    return None
