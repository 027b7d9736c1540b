from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gridplatform import simulation


class Command(BaseCommand):
    help = (
        "Drive the demo community: every demo household's meter reports each minute through the "
        "real meters API, and standing rules trade on the readings. Runs until stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the site's base URL")
        parser.add_argument("--once", action="store_true", help="send one round and stop")

    def handle(self, *args: Any, **options: Any) -> None:
        simulation.run(options["url"].rstrip("/"), once=options["once"])
