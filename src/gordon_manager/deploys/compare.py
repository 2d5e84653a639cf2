"""Shadow-compare as pure functions: is a candidate's decision the live bot's decision, and what now.

A bar both bots processed has, for each bot, either a decision row or none ("hold"). Two decisions
match when side, order type, quantity and price agree, quantities and prices within a relative
tolerance (Decimal arithmetic on both sides, so 0.1 + 0.2 style float noise never counts).
``reason`` is recorded with a divergence but not compared: it explains, it does not trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

REL_TOL = Decimal("1e-6")
_ABS_TOL = Decimal("1e-12")  # two zero-ish quantities match; a relative tolerance of 0 is useless there


@dataclass(frozen=True)
class BotDecision:
    """One bot's decision at one bar (side 'hold' when it wrote no row)."""

    side: str = "hold"
    qty: Decimal = Decimal(0)
    order_type: str = "none"
    price: Decimal | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        """What a divergence row stores (strings for decimals: no float rounding in the evidence)."""
        return {"side": self.side, "qty": str(self.qty), "orderType": self.order_type,
                "price": None if self.price is None else str(self.price), "reason": self.reason}


HOLD = BotDecision()


def decision_from(side: str | None, qty: Any = None, order_type: str | None = None, price: Any = None,
                  reason: str | None = None) -> BotDecision:
    """A decision from the columns of a (possibly missing: side None) bot_decisions row."""
    if side is None or side == "hold":
        return HOLD
    return BotDecision(side=side, qty=_dec(qty), order_type=order_type or "market",
                       price=None if price is None else _dec(price), reason=reason)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def close_enough(a: Decimal | None, b: Decimal | None, rel_tol: Decimal = REL_TOL) -> bool:
    """|a - b| <= rel_tol * max(|a|, |b|) (or both tiny); None only equals None."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(rel_tol * max(abs(a), abs(b)), _ABS_TOL)


def decisions_match(live: BotDecision, candidate: BotDecision, rel_tol: Decimal = REL_TOL) -> bool:
    """True when the candidate would have done what the live bot did on this bar."""
    if live.side != candidate.side:
        return False
    if live.side == "hold":
        return True
    return (live.order_type == candidate.order_type and close_enough(live.qty, candidate.qty, rel_tol)
            and close_enough(live.price, candidate.price, rel_tol))


@dataclass(frozen=True)
class Verdict:
    """What the controller does after a compare tick: keep comparing, promote, or abort (with why)."""

    action: str  # continue | promote | abort
    reason: str | None = None


def allowed_divergences(window: int, threshold: float) -> int:
    """Divergences the window tolerates: more can never end at or above the threshold."""
    # Rounding first: 0.95 × 60 must need 57 matches, whatever the float product's last digit says.
    needed = math.ceil(round(threshold * window, 9))
    return max(0, window - needed)


def evaluate(*, compared: int, matches: int, divergences: int, window: int, threshold: float) -> Verdict:
    """The decision after ``compared`` bars of a ``window``-bar compare at match ``threshold``."""
    allowed = allowed_divergences(window, threshold)
    if divergences > allowed:
        return Verdict("abort", f"{divergences} divergences in {compared} bars compared: more than the "
                                f"{allowed} a {window}-bar window at match threshold {threshold:g} allows")
    if compared < window:
        return Verdict("continue")
    rate = matches / compared
    if rate + 1e-12 < threshold:
        return Verdict("abort", f"match rate {rate:.4f} below threshold {threshold:g} after {compared} bars")
    return Verdict("promote")
