"""Shadow-compare as pure functions: did the candidate act as the live bot did, and what now.

A bar both bots processed has, for each bot, either a decision row or none ("hold"), and the
position each held after it. Only *action bars* are evidence: bars where at least one bot decided
something. A bar where both hold is skipped (``idle``): two strategies that rarely trade would
otherwise "agree" on almost every bar. On an action bar the two agree when side, order type,
quantity and price match (quantities and prices within a relative tolerance, Decimal arithmetic on
both sides, so 0.1 + 0.2 style float noise never counts) and so do the positions after the bar.
``reason`` is recorded with a divergence but not compared: it explains, it does not trade. Cancels
follow from these (an exit cancels its bracket), so a different cancel shows as a different
decision or position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

REL_TOL = Decimal("1e-6")
_ABS_TOL = Decimal("1e-12")  # two zero-ish quantities match; a relative tolerance of 0 is useless there


@dataclass(frozen=True)
class BotDecision:
    """One bot's decision at one bar (side 'hold' when it wrote no row), and its position after it."""

    side: str = "hold"
    qty: Decimal = Decimal(0)
    order_type: str = "none"
    price: Decimal | None = None
    reason: str | None = None
    position: Decimal | None = None

    def as_json(self) -> dict[str, Any]:
        """What a divergence row stores (strings for decimals: no float rounding in the evidence)."""
        return {"side": self.side, "qty": str(self.qty), "orderType": self.order_type,
                "price": None if self.price is None else str(self.price), "reason": self.reason,
                "position": None if self.position is None else str(self.position)}

    def at(self, position: Any) -> BotDecision:
        """This decision with the position held after the bar."""
        return replace(self, position=None if position is None else _dec(position))


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
    """True when the candidate did what the live bot did on this bar (and holds the same after it)."""
    if live.side != candidate.side:
        return False
    if live.position is not None and candidate.position is not None \
            and not close_enough(live.position, candidate.position, rel_tol):
        return False
    if live.side == "hold":
        return True
    return (live.order_type == candidate.order_type and close_enough(live.qty, candidate.qty, rel_tol)
            and close_enough(live.price, candidate.price, rel_tol))


def is_idle(live: BotDecision, candidate: BotDecision) -> bool:
    """Neither bot acted: not evidence either way."""
    return live.side == "hold" and candidate.side == "hold"


@dataclass(frozen=True)
class Verdict:
    """What the controller does after a compare tick: keep comparing, promote, or abort (with why)."""

    action: str  # continue | promote | abort | inconclusive
    reason: str | None = None


def allowed_divergences(window: int, threshold: float) -> int:
    """Divergences the window tolerates: more can never end at or above the threshold."""
    # Rounding first: 0.95 × 60 must need 57 matches, whatever the float product's last digit says.
    needed = math.ceil(round(threshold * window, 9))
    return max(0, window - needed)


def effective_max_window(max_window: int | None, compare_window: int) -> int:
    """A deploy's maxWindow: never below its compare window (NULL, from other writers or older rows,
    means the compare window)."""
    return max(max_window or 0, compare_window)


def has_evidence(*, matches: int, divergences: int, min_actions: int, threshold: float) -> bool:
    """At least ``min_actions`` action bars, agreeing at or above ``threshold``."""
    actions = matches + divergences
    return actions >= min_actions and divergences <= allowed_divergences(actions, threshold)


def evaluate(*, bars: int, matches: int, divergences: int, window: int, max_window: int, min_actions: int,
             threshold: float) -> Verdict:
    """The decision after ``bars`` bars walked, ``matches`` + ``divergences`` of them action bars.

    * abort as soon as the divergences exceed what ``threshold`` allows over the action bars so far,
      counted as at least ``min_actions`` (one wrong action in the first few is already too many
      at a strict threshold; a divergence is caught when it comes, not at the end of the window);
    * promote once the ``window`` is walked with at least ``min_actions`` action bars (the rate is
      then at or above ``threshold``, or the first rule would have aborted);
    * without that evidence the window extends, up to ``max_window`` bars: then ``inconclusive``.
    """
    actions = matches + divergences
    allowed = allowed_divergences(max(actions, min_actions), threshold)
    if divergences > allowed:
        return Verdict("abort", f"{divergences} of {actions} action bars diverge: more than the {allowed} "
                                f"match threshold {threshold:g} allows over {max(actions, min_actions)} "
                                f"action bars")
    if bars < window:
        return Verdict("continue")
    if actions >= min_actions:
        return Verdict("promote")
    if bars >= max_window:
        return Verdict("inconclusive", f"only {actions} action bars in {bars} bars compared ({min_actions} "
                                       f"needed): not enough evidence to promote")
    return Verdict("continue")
