"""The ledger: signed transactions, blocks, validators and consensus."""
