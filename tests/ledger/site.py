"""The site side of the ledger in tests: a network directory, and a chain the site projects.

``Site`` holds a real chain (``tests.ledger.chains``) whose genesis document is written into a
fresh ``LEDGER_DIR``; ``commit`` makes and certifies the next block (4 real validator keys) from
transactions, as the validators would, and hands it to the projection as a commit notification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from ledger import application, config
from ledger.blocks import Block, block_to_json
from ledger.crypto import Transaction, sign_transaction
from ledger.genesis import install_genesis
from ledger.identity import KeyPair
from ledger.projection import block_project
from ledger.registry import build_registry
from ledger.state import State
from ledger.store import open_store
from tests.ledger.chains import CHAIN, OPERATOR, REGULATOR, Chain, make_block


def use_network(settings: Any, directory: Path, chain: Chain) -> None:
    """Point LEDGER_DIR at ``directory`` holding ``chain``'s genesis document."""
    chain.genesis.to_json_file(directory / "genesis.json")
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"


def project(block: Block) -> bool:
    return block_project(block=block_to_json(block))


SLOT_MS = 900_000  # the test chains' market: 15-minute slots, gate closure 5 minutes before
GATE_MS = 300_000


def open_slot(site: Site) -> int:
    """A slot open for the next block (5 s after the last one) and, with room to spare, at the
    site's clock: the second one whose gate has not closed."""
    now = site.blocks[-1].timestamp_ms + 5_000
    return (now + GATE_MS) // SLOT_MS * SLOT_MS + 2 * SLOT_MS


def order(site: Site, who: KeyPair, side: str, energy_wh: int, price: int, slot: int) -> Any:
    """``who``'s signed ``market.order.place``."""
    return site.sign(
        who, "market.order.place", slot=slot, side=side, energy_wh=energy_wh, price=price
    )


def trading_site(
    settings: Any,
    directory: Path,
    households: Any,
    *,
    credits: int = 100_000,
    options: tuple[tuple[str, int], ...] = (),
) -> Site:
    """A site on a fresh recent chain (genesis ``options`` beside the defaults) whose
    ``households`` (key pairs) are registered, hold ``credits`` and sit on feeder-1: ready to
    trade."""
    from tests.ledger.chains import build_chain, recent_start_ms

    chain = build_chain(1, 1, start_ms=recent_start_ms(), options=options)
    use_network(settings, directory, chain)
    site = Site(chain)
    site.project_all()
    for who in households:
        site.register(who.address, who.public_key_hex, credits=credits)
    site.commit(
        [
            site.sign(OPERATOR, "grid.feeder.assign", address=who.address, feeder="feeder-1")
            for who in households
        ]
    )
    return site


class Site:
    """A chain, its latest state, and the next nonce of each key that signs through it."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.blocks = list(chain.blocks)
        self.state = State(chain.states[-1].to_json())
        self._issued: dict[str, int] = {}

    def project_all(self) -> None:
        for block in self.blocks:
            project(block)

    def nonce(self, who: KeyPair) -> int:
        """The next nonce for ``who``: committed, plus what this helper signed since."""
        acct = application.account(self.state, who.address)
        committed = acct["nonce"] if acct else 0
        return max(committed, self._issued.get(who.address, 0))

    def sign(
        self,
        who: KeyPair,
        type: str,
        *,
        nonce: int | None = None,
        chain: str = CHAIN,
        **payload: Any,
    ) -> Transaction:
        if nonce is None:
            nonce = self.nonce(who)
            self._issued[who.address] = nonce + 1
        return sign_transaction(keypair=who, chain=chain, type=type, nonce=nonce, payload=payload)

    def commit(self, transactions: list[Transaction], *, timestamp_ms: int | None = None) -> Block:
        """The next certified block of ``transactions``, projected; the site's state follows.

        Dated 5 s after the last block unless ``timestamp_ms`` says otherwise."""
        # The product's registry (every application's types), as the site's projection uses.
        block = make_block(
            self.blocks[-1],
            self.state,
            transactions,
            registry_=build_registry(settings.LEDGER_APPLICATIONS),
            timestamp_ms=timestamp_ms,
        )
        self.blocks.append(block)
        assert project(block)
        return block

    def write_store(self) -> None:
        """Validator 0's store holding this chain, as a validator would have written it."""
        store = open_store(config.store_url(0))
        genesis = self.chain.genesis
        install_genesis(store, genesis, self.blocks[0])
        state = genesis.genesis_state()
        state.take_changes()
        for block in self.blocks[1:]:
            application.execute(
                state,
                build_registry(settings.LEDGER_APPLICATIONS),
                block.transactions,
                chain=genesis.chain,
                height=block.height,
                timestamp_ms=block.timestamp_ms,
            )
            store.append(block, state.take_changes())
        store.close()

    def register(self, address: str, public_key: str, credits: int = 0) -> Block:
        """Register an account (a site user's identity) and give it credits, in one block."""
        txs = [
            self.sign(
                OPERATOR,
                "account.register",
                address=address,
                public_key=public_key,
                role="household",
            )
        ]
        if credits:
            txs.append(self.sign(OPERATOR, "credit.issue", to=address, amount=credits))
        return self.commit(txs)


def give_key(user: Any, keypair: KeyPair) -> None:
    """Make ``keypair`` ``user``'s custodial key (sealed as the site seals keys)."""
    from gridplatform.accounts.services import key_ring

    identity = user.identity
    identity.public_key = keypair.public_key_hex
    identity.address = keypair.address
    identity.sealed_private_key = key_ring().seal(keypair.private_key, address=keypair.address)
    identity.save()


def give_issuer_key(user: Any) -> None:
    """Make the chains' issuer key (``OPERATOR``) ``user``'s custodial key: the grid operator
    of the site then signs as the genesis issuer."""
    give_key(user, OPERATOR)


def give_regulator_key(user: Any) -> None:
    """Make the chains' regulator key (``REGULATOR``, listed in their genesis) ``user``'s
    custodial key: the site's regulator then signs as the genesis regulator."""
    give_key(user, REGULATOR)


def commit_pending(site: Site, *, timestamp_ms: int | None = None) -> Block:
    """Commit the site's pending transactions (``SubmittedTransaction``) in one block, in the
    order they were submitted, as the validators would."""
    from ledger.models import SubmittedTransaction

    rows = SubmittedTransaction.objects.order_by("id")
    return site.commit([Transaction.from_json(row.body) for row in rows], timestamp_ms=timestamp_ms)
