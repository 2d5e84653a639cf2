"""Shadow-compare rules as pure functions: decision equality with tolerance, and the verdict."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gordon_manager.deploys.compare import (
    HOLD,
    allowed_divergences,
    close_enough,
    decision_from,
    decisions_match,
    evaluate,
    is_idle,
)


def buy(qty="0.5", price="100", order_type="market", reason="signal"):
    return decision_from("buy", Decimal(qty), order_type, Decimal(price), reason)


def test_missing_row_is_hold_and_holds_match():
    assert decision_from(None) is HOLD and decision_from("hold", 3) is HOLD
    assert decisions_match(HOLD, decision_from(None))
    assert HOLD.as_json() == {"side": "hold", "qty": "0", "orderType": "none", "price": None, "reason": None,
                              "position": None}


@pytest.mark.parametrize("live, cand, same", [
    (buy(), buy(), True),
    (buy(reason="signal"), buy(reason="stop"), True),  # the reason explains, it does not trade
    (buy(qty="0.5"), buy(qty="0.5000004"), True),  # within 1e-6 relative
    (buy(qty="0.5"), buy(qty="0.501"), False),
    (buy(price="100"), buy(price="100.00001"), True),
    (buy(price="100"), buy(price="100.1"), False),
    (buy(), buy(order_type="limit"), False),
    (buy(), HOLD, False),
    (HOLD, buy(), False),
    (buy(), decision_from("sell", Decimal("0.5"), "market", Decimal("100")), False),
])
def test_decisions_match(live, cand, same):
    assert decisions_match(live, cand) is same
    assert decisions_match(cand, live) is same


def test_close_enough_edges():
    assert close_enough(None, None) and not close_enough(None, Decimal(1)) and not close_enough(Decimal(1), None)
    assert close_enough(Decimal(0), Decimal("1e-13"))  # both tiny
    assert not close_enough(Decimal(0), Decimal("1e-6"))
    assert close_enough(Decimal(1), Decimal("1.01"), rel_tol=Decimal("0.02"))


def test_decision_from_coerces_floats_and_strings():
    d = decision_from("sell", 0.25, None, "101.5", None)
    assert d.qty == Decimal("0.25") and d.price == Decimal("101.5") and d.order_type == "market"
    assert d.as_json()["qty"] == "0.25"


@pytest.mark.parametrize("window, threshold, allowed", [
    (60, 0.95, 3), (20, 1.0, 0), (10, 0.0, 10), (100, 0.99, 1), (7, 0.5, 3), (3, 0.34, 1)])
def test_allowed_divergences(window, threshold, allowed):
    assert allowed_divergences(window, threshold) == allowed


def verdict(bars, matches, divergences, *, window=20, max_window=100, min_actions=5, threshold=1.0):
    return evaluate(bars=bars, matches=matches, divergences=divergences, window=window, max_window=max_window,
                    min_actions=min_actions, threshold=threshold)


def test_verdicts():
    assert verdict(10, 5, 0).action == "continue"  # the window is not walked yet
    assert verdict(20, 5, 0).action == "promote"  # walked, with min_actions agreeing action bars
    # walked but short of evidence: the window extends, then ends inconclusive at max_window
    assert verdict(20, 2, 0).action == "continue" and verdict(99, 4, 0).action == "continue"
    end = verdict(100, 4, 0)
    assert end.action == "inconclusive" and "only 4 action bars in 100 bars" in end.reason and "5 needed" in end.reason
    assert verdict(100, 0, 0).action == "inconclusive"  # a candidate that never trades
    # a divergence is caught when it comes, not at the end of the window
    abort = verdict(3, 2, 1)
    assert abort.action == "abort" and "1 of 3 action bars diverge" in abort.reason
    # at 0.95 over at least 20 action bars one divergence is allowed, two are not
    assert verdict(20, 19, 1, min_actions=20, threshold=0.95).action == "promote"
    assert verdict(10, 8, 2, min_actions=20, threshold=0.95).action == "abort"
    # with few action bars so far, min_actions is the basis: 1 divergence in 4 at 0.8 over 5 is allowed
    assert verdict(5, 3, 1, threshold=0.8).action == "continue"


def test_idle_bars_are_no_evidence_and_positions_are_compared():
    assert is_idle(HOLD, decision_from(None)) and not is_idle(buy(), HOLD)
    assert decisions_match(HOLD.at("1.5"), HOLD.at("1.5")) and not decisions_match(HOLD.at("1.5"), HOLD.at("0"))
    assert not decisions_match(buy().at("0"), buy().at("0.5"))
    assert buy().at("0.25").as_json()["position"] == "0.25" and HOLD.as_json()["position"] is None


@given(actions=st.integers(1, 500), basis_points=st.integers(0, 10_000), divergences=st.integers(0, 500),
       min_actions=st.integers(1, 50))
def test_promote_iff_enough_action_bars_reach_the_threshold(actions, basis_points, divergences, min_actions):
    divergences = min(divergences, actions)
    result = evaluate(bars=1000, matches=actions - divergences, divergences=divergences, window=1000,
                      max_window=1000, min_actions=min_actions, threshold=basis_points / 10_000)
    # exact rational arithmetic: "enough action bars and match rate >= threshold", no float artefacts
    enough = actions >= min_actions
    rate_ok = Fraction(actions - divergences, actions) >= Fraction(basis_points, 10_000)
    assert (result.action == "promote") == (enough and rate_ok)
    assert result.action in ("promote", "abort", "inconclusive")
