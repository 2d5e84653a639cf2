"""Backtests: the vectorized engine and its statistics."""

from gordon_manager.backtests.engine import BacktestCancelled, BacktestResult, run_backtest
from gordon_manager.stats import BacktestStats, compute_stats

__all__ = ["BacktestCancelled", "BacktestResult", "BacktestStats", "compute_stats", "run_backtest"]
