"""The uniform clearing price of a call auction (``market.call_auction`` = 1).

No Django import. Pure arithmetic over the aggregated book; ``market.chain.contract`` applies it at
``market.slot.clear``.

Rule. Bids are taken from the highest price down, asks from the lowest up, and crossed while the
bid's price is at least the ask's: the volume matched this way is the largest any single price
can clear. Every price ``p`` in ``[low, high]`` clears exactly that volume, where

* ``low``  = the higher of the last matched ask's price and the best unmatched bid's price,
* ``high`` = the lower of the last matched bid's price and the best unmatched ask's price

(an unmatched bid or ask is a level, or the rest of one, the crossing did not reach). **Tie rule:
the clearing price is the midpoint of that range, rounded down**: ``(low + high) // 2``. Every
matched bid pays it (pay-as-clear), however much more it offered; every matched ask receives it.
At that price the rationed side (the one with more volume at the margin) is served in price-time
priority.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Clearing(NamedTuple):
    price: int
    volume_wh: int


def clearing_price(
    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]]
) -> Clearing | None:
    """The clearing price and volume of price levels ``(price, energy_wh)`` given best first
    (bids descending, asks ascending); None when no bid reaches any ask."""
    i = j = 0
    bid_left = bids[0][1] if bids else 0
    ask_left = asks[0][1] if asks else 0
    volume = last_bid = last_ask = 0
    while i < len(bids) and j < len(asks) and bids[i][0] >= asks[j][0]:
        take = min(bid_left, ask_left)
        volume += take
        last_bid, last_ask = bids[i][0], asks[j][0]
        bid_left -= take
        ask_left -= take
        if bid_left == 0:
            i += 1
            bid_left = bids[i][1] if i < len(bids) else 0
        if ask_left == 0:
            j += 1
            ask_left = asks[j][1] if j < len(asks) else 0
    if volume == 0:
        return None
    low = max(last_ask, bids[i][0]) if i < len(bids) else last_ask
    high = min(last_bid, asks[j][0]) if j < len(asks) else last_bid
    return Clearing((low + high) // 2, volume)
