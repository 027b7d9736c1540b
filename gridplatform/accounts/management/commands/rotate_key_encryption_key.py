from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gridplatform.accounts import services
from ledger import identity


class Command(BaseCommand):
    help = (
        "Re-seal every custodial private key under the current KEY_ENCRYPTION_KEY. "
        "Rotation: generate a key (--generate), set it as KEY_ENCRYPTION_KEY, move the old one "
        "to RETIRED_KEY_ENCRYPTION_KEYS, run this command, then drop the retired key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--generate", action="store_true", help="print a fresh key-encryption key and stop"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["generate"]:
            self.stdout.write(identity.generate_key_encryption_key())
            return
        count = services.key_encryption_key_rotate()
        self.stdout.write(f"re-sealed {count} private keys under the current key-encryption key")
