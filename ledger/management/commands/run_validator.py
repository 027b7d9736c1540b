from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gridplatform.processes import validator_command
from ledger import runtime


class Command(BaseCommand):
    help = (
        "Run validator K: a Celery worker consuming only the queue validator.K, one task at a "
        "time, with its own key and store. Replaces this process (exec)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--node", type=int, required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        os.environ[runtime.INDEX_VARIABLE] = str(options["node"])
        argv = validator_command(options["node"])
        sys.stdout.flush()
        os.execv(argv[0], argv)  # noqa: S606 (argv is ours; exec so signals reach Celery)
