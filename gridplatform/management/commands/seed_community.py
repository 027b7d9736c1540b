from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gridplatform import embedded_redis
from gridplatform.demo import (
    DEMO_PASSWORD,
    SEED_DOMAIN,
    community_ledger_register,
    community_seed_create,
    demo_community_create,
)
from ledger import config


class Command(BaseCommand):
    help = (
        "Grow the demo community to a large one, for trying the consoles at scale: households "
        "'Household 00001'... (household-NNNNN@community.example, the demo password), put on "
        "the ledger by the demo grid operator (feeder, credits). Needs the running system "
        "(`make run`); safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--households", type=int, default=10_000, help="how many in all")
        parser.add_argument(
            "--no-ledger", action="store_true", help="create the accounts only (no system needed)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        households = options["households"]
        if not 0 < households <= 99_999:
            raise CommandError("--households must be between 1 and 99999")
        demo_community_create()  # the grid operator who signs the registrations
        created = community_seed_create(households)
        self.stdout.write(f"{created} new accounts @{SEED_DOMAIN} (password {DEMO_PASSWORD})")
        if options["no_ledger"]:
            return
        if embedded_redis.alone() or not config.genesis_path().exists():
            raise CommandError(
                "no system is running here: start it (`make run`), then run this again to put "
                "the households on the ledger"
            )
        try:
            registered = community_ledger_register(
                progress=lambda n: self.stdout.write(f"  {n} on the ledger")
            )
        except (TimeoutError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"{registered} households put on the ledger")
