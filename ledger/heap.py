"""A validator's memory and Python's cyclic garbage collector.

A validator keeps the whole ledger state in memory: on a community of thousands, hundreds of
thousands to millions of dicts, lists and trie nodes that live for as long as the process and
never form a cycle (the state is JSON values; the trie's nodes point down only). Python's cyclic
collector does not know that: every full collection walks every container object alive, and
full collections come about as often as the work allocates, so a validator holding twice the
state (two carriers' books and contracts, a larger community) would spend twice as long on each
and pay for its state's size in every block it executes.

:class:`Heap` takes the committed state out of the collector's way, as a validator commits it:

- after each committed block (:meth:`Heap.committed`), a collection of what is not frozen
  (what this block and its messages allocated: the cyclic garbage among it is freed now) and then
  ``gc.freeze()``: what survived it is the committed state and the process's long-lived objects,
  moved to the permanent generation that no collection walks. An object frozen there is still
  freed by reference counting when the state drops it (a settled contract, a filled order);
- every ``sweep_every`` committed blocks, a full sweep (``gc.unfreeze()``, a collection of
  everything, ``gc.freeze()`` again): an object in flight when a block was committed (a message
  being handled, an exception's frames) that later became part of cyclic garbage would
  otherwise never be freed. The sweep costs one walk of the whole heap (about a second per
  million state keys), once per ``sweep_every`` blocks instead of at every full collection.

This is memory management only: nothing here changes what a validator executes or stores.
``ledger.runtime`` calls it after every input that committed a block; the market benchmark
(``bench/market/run.py``) calls the same after each block it applies, so that its figures are
what a validator pays.
"""

from __future__ import annotations

import gc

SWEEP_EVERY = 3_600  # committed blocks between full sweeps (an hour at a block a second)


class Heap:
    """The collector policy of one validator process (see the module docstring)."""

    def __init__(self, sweep_every: int = SWEEP_EVERY) -> None:
        if sweep_every < 1:
            raise ValueError("sweep_every must be at least 1")
        self.sweep_every = sweep_every
        self.blocks = 0
        self.sweeps = 0

    def loaded(self) -> None:
        """The state was just loaded (or rebuilt): freeze it after a full collection."""
        gc.collect()
        gc.freeze()

    def committed(self, blocks: int = 1) -> None:
        """``blocks`` blocks (one, or more when catching up) were committed and applied."""
        before, self.blocks = self.blocks, self.blocks + blocks
        if self.blocks // self.sweep_every > before // self.sweep_every:
            self.sweeps += 1
            gc.unfreeze()
        gc.collect()
        gc.freeze()
