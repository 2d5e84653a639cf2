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
)


def buy(qty="0.5", price="100", order_type="market", reason="signal"):
    return decision_from("buy", Decimal(qty), order_type, Decimal(price), reason)


def test_missing_row_is_hold_and_holds_match():
    assert decision_from(None) is HOLD and decision_from("hold", 3) is HOLD
    assert decisions_match(HOLD, decision_from(None))
    assert HOLD.as_json() == {"side": "hold", "qty": "0", "orderType": "none", "price": None, "reason": None}


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


def test_verdicts():
    assert evaluate(compared=10, matches=10, divergences=0, window=20, threshold=1.0).action == "continue"
    assert evaluate(compared=20, matches=20, divergences=0, window=20, threshold=1.0).action == "promote"
    abort = evaluate(compared=5, matches=4, divergences=1, window=20, threshold=1.0)
    assert abort.action == "abort" and "1 divergences in 5 bars" in abort.reason
    assert evaluate(compared=60, matches=57, divergences=3, window=60, threshold=0.95).action == "promote"
    assert evaluate(compared=40, matches=36, divergences=4, window=60, threshold=0.95).action == "abort"
    # inconsistent counts (not produced by the controller) still never promote below the threshold
    low = evaluate(compared=20, matches=10, divergences=0, window=20, threshold=0.9)
    assert low.action == "abort" and "match rate 0.5000" in low.reason


@given(window=st.integers(1, 500), basis_points=st.integers(0, 10_000), divergences=st.integers(0, 500))
def test_promote_iff_the_final_match_rate_reaches_the_threshold(window, basis_points, divergences):
    divergences = min(divergences, window)
    verdict = evaluate(compared=window, matches=window - divergences, divergences=divergences, window=window,
                       threshold=basis_points / 10_000)
    # exact rational arithmetic: the rule is "match rate >= threshold", without float artefacts
    assert (verdict.action == "promote") == (Fraction(window - divergences, window) >= Fraction(basis_points, 10_000))
