"""Money from energy and prices: the market's one rounding rule.

No Django import. Energy is integer Wh, prices integer minor units per kWh, money integer minor
units, so a value is ``energy_wh * price / 1000`` and a share of it ``... * bps / 10 000``.

**The rounding rule: every division rounds down** (towards zero; every quantity here is
non-negative), once, at the end: ``value = energy_wh * price // 1000``, never a float.

Why down: rounding down is superadditive, ``v(a) + v(b) <= v(a + b)``, so splitting an order
into several contracts never costs more than the whole. The margin locked for an order is always
enough for every contract it becomes, whatever the fills; rounding half up would let an order of
3 Wh at 500/kWh (value 1.5, locked 2) fill as three 1 Wh contracts of 0.5 -> 1 each (3 > 2).
Rounding is in the payer's favour by less than one minor unit per contract.

Energy itself comes in whole steps of its carrier (``energy_step_wh``, ``market.chain.options``:
1 Wh, or e.g. 1 kWh for heat): orders, offers and acceptances are refused off the step
(``energy_not_in_steps``, ``market.chain.terms.check_steps``), and energy the market computes,
a match tailored to a segment's headroom or a call auction's allocation, is rounded down to the
step (``market.chain.terms.in_steps``) before any money is computed from it here.
"""

from __future__ import annotations

from market.chain.options import BPS

WH_PER_KWH = 1_000


def value(energy_wh: int, price: int) -> int:
    """What ``energy_wh`` costs at ``price`` minor units per kWh, rounded down."""
    return energy_wh * price // WH_PER_KWH


def buyer_margin(energy_wh: int, price: int, network_fee: int) -> int:
    """A buyer's escrow: the full price of the energy plus the network fee, rounded down once.

    Settlement pays ``value(e, price) + value(e, network_fee)``, which is never more (two
    roundings down never exceed one).
    """
    return value(energy_wh, price + network_fee)


def seller_deposit(energy_wh: int, price: int, deposit_bps: int) -> int:
    """A seller's security deposit: ``deposit_bps`` basis points of the value, rounded down once."""
    return energy_wh * price * deposit_bps // (WH_PER_KWH * BPS)


def share(amount: int, bps: int) -> int:
    """``bps`` basis points of ``amount``, rounded down (for penalties at settlement)."""
    return amount * bps // BPS
