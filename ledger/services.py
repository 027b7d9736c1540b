"""The site's writes to the ledger: creating a network, and sending signed transactions to it.

The site never writes a validator's store after genesis: it only sends transactions to the
validators' queues, and every validator decides for itself whether to admit them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.conf import settings

from gridplatform.accounts.models import Identity, Role
from gridplatform.identity import KeyPair
from ledger import runtime
from ledger.crypto import Transaction
from ledger.genesis import Genesis, create_genesis, install_genesis, write_key_file
from ledger.store import DatabaseExists, create_database, open_store


class GenesisExists(Exception):
    pass


def genesis_create(*, validators: int, chain: str | None = None) -> Genesis:
    """Create the network: validator keys (one 0600 file each), genesis.json, and every store.

    The grid operator account (the issuer of credits) and every regulator account of the site
    are the genesis members, with their identities' public keys. Refuses to overwrite a network.
    """
    directory = settings.LEDGER_DIR
    if runtime.genesis_path().exists():
        raise GenesisExists(f"{runtime.genesis_path()} exists: this site has a network already")
    operator = Identity.objects.get(user__role=Role.GRID_OPERATOR, user__is_active=True)
    regulators = Identity.objects.filter(user__role=Role.REGULATOR).order_by("id")
    keys = [KeyPair.generate() for _ in range(validators)]
    genesis, block = create_genesis(
        chain=chain or settings.LEDGER_CHAIN_ID,
        timestamp_ms=time.time_ns() // 1_000_000,
        validator_keys=keys,
        issuer_public_key=operator.public_key,
        regulator_public_keys=[r.public_key for r in regulators],
    )
    directory.mkdir(parents=True, exist_ok=True)
    for index, pair in enumerate(keys):
        write_key_file(runtime.key_path(index), pair, index, genesis.chain)
        url = runtime.store_url(index)
        try:
            create_database(url)
        except DatabaseExists:
            pass
        store = open_store(url)
        try:
            install_genesis(store, genesis, block)
        finally:
            store.close()
    genesis.to_json_file(runtime.genesis_path())
    return genesis


def transaction_submit(
    *, transaction: Transaction, validators: Sequence[int] | None = None
) -> None:
    """Send a signed transaction to every validator's queue (each admits it or not itself)."""
    from ledger.tasks import submit

    count = settings.LEDGER_VALIDATORS
    for index in validators if validators is not None else range(count):
        submit.apply_async((index, transaction.to_json()), queue=runtime.queue_name(index))
