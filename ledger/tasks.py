"""Celery as the ledger's transport. Tasks are thin: they hand a message to the validator.

Validators' tasks are always sent to one validator's own queue (``validator.<index>``); a task
that reaches the wrong process is refused rather than run there. Delivery is at least once
(``acks_late``): the consensus and the pool handle duplicates, reordering and loss.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_ready

from ledger import config, projection, read_model_audit, runtime, services


def _mine(index: int) -> bool:
    return os.environ.get(runtime.INDEX_VARIABLE) == str(index)


@shared_task(name="ledger.deliver", ignore_result=True, time_limit=30, soft_time_limit=25)
def deliver(index: int, message: str | dict[str, Any]) -> None:
    """A consensus message for validator ``index`` (its JSON text)."""
    if _mine(index):
        runtime.run("deliver", config.from_wire(message))


@shared_task(name="ledger.submit", ignore_result=True, time_limit=30, soft_time_limit=25)
def submit(index: int, transactions: str | list[Any]) -> list[str | None] | None:
    """Signed transactions for validator ``index``'s pool (the JSON text of a list of them),
    admitted in order; returns each one's admission code (None: admitted)."""
    items = config.from_wire(transactions)
    if _mine(index) and isinstance(items, list):
        codes: list[str | None] = runtime.run("submit_many", items)
        return codes
    return None


@shared_task(name="ledger.resend_blocks", ignore_result=True, time_limit=60, soft_time_limit=50)
def resend_blocks(index: int, from_height: int) -> None:
    """Validator ``index`` tells the site again of the blocks it committed from ``from_height``."""
    if _mine(index):
        runtime.run("resend", from_height)


@worker_init.connect
def _claim_store(**_: Any) -> None:
    """A validator process holds its store before it takes its first message (or leaves)."""
    if os.environ.get(runtime.INDEX_VARIABLE) is not None:
        runtime.claim_store()


@worker_ready.connect
def _start_validator(**_: Any) -> None:
    """A validator process starts its node (and clock) at once, not at its first message, so
    that after a restart it catches up even while its peers are idle."""
    if os.environ.get(runtime.INDEX_VARIABLE) is not None:
        # Two INFO lines per task ("received", "succeeded") cost a validator more than some
        # messages do; its own log (commits, view changes) stays at INFO.
        for name in ("celery.app.trace", "celery.worker.strategy"):
            logging.getLogger(name).setLevel(logging.WARNING)
        runtime.run("tick", runtime.now_ms())


# --- the site's tasks: on the default queue, run by the site's worker ----------------------------


@shared_task(name="ledger.block_committed", ignore_result=True, time_limit=120, soft_time_limit=100)
def block_committed(index: int, block: str | dict[str, Any]) -> None:
    """Validator ``index`` committed ``block`` (its JSON text, with its certificate).

    Every validator sends every block, so this runs several times per block: the projection
    verifies each copy and ignores heights it already has.
    """
    data: Any = config.from_wire(block)
    projection.block_project(block=data)
    header = data.get("header") if isinstance(data, dict) else None
    height = header.get("height") if isinstance(header, dict) else None
    if isinstance(height, int):
        services.validator_commit_record(index=index, height=height)


@shared_task(
    name="ledger.projection_catch_up", ignore_result=True, time_limit=30, soft_time_limit=25
)
def projection_catch_up() -> None:
    """Periodic: if validators report blocks the read models lack, ask one to send them again."""
    services.projection_catch_up()


@shared_task(name="ledger.pending_heal", ignore_result=True, time_limit=60, soft_time_limit=50)
def pending_heal() -> None:
    """Periodic: send again what the site holds as pending and no block has brought; give up
    what waited too long (ledger.services.pending_heal)."""
    services.pending_heal()


@shared_task(
    name="ledger.read_models_audit", ignore_result=True, time_limit=300, soft_time_limit=280
)
def read_models_audit() -> None:
    """Periodic: compare every read model with the chain, record the run; differences are
    logged at ERROR and shown on the grid operator's console (ledger.read_model_audit)."""
    read_model_audit.read_models_audit()


@shared_task(name="ledger.validator_status", ignore_result=True, time_limit=30, soft_time_limit=25)
def validator_status(
    index: int, height: int, view: int, now_ms: int, genesis_hash: str | None = None
) -> None:
    """Validator ``index``'s heartbeat: its committed height and view at ``now_ms``."""
    services.validator_status_record(
        index=index, height=height, view=view, at_ms=now_ms, genesis_hash=genesis_hash
    )
