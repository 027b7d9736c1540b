from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger import config, services
from ledger.audit import RepairFailed, repair_store, verify_store
from ledger.genesis import Genesis, GenesisError
from ledger.store import ProtocolMismatch, StoreLocked, open_store


class Command(BaseCommand):
    help = "The ledger's operator tools: create the network, verify and repair a store, status."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        genesis = sub.add_parser("genesis", help="create validator keys, genesis and stores")
        genesis.add_argument("--validators", type=int, default=4, help="3f+1 validators")
        genesis.add_argument("--chain", help="the network id (default: LEDGER_CHAIN_ID)")
        verify = sub.add_parser("verify", help="re-check a store end to end")
        verify.add_argument("--node", type=int, required=True)
        repair = sub.add_parser("repair", help="restore a store from its peers (node stopped)")
        repair.add_argument("--node", type=int, required=True)
        sub.add_parser("status", help="each store's height and tip")
        self._sub = sub

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "genesis":
            try:
                genesis = services.genesis_create(
                    validators=options["validators"], chain=options["chain"]
                )
            except (services.GenesisExists, ValueError) as error:
                raise CommandError(str(error)) from None
            self.stdout.write(
                f"network {genesis.chain}: {len(genesis.validators)} validators, genesis "
                f"{genesis.block_hash}"
            )
            return
        genesis = self._genesis()
        if action == "status":
            for index in range(len(genesis.validators)):
                store = open_store(config.store_url(index))
                tip = store.tip()
                self.stdout.write(
                    f"validator {index}: height {store.height()} tip {tip.hash if tip else '-'}"
                )
                store.close()
            return
        node = options["node"]
        if not 0 <= node < len(genesis.validators):
            raise CommandError(f"--node must be 0..{len(genesis.validators) - 1}")
        store = open_store(config.store_url(node))
        try:
            store.check_protocol()
            if action == "verify":
                report = verify_store(store, genesis, config.registry())
                self.stdout.write(report.describe())
                if not report.ok:
                    raise CommandError(
                        f"validator {node}'s store is damaged at height "
                        f"{report.bad_height}: {report.reason}"
                    )
            else:
                self._repair(store, genesis, node)
        except ProtocolMismatch as error:
            raise CommandError(str(error)) from None
        finally:
            store.close()

    def _genesis(self) -> Genesis:
        path = config.genesis_path()
        if not path.exists():
            raise CommandError(f"no network here: {path} is missing (run `ledger genesis`)")
        try:
            return Genesis.from_json_file(path)
        except GenesisError as error:
            raise CommandError(f"{path}: {error}") from None

    def _repair(self, store: Any, genesis: Genesis, node: int) -> None:
        try:
            store.lock(f"repairing validator {node}'s store")
        except StoreLocked as error:
            raise CommandError(str(error)) from None
        peers = [
            open_store(config.store_url(i)) for i in range(len(genesis.validators)) if i != node
        ]
        try:
            report = repair_store(store, genesis, config.registry(), peers)
        except RepairFailed as error:
            raise CommandError(f"repair failed: {error}") from None
        finally:
            for peer in peers:
                peer.close()
        self.stdout.write(f"before: {report.before.describe()}")
        self.stdout.write(f"copied {report.copied} blocks from peers")
        self.stdout.write(f"after: {report.after.describe()}")
        if not report.after.ok:
            raise CommandError("the store is still damaged after repair")
