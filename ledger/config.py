"""The site's view of the ledger network: where its files are, its queues, its rules, its wire.

Read by every site-side ledger module and by the validator process alike (``ledger.runtime``,
``ledger.services``, ``ledger.projection``, the ``ledger`` command), so that none of them needs
another for these: settings are read at call time, never at import time.

Cross-process messages are Celery tasks named by a string (:func:`send`): the validators and the
site are different processes, and the task's name is the contract between them
(``ledger.tasks`` defines the handlers), so a sender never imports the module that handles it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from django.conf import settings

from gridplatform.celery import app
from ledger.application import Registry
from ledger.genesis import GENESIS_FILE, Genesis, key_file_name
from ledger.registry import build_registry


def queue_name(index: int) -> str:
    return f"validator.{index}"


def registry() -> Registry:
    """The rules of this network: the ledger's and ``settings.LEDGER_APPLICATIONS``'."""
    return _registry(tuple(settings.LEDGER_APPLICATIONS))


@functools.cache
def _registry(applications: tuple[str, ...]) -> Registry:
    return build_registry(applications)


def genesis_path() -> Path:
    return Path(settings.LEDGER_DIR) / GENESIS_FILE


def key_path(index: int) -> Path:
    return Path(settings.LEDGER_DIR) / key_file_name(index)


def store_url(index: int) -> str:
    return str(settings.LEDGER_STORE_URL).replace("{node}", str(index))


def wire_text(message: Any) -> str:
    """A large message as JSON text: encoded once for every queue it goes to, and carried by
    Celery as one string, which its JSON codec passes through far faster than a deep object
    (Celery's decoder calls a Python hook on every JSON object)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def from_wire(data: Any) -> Any:
    """The decoded message: text is parsed, anything else (an older sender's object) is as is.

    Not the strict ``ledger.crypto.loads``: what the validator parses (transactions, envelopes)
    checks its own values."""
    if isinstance(data, str):
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            return None
    return data


def load_genesis() -> Genesis | None:
    """The site's genesis document (``LEDGER_DIR/genesis.json``), or None when there is none."""
    path = genesis_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _genesis_at(str(path), mtime)


@functools.lru_cache(maxsize=4)
def _genesis_at(path: str, mtime_ns: int) -> Genesis:
    return Genesis.from_json_file(path)


def producer() -> Any:
    """One broker connection for several :func:`send` calls (``with config.producer() as p``)."""
    return app.producer_or_acquire()


def send(name: str, args: tuple[Any, ...], **options: Any) -> None:
    """Send the task ``name`` (``ledger.tasks``) with ``args``; ``options`` as Celery's
    ``send_task`` takes them (``queue``, ``expires``, ``producer``). No result is kept."""
    task = app.tasks.get(name)  # registered here when this process loaded ledger.tasks
    if task is not None:  # then its own options (time limits) and eager mode apply
        task.apply_async(args, **options)
    else:
        app.send_task(name, args, ignore_result=True, **options)
