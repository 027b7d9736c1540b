"""Composition: the ledger's own transaction types and those of the applications it runs.

No Django import, and no application import either: the applications are named, as dotted
module paths, by whoever composes the node (the site reads ``settings.LEDGER_APPLICATIONS``,
like CometBFT's node main composes its ABCI app). Each named module is an application's
Django-free ``chain`` package with a ``register(registry)`` function that adds its transaction
types and hooks (``ledger.application.Registry``). Order matters: an application may use the
hooks and state of those named before it, never of those after.

A validator, ``ledger verify``, a replay and the site's admission checks all build their
registry here from the same list, so they execute with the same rules.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ledger.application import Registry, register_ledger_types


def build_registry(applications: Iterable[str]) -> Registry:
    """The ledger's types, then each application's, in the order given."""
    registry = register_ledger_types(Registry())
    for name in applications:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is None:
            raise ImportError(f"{name} has no register(registry): not a ledger application")
        register(registry)
    return registry
