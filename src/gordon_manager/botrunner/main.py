"""The bot process (`gordon-manager bot`): the same strategy + ExecutionModel as a backtest, bar by bar.

Environment: ``GORDON_BOT_ID``, ``GORDON_DATABASE_URL`` (role gordon_bot), ``GORDON_BOT_METRICS_PORT``
(and ``GORDON_BOT_METRICS_ADDR``, default 127.0.0.1), ``GORDON_BOT_PAUSED`` (1 = start paused),
``GORDON_BUS_NATS_URL`` (live mode), ``GORDON_BOT_POLL_S`` (how often to look for new bars).

Where it starts: a bot warms up on the last ``warmup`` stored bars and then trades every new closed
bar. A shadow bot (``shadow_of``) starts where its live bot's current run started, so both hold the
same state and decide on the same bars. Labels ``replay.speed`` (bars/s) and ``replay.from``
(RFC 3339) replay stored bars at that pace instead, for demos.

Signals: SIGTERM/SIGINT stop cleanly (the current batch commits, the run is marked stopped);
SIGUSR1 pauses: the process, its position and orders are kept but it stops consuming bars (no
decision, no order, no fill); SIGUSR2 resumes from the newest bar (bars that closed while paused are
skipped: it never trades on stale bars). Signals are the fast path; the bot also re-reads its
desired state at every heartbeat, so a signal lost during start-up (the process ignores both
signals from its first instruction until its handlers are installed) is corrected within one
heartbeat.

Modes: ``paper`` fills through the ExecutionModel; ``shadow`` does the same and exists only for
comparison; ``live`` also publishes each new decision as an order intent on NATS
(``orders.intents.<bot_id>``) for gordon-executor — the bot holds no exchange keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from gordon_manager.botrunner import store
from gordon_manager.botrunner.loop import BarLoop
from gordon_manager.botrunner.metrics import BotMetrics
from gordon_manager.db.connect import connect
from gordon_manager.errors import ConfigurationError
from gordon_manager.execution import Decision, ExecutionConfig, Fill

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
BATCH_BARS = 5000


@dataclass(frozen=True)
class BotEnv:
    """What the bot process is told through its environment."""

    bot_id: int
    database_url: str
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    paused: bool = False
    nats_url: str | None = None
    poll_s: float = 1.0

    @classmethod
    def from_environ(cls, env: dict[str, str] | None = None) -> BotEnv:
        """Read and check the environment; ConfigurationError names what is missing or wrong."""
        env = dict(os.environ if env is None else env)
        try:
            bot_id = int(env["GORDON_BOT_ID"])
            url = env["GORDON_DATABASE_URL"]
        except KeyError as exc:
            raise ConfigurationError(f"{exc.args[0]} is not set") from exc
        except ValueError as exc:
            raise ConfigurationError("GORDON_BOT_ID must be an integer") from exc
        port = env.get("GORDON_BOT_METRICS_PORT")
        return cls(bot_id=bot_id, database_url=url, metrics_port=int(port) if port else None,
                   metrics_addr=env.get("GORDON_BOT_METRICS_ADDR", "127.0.0.1"),
                   paused=env.get("GORDON_BOT_PAUSED") == "1", nats_url=env.get("GORDON_BUS_NATS_URL") or None,
                   poll_s=float(env.get("GORDON_BOT_POLL_S", "1.0")))


class BotRunner:
    """Feeds closed bars to a BarLoop and persists what happens, batch by batch."""

    def __init__(self, env: BotEnv) -> None:
        self.env = env
        self.metrics = BotMetrics()
        self.stopping = asyncio.Event()
        self.paused = env.paused
        self._resume_pending = False
        self.run_id: int | None = None
        self.bars = 0
        self._nats = None

    # -- signals -------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGUSR1, self.pause)
        loop.add_signal_handler(signal.SIGUSR2, self.resume)

    def _sync_pause(self, desired: str | None) -> None:
        """Level-triggered pause: a signal lost at start-up is corrected from the declared state."""
        if desired == "paused" and not self.paused:
            self.pause()
        elif desired == "running" and self.paused:
            self.resume()

    def pause(self) -> None:
        self.paused = True
        self.metrics.paused.set(1)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._resume_pending = True
            self.metrics.paused.set(0)

    # -- main ----------------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        conn = await connect(self.env.database_url)
        try:
            cfg = await store.load_config(conn, bot_id=self.env.bot_id)
            if cfg is None:
                logger.error("bot config not found", extra={"bot_id": self.env.bot_id})
                return 2
            loop = BarLoop(cfg["strategy"], cfg["params"], ExecutionConfig.model_validate(cfg["execution"]))
            start, speed = await self._start_point(conn, cfg, loop.window)
            if cfg["mode"] == "live":
                await self._connect_nats()
            self.run_id = await store.create_run(conn, cfg=cfg, range_start=start)
            await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="started",
                              message=f"{cfg['mode']} bot started ({cfg['strategy']} {cfg['symbol']} {cfg['interval']})",
                              data={"specVersion": cfg["spec_version"], "paused": self.paused})
            if self.env.metrics_port:
                self.metrics.serve(self.env.metrics_port, self.env.metrics_addr)
            self.metrics.up.set(1)
            self.metrics.paused.set(1 if self.paused else 0)
            try:
                await self._loop(conn, cfg, loop, start, speed)
            except Exception as exc:
                logger.exception("bot failed")
                async with conn.transaction():
                    await store.finish_run(conn, run_id=self.run_id, status="failed", error=str(exc),
                                           stats=self._stats(loop))
                    await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="error", level="error",
                                      message=f"bot failed: {exc}")
                return 1
            async with conn.transaction():
                await store.finish_run(conn, run_id=self.run_id, status="stopped", error=None, stats=self._stats(loop))
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="stopped", message="bot stopped")
            return 0
        finally:
            if self._nats is not None:
                await self._nats.close()
            await conn.close()

    async def _start_point(self, conn, cfg, window: int) -> tuple[datetime | None, float | None]:
        labels = cfg["labels"] or {}
        speed = float(labels["replay.speed"]) if labels.get("replay.speed") else None
        if speed is not None:
            start = labels.get("replay.from")
            return (datetime.fromisoformat(start) if start else
                    await store.first_bar_at(conn, symbol=cfg["symbol"], interval=cfg["interval"])), speed
        if cfg["shadow_of"] is not None:
            live_start = await store.live_run_start(conn, bot_id=cfg["shadow_of"])
            if live_start is not None:
                return live_start, None
        return await store.start_of_window(conn, symbol=cfg["symbol"], interval=cfg["interval"],
                                           bars_back=window - 1), None

    async def _loop(self, conn, cfg, loop: BarLoop, start: datetime | None, speed: float | None) -> None:
        cursor = start
        caught_up = False
        last_beat = 0.0
        last_bar_at: datetime | None = None
        while not self.stopping.is_set():
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                await store.heartbeat(conn, bot_id=cfg["id"], run_id=self.run_id, last_bar_at=last_bar_at,
                                      metrics_port=self.env.metrics_port)
                self.metrics.heartbeat.set(time.time())
                last_beat = time.monotonic()
                self._sync_pause(await store.desired_state(conn, bot_id=cfg["id"]))
            if self.paused or cursor is None:
                if cursor is None:  # no data yet: wait for the first bars
                    cursor = await store.start_of_window(conn, symbol=cfg["symbol"], interval=cfg["interval"],
                                                         bars_back=loop.window - 1)
                await self._wait(self.env.poll_s)
                continue
            if self._resume_pending:
                self._resume_pending = False
                newest = await store.start_of_window(conn, symbol=cfg["symbol"], interval=cfg["interval"], bars_back=0)
                if newest is not None and newest >= cursor:
                    cursor = newest + timedelta(milliseconds=1)
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="resumed", message="bot resumed")
            limit = 1 if speed else BATCH_BARS
            bars = await store.fetch_bars(conn, symbol=cfg["symbol"], interval=cfg["interval"], from_ts=cursor,
                                          limit=limit)
            if not bars:
                caught_up = True
                await self._wait(self.env.poll_s)
                continue
            batch = []
            for bar in bars:
                happened = loop.on_bar(bar)
                batch.append((bar, happened, float(loop.model.cash), float(loop.model.position)))
                self._observe(happened, loop, bar.close)
                if caught_up and cfg["mode"] == "live":
                    await self._publish_intents(cfg, happened)
            async with conn.transaction():
                await store.write_batch(conn, bot_id=cfg["id"], run_id=self.run_id, symbol=cfg["symbol"], events=batch)
            self.bars += len(bars)
            last_bar_at = store.ms_to_dt(bars[-1].ts)
            cursor = last_bar_at + timedelta(milliseconds=1)
            self.metrics.last_bar.set(time.time())
            if speed:
                await self._wait(1.0 / speed)

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _observe(self, happened: list[Any], loop: BarLoop, close: float) -> None:
        self.metrics.bars.inc()
        if loop.warmed_up:
            decided = [e for e in happened if isinstance(e, Decision)]
            side = decided[-1].side.value if decided else "hold"
            self.metrics.decisions.labels(side=side).inc()
        for item in happened:
            if isinstance(item, Fill):
                self.metrics.orders.labels(side=item.side.value).inc()
        self.metrics.equity.set(loop.model.equity(close))

    async def _connect_nats(self) -> None:
        if not self.env.nats_url:
            raise ConfigurationError("live mode needs GORDON_BUS_NATS_URL to publish order intents")
        import nats

        self._nats = await nats.connect(self.env.nats_url, connect_timeout=5, max_reconnect_attempts=-1)

    async def _publish_intents(self, cfg, happened: list[Any]) -> None:
        for item in happened:
            if isinstance(item, Decision):
                intent = {"botId": cfg["id"], "runId": self.run_id, "barTs": item.ts, "side": item.side.value,
                          "qty": str(item.qty), "orderType": item.order_type.value, "price": str(item.price),
                          "reason": item.reason.value, "clientOrderId": f"gb{cfg['id']}-{self.run_id}-{item.order_id}"}
                await self._nats.publish(f"orders.intents.{cfg['id']}", orjson.dumps(intent))

    def _stats(self, loop: BarLoop) -> dict[str, Any]:
        return {"bars": self.bars, "cash": str(loop.model.cash), "position": str(loop.model.position),
                "feesPaid": str(loop.model.fees_paid)}


async def run_bot(env: BotEnv) -> int:
    """Entry point used by the CLI."""
    runner = BotRunner(env)
    runner.install_signal_handlers()
    return await runner.run()
