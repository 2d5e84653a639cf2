"""A buy with no cash left (a restored ledger, or live fills that spent it) is rejected, not clipped."""

from __future__ import annotations

from decimal import Decimal

from gordon_manager.execution import Bar, OrderType, Rejection, Side

from .helpers import D, model


def test_a_buy_without_cash_is_rejected() -> None:
    m = model(initial_cash=D(100))
    m.restore(cash=Decimal(0), position=Decimal(0), fees_paid=Decimal(0))
    order = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0)
    assert m.process_bar(Bar(1, 100.0, 100.0, 100.0, 100.0)) == [Rejection(order.id, 1, "insufficient_cash")]
