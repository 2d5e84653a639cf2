"""The risk gate a bot obeys: ``trading.risk_halt`` and the breakers of gordon-risk.

While a halt or a breaker applies to the bot it opens nothing (every entry its strategy wants is a
``entry_blocked`` event); exits, brackets and cancels still go. Scopes, on a halt's ``scope`` or a
breaker's ``data.scope`` (a BreakerEvent's ``scope``):

* ``global`` (or none): every bot;
* ``symbol:<SYMBOL>``: bots trading that symbol;
* ``bot:<id>``: that bot.

A halt applies while ``halted``; a breaker while its state is not ``closed`` (``open`` and
``half_open`` both block entries: safe by default). The database is read with every batch of bars;
breaker events from NATS ``risk.events.>`` update the gate in between, the newer of the two winning.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from gordon_manager.events.breaker import BreakerEvent

SELECT_RISK = """
SELECT 'halt' AS source, scope AS name, scope, CASE WHEN halted THEN 'open' ELSE 'closed' END AS state,
       reason, updated_at
  FROM trading.risk_halt
UNION ALL
SELECT 'breaker', breaker, coalesce(data->>'scope', 'global'), state, reason, updated_at
  FROM trading.breaker_state
"""


class RiskGate:
    """What currently blocks this bot's entries, from the database and breaker events."""

    def __init__(self, *, bot_id: int, symbol: str) -> None:
        self._scopes = {"global", f"symbol:{symbol}", f"bot:{bot_id}"}
        # (source, name) -> (scope, blocking, reason, at)
        self._state: dict[tuple[str, str], tuple[str, bool, str | None, datetime | None]] = {}

    def applies(self, scope: str | None) -> bool:
        return (scope or "global") in self._scopes

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Re-read halts and breakers (a breaker event newer than its row is kept)."""
        state = {}
        for row in await conn.fetch(SELECT_RISK):
            key = (row["source"], row["name"])
            current = self._state.get(key)
            if current is not None and current[3] is not None and row["updated_at"] < current[3]:
                state[key] = current
                continue
            state[key] = (row["scope"], row["state"] != "closed", row["reason"], row["updated_at"])
        for key, value in self._state.items():  # events for breakers the table does not hold yet
            if key[0] == "breaker" and key not in state:
                state[key] = value
        self._state = state

    def on_breaker(self, event: BreakerEvent) -> None:
        key = ("breaker", event.breaker)
        current = self._state.get(key)
        if current is not None and current[3] is not None and event.at < current[3]:
            return
        self._state[key] = (event.scope or "global", event.state != "closed", event.reason, event.at)

    def blocked(self) -> str | None:
        """Why entries are blocked now (``risk_halt:<scope>`` / ``breaker:<name>``), or None."""
        for (source, name), (scope, blocking, _reason, _at) in sorted(self._state.items()):
            if blocking and self.applies(scope):
                return f"risk_halt:{scope}" if source == "halt" else f"breaker:{name}"
        return None
