"""Real validator processes (and the site's worker) for tests: the product's own processes,
each `manage.py run_validator --node K` with its own queue, key file and store (SQLite files, or
PostgreSQL databases when the suite runs against PostgreSQL), on the real Redis broker."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from gridplatform.processes import commands
from ledger import config
from ledger.crypto import Transaction, sign_transaction
from ledger.genesis import install_network
from ledger.services import transactions_submit
from ledger.store import Store, drop_database, open_store
from tests.ledger.chains import CHAIN, OPERATOR, VALIDATORS, genesis_of
from tests.processes import child_env

ROOT = Path(__file__).resolve().parents[2]


class LiveNetwork:
    def __init__(self, directory: Path, options: dict[str, int] | None = None) -> None:
        self.directory = directory
        if options is None:
            self.genesis, block = genesis_of()
        else:
            self.genesis, block = genesis_of(options=tuple(sorted(options.items())))
        tag = uuid.uuid4().hex[:10]
        if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
            db = settings.DATABASES["default"]
            server = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
            self.store_template = f"{server}/test_ledger_live_{tag}_{{node}}"
        else:
            self.store_template = f"sqlite:///{directory}/store-{{node}}.sqlite3"
        install_network(
            directory,
            genesis=self.genesis,
            block=block,
            keys=VALIDATORS,
            store_urls=[self.url(index) for index in range(4)],
        )
        # Queues from an earlier run on the same Redis would feed these validators stale votes.
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(*[config.queue_name(i) for i in range(4)])
        client.close()
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.nonces: dict[str, int] = {}

    def url(self, index: int) -> str:
        return self.store_template.replace("{node}", str(index))

    def start(self, index: int, *, file_size_limit: int = 0, **extra_env: str) -> None:
        """Start validator ``index``. With ``file_size_limit``, no file it writes may grow past
        that many bytes: its disk is full from there on (as the kernel's RLIMIT_FSIZE makes it
        for this process alone: a write past the limit fails with EFBIG)."""
        env = child_env(
            LEDGER_DIR=str(self.directory), LEDGER_STORE_URL=self.store_template, **extra_env
        )

        def limited() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        log = open(self.directory / f"validator-{index}.log", "ab")
        self.processes[index] = subprocess.Popen(
            [sys.executable, "manage.py", "run_validator", f"--node={index}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=limited if file_size_limit else None,  # no threads run here yet
        )

    def end_store_connection(self, index: int) -> None:
        """The PostgreSQL server ends validator ``index``'s connection to its store, as a
        restart of the server does."""
        import psycopg

        name = self.url(index).rsplit("/", 1)[1]
        server = self.store_template.rsplit("/", 1)[0]
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    def start_site_worker(self) -> None:
        """The site's own worker (the run command's ``worker``), on the default queue: it
        projects the blocks the validators commit into the test database's read models."""
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete("celery")  # stale notifications of an earlier run
        client.close()
        env = child_env(LEDGER_DIR=str(self.directory), LEDGER_STORE_URL=self.store_template)
        argv = commands(host="127.0.0.1", port=0, var_dir=self.directory)["worker"]
        log = open(self.directory / "site-worker.log", "ab")
        self.site_worker = subprocess.Popen(
            [*argv, "--pool=solo"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, index: int) -> None:
        process = self.processes.pop(index)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        worker = getattr(self, "site_worker", None)
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        for index in list(self.processes):
            process = self.processes.pop(index)
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def store(self, index: int) -> Store:
        return open_store(self.url(index))

    def submit(self, who: Any, type: str, **payload: Any) -> Transaction:
        nonce = self.nonces.get(who.address, 0)
        self.nonces[who.address] = nonce + 1
        tx = sign_transaction(keypair=who, chain=CHAIN, type=type, nonce=nonce, payload=payload)
        transactions_submit(transactions=[tx], validators=range(4))
        return tx

    def register(self, who: Any) -> Transaction:
        return self.submit(
            OPERATOR,
            "account.register",
            address=who.address,
            public_key=who.public_key_hex,
            role="household",
        )

    def wait(self, condition: Callable[[], bool], *, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            for index, process in self.processes.items():
                assert process.poll() is None, f"validator {index} died: {self.log(index)}"
            worker = getattr(self, "site_worker", None)
            assert worker is None or worker.poll() is None, "the site's worker died"
            assert time.monotonic() < deadline, f"{what} within {seconds} s; {self.heights()}"
            time.sleep(0.2)

    def until(self, what: str, condition: Callable[[], Any], seconds: float = 90) -> None:
        """Wait for ``condition`` on the site's database, which the site's worker writes: the
        test's connection is closed after each look, so the next one sees the worker's commits."""

        def check() -> bool:
            ok = bool(condition())
            connection.close()
            return ok

        self.wait(check, seconds=seconds, what=what)

    def committed_everywhere(self, txs: list[Transaction], nodes: list[int]) -> bool:
        for index in nodes:
            store = self.store(index)
            try:
                if any(store.locate_tx(tx.id) is None for tx in txs):
                    return False
            finally:
                store.close()
        return True

    def heights(self) -> dict[int, int]:
        result = {}
        for index in range(4):
            store = self.store(index)
            result[index] = store.height()
            store.close()
        return result

    def chains(self) -> dict[int, list[str]]:
        result = {}
        for index in range(4):
            store = self.store(index)
            result[index] = [b.hash for b in store.blocks(0, store.height())]
            store.close()
        return result

    def log(self, index: int) -> str:
        return (self.directory / f"validator-{index}.log").read_text()[-3000:]

    def drop(self) -> None:
        if not self.store_template.startswith("sqlite"):
            for index in range(4):
                drop_database(self.url(index), force=True)


@contextmanager
def running_network(
    directory: Path, settings: Any, options: dict[str, int] | None = None
) -> Iterator[LiveNetwork]:
    """Four validators and the site's worker, with the site (``settings``) pointed at them;
    ``options``: the genesis options (the market's, e.g. shorter slots)."""
    live = LiveNetwork(directory, options)
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = live.store_template
    for index in range(4):
        live.start(index)
    live.start_site_worker()
    try:
        yield live
    finally:
        live.stop()
        live.drop()
