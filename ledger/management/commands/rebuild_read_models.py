"""``manage.py rebuild_read_models --node K``: the read models again, from validator K's store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger import config, projection
from ledger.blocks import Block
from ledger.store import Store, StoreError, open_store

BATCH = 500


def _blocks(store: Store, tip: int) -> Iterator[Block]:
    for start in range(0, tip + 1, BATCH):
        yield from store.blocks(start, min(start + BATCH - 1, tip))


class Command(BaseCommand):
    help = (
        "Delete the site's read models of the ledger and project every block again from "
        "validator K's store (only read), verifying and re-executing each; one transaction: "
        "if any block fails, nothing changes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--node", type=int, required=True, help="the validator to read")

    def handle(self, *args: Any, **options: Any) -> None:
        genesis = config.load_genesis()
        if genesis is None:
            raise CommandError(f"no network here: {config.genesis_path()} is missing")
        node = options["node"]
        if not 0 <= node < len(genesis.validators):
            raise CommandError(f"--node must be 0..{len(genesis.validators) - 1}")
        url = config.store_url(node)
        if (
            url.startswith("sqlite://")
            and not Path("/" + url[len("sqlite://") :].lstrip("/")).exists()
        ):
            # Opening a missing SQLite file would create it: never make a validator's store.
            raise CommandError(f"validator {node} has no store at {url}")
        try:
            store = open_store(url)
        except StoreError as error:
            raise CommandError(str(error)) from None
        try:
            tip = store.height()
            if tip < 0:
                raise CommandError(f"validator {node}'s store holds no blocks")
            height = projection.read_models_rebuild(blocks=_blocks(store, tip), genesis=genesis)
        except (projection.ProjectionRefused, StoreError) as error:
            raise CommandError(f"nothing changed: {error}") from None
        finally:
            store.close()
        self.stdout.write(f"read models rebuilt from validator {node}: blocks 0..{height}")
