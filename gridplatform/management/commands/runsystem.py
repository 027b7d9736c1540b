from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gridplatform import embedded_redis
from gridplatform.demo import (
    DEMO_MARKET_OPTIONS,
    DEMO_PASSWORD,
    demo_community_create,
    demo_ledger_register,
)
from gridplatform.processes import MANAGE_PY, commands, supervisor_config
from ledger import config
from ledger.genesis import Genesis, GenesisError
from ledger.services import genesis_create


class Command(BaseCommand):
    help = (
        "Run the whole system in the foreground under a process supervisor: the ASGI web "
        "server, a Celery worker, beat and the validators, each restarted if it exits, each "
        "logging to var/log/<name>.log. With --demo it first migrates and creates the demo "
        "community. Ctrl-C stops everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--demo", action="store_true", help="migrate and create the demo")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if embedded_redis.source == "system":
            raise CommandError(
                f"a system is running here already (its Redis is published in "
                f"{settings.VAR_DIR / embedded_redis.RUN_FILE}); stop it first"
            )
        if embedded_redis.source == "private":
            # Commands and shells started beside this system find its Redis there.
            embedded_redis.publish(settings.VAR_DIR, settings.REDIS_URL)
        else:
            embedded_redis.own_system()
        if options["demo"]:
            call_command("migrate", interactive=False, verbosity=0)
            logins = demo_community_create()
            if not config.genesis_path().exists():
                genesis = genesis_create(
                    validators=settings.LEDGER_VALIDATORS, options=DEMO_MARKET_OPTIONS
                )
                self.stdout.write(f"created the ledger network {genesis.chain}")
        else:
            logins = []
        if config.genesis_path().exists():
            try:  # a network of another ledger protocol cannot be run: say how to start anew
                Genesis.from_json_file(config.genesis_path())
            except GenesisError as error:
                raise CommandError(f"{config.genesis_path()}: {error}") from None
        validators = settings.LEDGER_VALIDATORS if config.genesis_path().exists() else 0
        url = f"http://{host}:{port}/"
        # Children inherit REDIS_URL, so they all share one (possibly embedded) Redis.
        processes = commands(
            host=host,
            port=port,
            var_dir=settings.VAR_DIR,
            behind_proxy=settings.SECURE_PROXY_SSL_HEADER is not None,
            validators=validators,
        )
        later = set()
        if options["demo"] and validators:
            # The demo's meters report every minute through the API; rules trade on them. Started
            # once the demo households are on the ledger.
            processes["simulator"] = [
                sys.executable,
                str(MANAGE_PY),
                "simulate_community",
                f"--url={url.rstrip('/')}",
            ]
            later.add("simulator")
        config_path = supervisor_config(settings.VAR_DIR, processes, later=later)
        self.stdout.write(
            f"starting {len(processes)} processes under supervision; their logs are in "
            f"{settings.VAR_DIR / 'log'}/<name>.log"
        )
        self.stdout.flush()
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(config_path)]
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self._wait_until_up(url + "healthz", supervisor)
            if later:
                sent = demo_ledger_register()
                if sent:
                    self.stdout.write(f"registering {sent} demo households on the ledger")
                self._control(config_path, "start", *sorted(later))
            self._announce(url, logins)
            code = supervisor.wait()
            if code != 0:
                raise CommandError(f"the process supervisor exited with {code}")
            self.stdout.write("stopped")  # it was asked to stop (Ctrl-C reaches it too)
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            # supervisord stops every process (Ctrl-C reaches it too) and then exits.
            if supervisor.poll() is None:
                supervisor.send_signal(signal.SIGTERM)
            try:
                supervisor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                supervisor.kill()

    @staticmethod
    def _control(config_path: Any, *command: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config_path), *command],
            check=False,
            stdout=subprocess.DEVNULL,
        )

    def _wait_until_up(self, url: str, supervisor: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if supervisor.poll() is not None:
                raise CommandError("the process supervisor exited during start-up")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http only)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise CommandError(f"the web process did not answer {url} within 60 s")

    def _announce(self, url: str, logins: list[Any]) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nThe grid platform is running at {url}\n"))
        if logins:
            self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
            for login in logins[:4]:
                self.stdout.write(f"  {login.role:<22} {login.email:<28} {login.name}")
            self.stdout.write(f"  ... and {len(logins) - 4} more households (see the README)")
        self.stdout.write("Press Ctrl-C to stop.\n")
