"""Property tests: the engine's vectorized trigger search agrees with per-bar processing, and the
ledger never drifts (round-trip net PnLs add up to the cash change exactly)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gordon_manager.execution import Bar, Fill, OrderType, Rejection, RoundTrip, Side

from .helpers import D, model


@st.composite
def bar_paths(draw: st.DrawFn, min_size: int = 2, max_size: int = 30) -> list[Bar]:
    n = draw(st.integers(min_size, max_size))
    cents = draw(st.lists(st.integers(-300, 300), min_size=n, max_size=n))
    wicks = draw(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), min_size=n, max_size=n))
    price, bars = 10_000, []
    for i, (step, (up, down)) in enumerate(zip(cents, wicks, strict=True)):
        o = price
        c = max(100, o + step)
        h, lo = max(o, c) + up, max(1, min(o, c) - down)
        bars.append(Bar(i * 60_000, o / 100, h / 100, lo / 100, c / 100, 1.0))
        price = c + draw(st.integers(-50, 50)) if i % 7 == 6 else c  # occasional gaps
    return bars


order_specs = st.tuples(
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from([OrderType.LIMIT, OrderType.STOP, OrderType.MARKET]),
    st.integers(8_000, 12_000),
)


@settings(max_examples=150, deadline=None)
@given(bars=bar_paths(), spec=order_specs)
def test_next_trigger_matches_bar_by_bar(bars: list[Bar], spec: tuple) -> None:
    side, order_type, cents = spec
    per_bar, vectorized = model(initial_cash=D(10**9)), model(initial_cash=D(10**9))
    for m in (per_bar, vectorized):
        if side is Side.SELL:  # give the sell something to sell
            m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=-2)
            m.process_bar(Bar(-1, 100, 100, 100, 100))
        price = None if order_type is OrderType.MARKET else Decimal(cents) / 100
        m.submit(side=side, order_type=order_type, qty=D(1), ts=bars[0].ts, price=price)
    first = next((i for i, b in enumerate(bars) if per_bar.process_bar(b)), None)
    cols = {k: np.array([getattr(b, k) for b in bars]) for k in ("ts", "open", "high", "low")}
    found = vectorized.next_trigger(ts=cols["ts"], open_=cols["open"], high=cols["high"], low=cols["low"],
                                    start=0, stop=len(bars))
    assert found == first


actions = st.lists(
    st.tuples(st.sampled_from(["buy", "sell", "bracket", "limit"]), st.integers(1, 5000)),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(bars=bar_paths(min_size=5, max_size=40), plan=actions)
def test_ledger_is_exact(bars: list[Bar], plan: list[tuple[str, int]]) -> None:
    m = model(initial_cash=D(1000))
    fills: list[Fill] = []
    trips: list[RoundTrip] = []
    closed_at = 0
    for i, b in enumerate(bars):
        for ev in m.process_bar(b):
            if isinstance(ev, Fill):
                fills.append(ev)
            elif isinstance(ev, RoundTrip):
                trips.append(ev)
                closed_at = len(fills)
            else:
                assert isinstance(ev, Rejection)
        assert m.cash >= 0 and m.position >= 0
        kind, milli = plan[i % len(plan)]
        qty = Decimal(milli) / 1000
        close = Decimal(repr(b.close))
        if kind == "buy":
            m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=qty, ts=b.ts)
        elif kind == "bracket":
            m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=qty, ts=b.ts,
                     stop_loss=close * D("0.99"), take_profit=close * D("1.01"))
        elif kind == "limit":
            m.submit(side=Side.BUY, order_type=OrderType.LIMIT, qty=qty, ts=b.ts, price=close * D("0.995"))
        elif m.position > 0:
            m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=qty, ts=b.ts, reduce_only=True)
    assert m.fees_paid == sum((f.fee for f in fills), D(0))
    buys = sum((f.notional + f.fee for f in fills if f.side is Side.BUY), D(0))
    sells = sum((f.notional - f.fee for f in fills if f.side is Side.SELL), D(0))
    assert m.cash == D(1000) - buys + sells
    assert m.position == sum((f.qty if f.side is Side.BUY else -f.qty for f in fills), D(0))
    # Closed trips account for every cash unit they moved; the open trip's fills for the rest.
    open_flow = sum((f.notional - f.fee if f.side is Side.SELL else -(f.notional + f.fee)
                     for f in fills[closed_at:]), D(0))
    assert m.cash - D(1000) == sum((t.net_pnl for t in trips), D(0)) + open_flow
    assert (m.position == 0) == (closed_at == len(fills))
    for t in trips:
        assert t.net_pnl == t.gross_pnl - t.fees and t.duration_ms == t.exit_ts - t.entry_ts
