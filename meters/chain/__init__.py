"""The meters on the ledger: meter registration and device-signed readings.

No Django import, no Celery, no site module: only the ledger's deterministic core. The lowest
application of the stack (``docs/architecture.md``): ``schema`` declares its keys and records,
``options`` its genesis option, ``metering`` its transaction types. Applications above it read
readings through ``schema`` and answer its hook ``metering.SLOT_CLOSED``.
"""

from __future__ import annotations

from ledger.application import GRID_OPERATOR, Registry
from meters.chain.metering import meter_readings, meter_register

TYPES = {
    "meter.register": meter_register,
    "meter.readings": meter_readings,
}


def register(registry: Registry) -> Registry:
    """Add ``meter.register`` and ``meter.readings`` (both sent by the grid operator)."""
    for name, handler in TYPES.items():
        registry.register(name, senders={GRID_OPERATOR}, handler=handler)
    return registry
