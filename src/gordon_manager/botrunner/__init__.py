"""Bot runner: the IO-free bar loop a bot process wraps."""

from gordon_manager.botrunner.bar_loop import BarLoop, LoopEvent

__all__ = ["BarLoop", "LoopEvent"]
