"""Bars carried by the new-bars hint, taken instead of a query when they continue the bot's last bar.

The ``klines`` NOTIFY (migration 0030; relayed on NATS by ``events/hints.py``, or LISTENed to by a
bot without NATS) carries the bar when an insert statement wrote one closed bar of a market, with
the open time of the newest bar before it: ``"PREV_TS [TS,O,H,L,C,V]"`` (epoch ms). A bot whose last
bar is ``PREV_TS`` needs no query to know that the bar is the next one: the inserting transaction
saw no bar in between, and the bot would not see one either (it reads from its last bar on, and a
bar committed later with an older open time is skipped by the query as well). Anything else — a
hint without a bar, a bar that does not continue the bot's, a lost hint — leaves the bot to query,
as it always did, so hints change where a bar comes from, never which bars a bot trades.
"""

from __future__ import annotations

import math

import orjson

from gordon_manager.execution import Bar

MAX_HELD = 16  # hints kept for a bot busy with earlier bars (a few seconds of 1 s bars)


def parse(body: bytes | str) -> tuple[int, Bar] | None:
    """``(prev_ts, bar)`` from a hint's body, or None when it carries no usable bar."""
    prev, _, bar = (body.decode() if isinstance(body, bytes) else body).partition(" ")
    if not bar:
        return None
    try:
        prev_ts = int(prev)
        values = orjson.loads(bar)
    except (ValueError, orjson.JSONDecodeError):
        return None
    if (not isinstance(values, list) or len(values) != 6 or type(values[0]) is not int
            or not all(type(v) in (int, float) and math.isfinite(v) for v in values[1:])):
        return None  # NaN or infinity print as strings in JSON: the query reads such a bar
    ts, o, h, low, c, v = values
    return prev_ts, Bar(ts, float(o), float(h), float(low), float(c), float(v))


class HintedBars:
    """The bars hints announced, by the open time of the bar before each."""

    def __init__(self) -> None:
        self._after: dict[int, Bar] = {}

    def __len__(self) -> int:
        return len(self._after)

    def add(self, body: bytes | str) -> None:
        parsed = parse(body)
        if parsed is None:
            return
        prev_ts, bar = parsed
        if len(self._after) >= MAX_HELD:
            self._after.pop(min(self._after))
        self._after[prev_ts] = bar

    def take(self, last_ts: int) -> list[Bar]:
        """The bars that continue ``last_ts``, oldest first (empty: query); hints they passed are dropped."""
        bars = []
        while (bar := self._after.pop(last_ts, None)) is not None:
            bars.append(bar)
            last_ts = bar.ts
        for prev_ts in [p for p in self._after if p < last_ts]:
            del self._after[prev_ts]
        return bars

    def clear(self) -> None:
        self._after.clear()
