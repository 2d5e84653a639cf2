"""Market data helpers: the bar containers and a seeded synthetic kline generator."""

from gordon_manager.execution.bars import Bar, Bars
from gordon_manager.marketdata.synth import generate_klines

__all__ = ["Bar", "Bars", "generate_klines"]
