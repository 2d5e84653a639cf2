"""Our strategies written against backtesting.py's API, for the benchmarks that run both (the bench extra).

Module level, not inside a bench's ``main``: backtesting.py's ``optimize`` pickles the strategy into its
worker processes.
"""

from __future__ import annotations

from backtesting import Strategy

from gordon_manager.strategies.indicators import sma


class SmaCross(Strategy):
    """Same rule as our sma_crossover: buy on a cross up (fast > slow after fast <= slow), close on a cross
    down; the very same SMA function."""

    fast = 10
    slow = 30

    def init(self) -> None:
        self.f = self.I(sma, self.data.Close, self.fast)
        self.s = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        f, s = self.f, self.s
        if not self.position:
            if f[-1] > s[-1] and f[-2] <= s[-2]:
                self.buy()
        elif f[-1] < s[-1] and f[-2] >= s[-2]:
            self.position.close()
