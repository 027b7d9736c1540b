"""What the meters tell the apps above them, without importing them.

``batch_relayed``: a stored batch went through the relay to the ledger (``meters.relay.
batch_relay``, in the site's worker, after the batch's transaction committed; sent whether or not
the relay transaction could go now). Sent, with ``sender=ReadingBatch``, only when the batch holds
readings, with the batch's latest interval:

* ``owner``: the meter's owner (``gridplatform.accounts.models.User``);
* ``start``: the start of the batch's latest reading (aware, UTC);
* ``import_wh``, ``export_wh``: that reading's energy, integer Wh;
* ``duration_s``: that reading's interval (the meter's), so that a receiver can scale it;
* ``carrier``: what the meter measures (``Meter.carrier``: ``electricity``, or ``heat``, whose
  energy is Wh thermal).

Sent with ``Signal.send``: a receiver's exception propagates to the relay's caller (the task
``meters.batch_relay``), as a direct call would. The market's standing rules listen
(``market.apps``).
"""

from __future__ import annotations

from django.dispatch import Signal

batch_relayed = Signal()
