"""The ledger's application interface and its own transaction types, on a pure State."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import application as app
from ledger.crypto import Transaction, sign_transaction, transaction_signing_bytes
from ledger.identity import KeyPair
from ledger.state import State

CHAIN = "gridplatform-test"
OPERATOR = KeyPair(private_key=bytes(range(32)))
REGULATOR = KeyPair(private_key=bytes(range(1, 33)))
ADA = KeyPair(private_key=bytes(range(2, 34)))
BEN = KeyPair(private_key=bytes(range(3, 35)))


class Ledger:
    """A single-node ledger for tests: genesis, a registry, nonces tracked per key."""

    def __init__(self) -> None:
        self.state = app.genesis_state(
            chain=CHAIN,
            issuer_public_key=OPERATOR.public_key_hex,
            regulator_public_keys=[REGULATOR.public_key_hex],
        )
        self.registry = app.register_ledger_types(app.Registry())
        self.height = 0

    def tx(self, who: KeyPair, type: str, nonce: int | None = None, **payload: Any) -> Transaction:
        if nonce is None:
            acct = app.account(self.state, who.address)
            nonce = acct["nonce"] if acct else 0
        return sign_transaction(keypair=who, chain=CHAIN, type=type, nonce=nonce, payload=payload)

    def run(self, *txs: Transaction) -> list[str]:
        self.height += 1
        return app.execute(
            self.state,
            self.registry,
            txs,
            chain=CHAIN,
            height=self.height,
            timestamp_ms=1_700_000_000_000 + self.height,
        )

    def send(self, who: KeyPair, type: str, **payload: Any) -> str:
        return self.run(self.tx(who, type, **payload))[0]

    def register(self, who: KeyPair) -> None:
        result = self.send(
            OPERATOR,
            "account.register",
            address=who.address,
            public_key=who.public_key_hex,
            role="household",
        )
        assert result == "ok"


@pytest.fixture
def ledger() -> Ledger:
    result = Ledger()
    result.register(ADA)
    result.register(BEN)
    return result


def test_it_lists_the_operator_and_regulators_in_genesis() -> None:
    state = Ledger().state
    assert app.account(state, OPERATOR.address)["role"] == "grid_operator"
    assert app.account(state, REGULATOR.address)["role"] == "regulator"
    assert app.issuer(state) == OPERATOR.address
    assert state.root() == Ledger().state.root()


def test_it_lets_the_issuer_issue_credits(ledger: Ledger) -> None:
    assert ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=5000) == "ok"
    assert app.balance(ledger.state, ADA.address) == 5000
    assert ledger.state.get("ledger/supply") == 5000


@pytest.mark.parametrize("who", [REGULATOR, ADA])
def test_it_refuses_issuing_by_anyone_else(ledger: Ledger, who: KeyPair) -> None:
    assert ledger.send(who, "credit.issue", to=ADA.address, amount=5000) == "not_allowed"
    assert app.balance(ledger.state, ADA.address) == 0
    assert ledger.state.get("ledger/supply") == 0


@pytest.mark.parametrize("who", [REGULATOR, OPERATOR])
def test_it_refuses_supervisors_moving_money(ledger: Ledger, who: KeyPair) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=100)
    assert ledger.send(who, "credit.transfer", to=BEN.address, amount=1) == "not_allowed"
    assert ledger.send(who, "credit.redeem", amount=1) == "not_allowed"
    assert app.balance(ledger.state, ADA.address) == 100


def test_it_transfers_credits_between_households(ledger: Ledger) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=1000)
    assert ledger.send(ADA, "credit.transfer", to=BEN.address, amount=400) == "ok"
    assert (app.balance(ledger.state, ADA.address), app.balance(ledger.state, BEN.address)) == (
        600,
        400,
    )


def test_it_undoes_a_failed_transaction_but_spends_its_nonce(ledger: Ledger) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=100)
    failing = ledger.tx(ADA, "credit.transfer", to=BEN.address, amount=101)
    assert ledger.run(failing) == ["insufficient_balance"]
    assert app.balance(ledger.state, ADA.address) == 100
    assert app.account(ledger.state, ADA.address)["nonce"] == 1
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=100)
    # Replaying the failed transaction later, when it would succeed, is refused.
    assert ledger.run(failing) == ["bad_nonce"]
    assert app.balance(ledger.state, BEN.address) == 0


def test_it_refuses_a_replayed_transaction(ledger: Ledger) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=1000)
    transfer = ledger.tx(ADA, "credit.transfer", to=BEN.address, amount=10)
    assert ledger.run(transfer, transfer) == ["ok", "bad_nonce"]
    assert app.balance(ledger.state, BEN.address) == 10


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"to": "01" + "0" * 48, "amount": 1}, "bad_address"),
        ({"to": KeyPair.generate().address, "amount": 1}, "unknown_account"),
        ({"to": BEN.address, "amount": 0}, "bad_amount"),
        ({"to": BEN.address, "amount": -5}, "bad_amount"),
        ({"to": BEN.address, "amount": "5"}, "bad_amount"),
        ({"to": BEN.address}, "bad_payload"),
        ({"to": BEN.address, "amount": 1, "memo": "x"}, "bad_payload"),
    ],
)
def test_it_refuses_bad_transfers_with_their_code(
    ledger: Ledger, payload: dict[str, Any], code: str
) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=100)
    root = ledger.state.root()
    assert ledger.send(ADA, "credit.transfer", **payload) == code
    assert app.balance(ledger.state, ADA.address) == 100
    assert ledger.state.root() != root  # only the nonce moved
    assert app.account(ledger.state, ADA.address)["nonce"] == 1


def test_it_refuses_transactions_that_cannot_be_attributed(ledger: Ledger) -> None:
    stranger = KeyPair.generate()
    root = ledger.state.root()
    assert ledger.run(ledger.tx(stranger, "credit.redeem", nonce=0, amount=1)) == ["unknown_sender"]
    other_chain = sign_transaction(
        keypair=ADA, chain="another-net", type="credit.redeem", nonce=0, payload={"amount": 1}
    )
    assert ledger.run(other_chain) == ["wrong_chain"]
    forged = Transaction(
        chain=CHAIN,
        type="credit.redeem",
        sender=ADA.address,
        nonce=0,
        payload={"amount": 1},
        signature=BEN.sign(b"something else"),
    )
    assert ledger.run(forged) == ["bad_signature"]
    assert ledger.run(ledger.tx(ADA, "credit.redeem", nonce=5, amount=1)) == ["bad_nonce"]
    assert ledger.state.root() == root


def test_it_registers_households_only_through_the_operator(ledger: Ledger) -> None:
    newcomer = KeyPair.generate()
    payload = {
        "address": newcomer.address,
        "public_key": newcomer.public_key_hex,
        "role": "household",
    }
    assert ledger.send(ADA, "account.register", **payload) == "not_allowed"
    assert ledger.send(OPERATOR, "account.register", **payload | {"role": "regulator"}) == (
        "bad_role"
    )
    mismatched = payload | {"address": ADA.address}
    assert ledger.send(OPERATOR, "account.register", **mismatched) == "address_key_mismatch"
    assert ledger.send(OPERATOR, "account.register", **payload) == "ok"
    assert ledger.send(OPERATOR, "account.register", **payload) == "already_registered"


def test_it_rotates_a_key_so_only_the_new_key_signs(ledger: Ledger) -> None:
    ledger.send(OPERATOR, "credit.issue", to=ADA.address, amount=50)
    new_key = KeyPair.generate()
    assert ledger.send(ADA, "key.rotate", public_key=new_key.public_key_hex) == "ok"
    assert app.account(ledger.state, ADA.address)["public_key"] == new_key.public_key_hex
    # The old key no longer signs for the address...
    assert ledger.send(ADA, "credit.redeem", amount=10) == "bad_signature"
    # ...the new one does, for the same address and balance.
    payload = {"amount": 10}
    nonce = app.account(ledger.state, ADA.address)["nonce"]
    signing = transaction_signing_bytes(
        chain=CHAIN, type="credit.redeem", sender=ADA.address, nonce=nonce, payload=payload
    )
    by_new_key = Transaction(
        chain=CHAIN,
        type="credit.redeem",
        sender=ADA.address,
        nonce=nonce,
        payload=payload,
        signature=new_key.sign(signing),
    )
    assert ledger.run(by_new_key) == ["ok"]
    assert app.balance(ledger.state, ADA.address) == 40


def test_it_refuses_a_float_in_state() -> None:
    with pytest.raises(ValueError, match="float"):
        State().set("x", 1.5)


def test_it_refuses_null_in_state_which_would_read_as_deleted() -> None:
    with pytest.raises(ValueError, match="cannot be null"):
        State().set("x", None)


def test_it_refuses_registering_a_type_twice() -> None:
    registry = app.register_ledger_types(app.Registry())
    with pytest.raises(ValueError, match="registered twice"):
        app.register_ledger_types(registry)


operations = st.lists(
    st.tuples(
        st.sampled_from(["issue", "transfer", "redeem"]),
        st.sampled_from([ADA, BEN]),
        st.integers(min_value=-3, max_value=2_000),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_it_conserves_credits_and_replays_to_the_same_root(ops: list[Any]) -> None:
    ledger = Ledger()
    ledger.register(ADA)
    ledger.register(BEN)
    blocks: list[list[Transaction]] = []
    for kind, who, amount in ops:
        if kind == "issue":
            tx = ledger.tx(OPERATOR, "credit.issue", to=who.address, amount=amount)
        elif kind == "transfer":
            other = BEN if who is ADA else ADA
            tx = ledger.tx(who, "credit.transfer", to=other.address, amount=amount)
        else:
            tx = ledger.tx(who, "credit.redeem", amount=amount)
        ledger.run(tx)
        blocks.append([tx])
        balances = [app.balance(ledger.state, k.address) for k in (ADA, BEN, OPERATOR, REGULATOR)]
        assert min(balances) >= 0
        assert sum(balances) == ledger.state.get("ledger/supply")
    # An independent replay of the same blocks gives the same state root.
    replay = Ledger()
    replay.register(ADA)
    replay.register(BEN)
    for block in blocks:
        replay.run(*block)
    assert replay.state.root() == ledger.state.root()


def test_it_reports_the_keys_a_block_changed() -> None:
    state = State({"a": 1, "b": 2})
    state.set("a", 10)
    state.delete("b")
    savepoint = state.savepoint()
    state.set("c", 3)
    state.rollback_to(savepoint)
    assert state.take_changes() == {"a": 10, "b": None, "c": None}
    assert state.take_changes() == {}


def test_it_commits_genesis_to_its_validator_set() -> None:
    def root(validators: list[str]) -> str:
        return app.genesis_state(
            chain=CHAIN,
            issuer_public_key=OPERATOR.public_key_hex,
            regulator_public_keys=[],
            validators=validators,
        ).root()

    assert root([ADA.public_key_hex]) != root([BEN.public_key_hex])
