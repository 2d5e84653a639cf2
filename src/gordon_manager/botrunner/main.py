"""The bot process (`gordon-manager bot`): the same strategy + ExecutionModel as a backtest, bar by bar.

Environment: ``GORDON_BOT_ID``, ``GORDON_DATABASE_URL`` (role gordon_bot), ``GORDON_BOT_TOKEN`` (this
bot's own secret: right after connecting the bot calls ``trading.bot_login(id, token)``, and row-level
security then lets the connection write this bot's rows only; a missing or refused token exits 2,
see ``credentials``), ``GORDON_BOT_METRICS_PORT`` (and ``GORDON_BOT_METRICS_ADDR``, default
127.0.0.1), ``GORDON_BOT_PAUSED`` (1 = start paused), ``GORDON_BUS_NATS_URL`` (required in live
mode), ``GORDON_BOT_POLL_S`` (how often to look for new bars), ``GORDON_BOT_FLATTEN_WAIT_S`` (how
long a flattening stop waits for its fill).

Start: the bot rebuilds its ledger (position, cash, open round trip) and its open orders from what
it recorded (``ledger_store.recover``), closes the runs a killed predecessor left ``running``, and
opens a run that records this opening state and its first tradable bar. It warms the strategy up on
the bars before that one, without deciding: bars that closed while it was down are never traded
(a signal that fired meanwhile is stale; the recovered position stands until the next exit signal
or its bracket). A shadow bot starts from its live bot's run instead: same bars, same first traded
bar, same opening ledger. Labels ``replay.speed`` (bars/s, 0 = at once) and ``replay.from``
(RFC 3339) replay stored bars for demos; a restarted replay continues after its last bar.

Modes: ``paper`` and ``shadow`` fill through the ExecutionModel; ``live`` books only the fills
gordon-executor reports (see ``contract`` and the README's "The live loop"): every order is an
intent written with its decision (outbox) and published on JetStream after the commit.

Lifecycle: SIGUSR1 pauses (no new entries; exits, brackets and cancels go on; a replay holds its
place), SIGUSR2 resumes; the declared state is re-read every heartbeat, so a lost signal is
corrected within 5 s. SIGTERM ends the current batch; when the manager asked for a stop (desired
state ``stopped``) the bot cancels its open orders and, with ``?flatten=true``, first sells its
position (reduce-only market) and waits up to ``GORDON_BOT_FLATTEN_WAIT_S`` for the fill; any other
SIGTERM (a restart, a deploy swap) leaves orders working for the next process to recover.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import ValidationError

from gordon_manager.botrunner import contract, credentials, ledger_store, store
from gordon_manager.botrunner.bar_loop import BarLoop, BlockedEntry
from gordon_manager.botrunner.book import OrderBook, dt_to_ms, fill_from_json, ms_to_dt
from gordon_manager.botrunner.bus import Bus
from gordon_manager.botrunner.commit import Commit, Outgoing, write
from gordon_manager.botrunner.hinted import HintedBars
from gordon_manager.botrunner.labels import replay_settings
from gordon_manager.botrunner.metrics import BotMetrics
from gordon_manager.botrunner.risk import RiskGate
from gordon_manager.db.connect import connect
from gordon_manager.errors import ConfigurationError
from gordon_manager.execution import Bar, Decision, ExecutionConfig, Fill

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALL_REPORT_S = 20.0  # a shutdown still running this long after SIGTERM logs where every task waits
BATCH_BARS = 5000
REPORT_BATCH = 256
PUBLISH_BACKOFF_MAX_S = 10.0


class RunAbandoned(RuntimeError):
    """The leader declared this bot's run abandoned (no heartbeat for too long)."""


@dataclass(frozen=True)
class BotEnv:
    """What the bot process is told through its environment."""

    bot_id: int
    database_url: str
    token: str = field(repr=False)  # never in a log line
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    paused: bool = False
    nats_url: str | None = None
    poll_s: float = 1.0
    flatten_wait_s: float = 5.0

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
        token = env.get(credentials.TOKEN_ENV)
        if not token:
            raise ConfigurationError(f"{credentials.TOKEN_ENV} is not set (the manager gives each bot its own token)")
        port = env.get("GORDON_BOT_METRICS_PORT")
        return cls(bot_id=bot_id, database_url=url, token=token, metrics_port=int(port) if port else None,
                   metrics_addr=env.get("GORDON_BOT_METRICS_ADDR", "127.0.0.1"),
                   paused=env.get("GORDON_BOT_PAUSED") == "1", nats_url=env.get("GORDON_BUS_NATS_URL") or None,
                   poll_s=float(env.get("GORDON_BOT_POLL_S", "1.0")),
                   flatten_wait_s=float(env.get("GORDON_BOT_FLATTEN_WAIT_S", "5.0")))


@dataclass
class Plan:
    """Where the run starts reading bars, and the first bar it trades (epoch ms; None: not known yet)."""

    range_start: datetime | None
    trade_from: int | None
    speed: float | None = None


class BotRunner:
    """Feeds closed bars to a BarLoop, books the executor's reports, and persists it all."""

    def __init__(self, env: BotEnv) -> None:
        self.env = env
        self.metrics = BotMetrics()
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.paused = env.paused
        self._pause_notes: list[str] = []  # paused/resumed events not written yet, in order
        self.run_id: int | None = None
        self.bars = 0
        self.bus: Bus | None = None
        self.outbox: list[Outgoing] = []
        self._publish_at = 0.0
        self._publish_backoff = 0.5
        self._connect_at = 0.0
        self.last_close: float | None = None
        self.last_bar_at: datetime | None = None
        self._risk_stale = True
        self._bars_due = True  # a new bar may be there: a klines NOTIFY, a poll period, a full batch
        self.hinted = HintedBars()  # bars the new-bars hints carried (botrunner/hinted.py)
        self._acked: list[int] = []  # outbox ids JetStream acknowledged, marked in the next transaction
        self._held: list[Any] = []  # 'accepted' reports applied to the book, acknowledged after the next commit
        self._stall_report: asyncio.TimerHandle | None = None

    # -- signals -------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGUSR1, self.pause)
        loop.add_signal_handler(signal.SIGUSR2, self.resume)

    def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()
        if self._stall_report is None:
            self._stall_report = asyncio.get_running_loop().call_later(STALL_REPORT_S, self._report_stall)

    def _report_stall(self) -> None:
        """The stop is taking long (a supervisor may SIGKILL the bot soon): log where each task waits."""
        stacks = {task.get_name(): _await_chain(task) for task in asyncio.all_tasks()}
        logger.warning("bot still stopping %.0f s after the stop signal", STALL_REPORT_S,
                       extra={"bot_id": self.env.bot_id, "tasks": stacks})

    def _sync_pause(self, desired: str | None) -> None:
        """Level-triggered pause: a signal lost at start-up is corrected from the declared state."""
        if desired == "paused" and not self.paused:
            self.pause()
        elif desired == "running" and self.paused:
            self.resume()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._pause_notes.append("paused")
            self.metrics.paused.set(1)
            self.wakeup.set()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._pause_notes.append("resumed")
            self.metrics.paused.set(0)
            self.wakeup.set()

    # -- main ----------------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        conn = await connect(self.env.database_url)
        try:
            try:  # before anything else: unbound, this connection may write nothing at all
                await credentials.login(conn, bot_id=self.env.bot_id, token=self.env.token)
            except credentials.BotLoginRefused as exc:
                logger.error("bot login refused: %s", exc, extra={"bot_id": self.env.bot_id})
                return 2
            cfg = await store.load_config(conn, bot_id=self.env.bot_id)
            if cfg is None:
                logger.error("bot config not found", extra={"bot_id": self.env.bot_id})
                return 2
            try:
                return await self._run(conn, cfg)
            except ConfigurationError as exc:
                logger.error("bot cannot run: %s", exc)
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="config_error", level="error",
                                  message=str(exc))
                return 2
        finally:
            if self.bus is not None:
                await self.bus.close()
            await conn.close()
            # self._stall_report stays armed: a stall in the event loop's teardown (a task that will not
            # cancel) is reported too; the timer ends with the loop.

    async def _run(self, conn: asyncpg.Connection, cfg: asyncpg.Record) -> int:
        self.mode = cfg["mode"]
        self.live = self.mode == "live"
        if self.live and not self.env.nats_url:
            raise ConfigurationError("live mode needs GORDON_BUS_NATS_URL to send order intents to gordon-executor")
        self.speed, replay_from = replay_settings(cfg["labels"] or {})
        execution = ExecutionConfig.model_validate(cfg["execution"])
        loop = BarLoop(cfg["strategy"], cfg["params"], execution)
        self.book = OrderBook(bot_id=cfg["id"], symbol=cfg["symbol"], mode=self.mode, model=loop.model,
                              on_placed=lambda side: self.metrics.orders.labels(side=side.value).inc())
        self.gate = RiskGate(bot_id=cfg["id"], symbol=cfg["symbol"])
        if not self.env.nats_url:  # with NATS, the manager relays these NOTIFYs as hints (events/hints.py)
            await self._listen(conn, cfg)
        opening, plan = await self._prepare(conn, cfg, loop, execution, replay_from)
        loop.model.restore(cash=opening.cash, position=opening.qty, fees_paid=opening.fees_paid,
                           trip=[fill_from_json(f) for f in opening.trip])
        self.book.restore(orders=opening.orders, trip_ids=[f["clientOrderId"] for f in opening.trip],
                          generations=opening.generations, realized_pnl=opening.realized_pnl,
                          persist=cfg["shadow_of"] is not None)
        if self.env.nats_url:
            self.bus = Bus(url=self.env.nats_url, bot_id=cfg["id"], live=self.live, on_report=self.wakeup.set,
                           on_breaker=self.gate.on_breaker,
                           bars_subject=contract.klines_hint_subject(cfg["symbol"], cfg["interval"]),
                           on_bars=self._bars_hint, on_risk=self._risk_hint,
                           on_error=lambda kind: self.metrics.errors.labels(kind=kind).inc())
            await self.bus.connect()
        extra = {"opening": opening.snapshot(),
                 "tradeFrom": ms_to_dt(plan.trade_from).isoformat() if plan.trade_from is not None else None}
        async with conn.transaction():
            abandoned = await store.abandon_runs(conn, bot_id=cfg["id"])
            self.run_id = await store.create_run(conn, cfg=cfg, range_start=plan.range_start, extra=extra)
            self.book.run_id = self.run_id
            await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="started",
                              message=f"{cfg['mode']} bot started ({cfg['strategy']} {cfg['symbol']} {cfg['interval']})",
                              data={"specVersion": cfg["spec_version"], "paused": self.paused,
                                    "abandonedRuns": abandoned})
            if opening.holds_anything:
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="recovered",
                                  message=f"recovered position {opening.qty} with {len(opening.orders)} open orders",
                                  data={"qty": format(opening.qty, "f"), "cash": format(opening.cash, "f"),
                                        "openOrders": [o["client_order_id"] for o in opening.orders]})
            self.book.rearm(entry=opening.entry, ts=plan.trade_from or dt_to_ms(datetime.now(UTC)))
            await self._write(conn, cfg)
        if self.live:
            self.outbox = await ledger_store.unpublished(conn, bot_id=cfg["id"])
        if self.env.metrics_port:
            self.metrics.serve(self.env.metrics_port, self.env.metrics_addr)
        self.metrics.up.set(1)
        self.metrics.paused.set(1 if self.paused else 0)
        self._observe_ledger(loop.model)
        try:
            await self._loop(conn, cfg, loop, plan)
            await self._shutdown(conn, cfg, loop)
        except Exception as exc:
            logger.exception("bot failed")
            async with conn.transaction():
                await store.finish_run(conn, run_id=self.run_id, status="failed", error=str(exc),
                                       stats=self._stats(loop))
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="error", level="error",
                                  message=f"bot failed: {exc}")
            return 1
        async with conn.transaction():
            await self._write(conn, cfg)  # what the book still holds (held 'accepted' reports)
            await store.finish_run(conn, run_id=self.run_id, status="stopped", error=None, stats=self._stats(loop))
            await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind="stopped", message="bot stopped")
        await self._ack([])
        return 0

    async def _listen(self, conn: asyncpg.Connection, cfg: asyncpg.Record) -> None:
        """New bars of its market wake the bot (NOTIFY 'klines'); a risk change marks the gate stale.

        Only for a bot without NATS: with NATS the manager relays these as hints, so that PostgreSQL
        does not signal one listening backend per bot on every NOTIFY (``events/hints.py``). Polling
        stays as the safety net (``GORDON_BOT_POLL_S``), and the gate is re-read every heartbeat.
        """
        mine = (cfg["symbol"], cfg["interval"])

        def on_klines(_conn: asyncpg.Connection, _pid: int, _channel: str, payload: str) -> None:
            symbol, interval, bar = contract.split_klines_notify(payload)
            if (symbol, interval) == mine:
                self._bars_hint(bar)

        def on_risk(_conn: asyncpg.Connection, _pid: int, _channel: str, _payload: str) -> None:
            self._risk_hint()

        await conn.add_listener("klines", on_klines)
        for channel in ("risk_halt_changed", "breaker_state"):
            await conn.add_listener(channel, on_risk)

    def _bars_hint(self, body: bytes | str = b"") -> None:
        self.hinted.add(body)
        self._bars_due = True
        self.wakeup.set()

    def _risk_hint(self) -> None:
        self._risk_stale = True

    async def _prepare(self, conn: asyncpg.Connection, cfg: asyncpg.Record, loop: BarLoop, execution: ExecutionConfig, replay_from: datetime | None) -> tuple[ledger_store.Recovered, Plan]:
        """(opening ledger, plan) of this run."""
        symbol, interval = cfg["symbol"], cfg["interval"]
        if cfg["shadow_of"] is not None:
            live = await store.live_run(conn, bot_id=cfg["shadow_of"])
            if live is not None:  # the live bot's run: its start, first traded bar and opening ledger
                config = live["config"] or {}
                trade_from = config.get("tradeFrom")
                opening = (ledger_store.Recovered.from_snapshot(config["opening"]).renamed(
                               f"gb{cfg['shadow_of']}-", f"gb{cfg['id']}-") if config.get("opening")
                           else ledger_store.Recovered(qty=Decimal(0), cash=execution.initial_cash))
                start = live["range_start"]
                if trade_from:  # warm at the first compared bar, even with a longer warm-up than the live bot's
                    warm = await store.bar_before(conn, symbol=symbol, interval=interval,
                                                  ts=datetime.fromisoformat(trade_from),
                                                  bars_back=max(loop.window - 2, 0))
                    start = min(start, warm) if start and warm else start or warm
                plan = Plan(start, dt_to_ms(datetime.fromisoformat(trade_from)) if trade_from else
                            (dt_to_ms(start) if start else None))
                return opening, plan
        recovered = await ledger_store.recover(conn, bot_id=cfg["id"], initial_cash=execution.initial_cash)
        if recovered.found and (recovered.mode, recovered.symbol) != (cfg["mode"], symbol):
            if recovered.holds_anything:
                raise ConfigurationError(
                    f"the bot's ledger holds {recovered.qty} {recovered.symbol} ({recovered.mode}) with "
                    f"{len(recovered.orders)} open orders, but its config now trades {symbol} ({cfg['mode']})")
            recovered = ledger_store.Recovered(qty=Decimal(0), cash=execution.initial_cash)
        if self.speed is not None:
            start = replay_from or await store.first_bar_at(conn, symbol=symbol, interval=interval)
            if start is not None and recovered.last_bar_at is not None and recovered.last_bar_at >= start:
                resume = recovered.last_bar_at + timedelta(milliseconds=1)
                range_start = await store.bar_before(conn, symbol=symbol, interval=interval, ts=resume,
                                                     bars_back=loop.window - 2)
                return recovered, Plan(range_start, dt_to_ms(resume), self.speed)
            return recovered, Plan(start, dt_to_ms(start) if start else None, self.speed)
        return recovered, await self._follow_plan(conn, cfg, loop.window)

    async def _follow_plan(self, conn: asyncpg.Connection, cfg: asyncpg.Record, window: int) -> Plan:
        """Warm up on the newest ``window`` bars; trade from the first bar that closes after them."""
        newest = await store.start_of_window(conn, symbol=cfg["symbol"], interval=cfg["interval"], bars_back=0)
        if newest is None:
            return Plan(None, None)
        range_start = await store.start_of_window(conn, symbol=cfg["symbol"], interval=cfg["interval"],
                                                  bars_back=window - 1)
        return Plan(range_start, dt_to_ms(newest) + 1)

    async def _loop(self, conn: asyncpg.Connection, cfg: asyncpg.Record, loop: BarLoop, plan: Plan) -> None:
        cursor = plan.range_start
        last_beat = 0.0
        while not self.stopping.is_set():
            self.wakeup.clear()
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                await self._heartbeat(conn, cfg)
                last_beat = time.monotonic()
            while self._pause_notes:
                note = self._pause_notes.pop(0)
                await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind=note, message=f"bot {note}")
            await self._connect_bus()
            await self._apply_reports(conn, cfg)
            await self._publish(conn)
            if self.paused and self.speed is not None:  # a replay holds its place while paused
                await self._wait(self.env.poll_s)
                continue
            if not (self._bars_due or self.speed):  # woken by a report: no bar to look for
                await self._wait(self.env.poll_s)
                continue
            self._bars_due = False
            if cursor is None:  # no data yet: wait for the first bars, all of which are history
                fresh = await self._follow_plan(conn, cfg, loop.window)
                cursor, plan.trade_from = fresh.range_start, fresh.trade_from
                if cursor is None:
                    await self._wait(self.env.poll_s)
                    continue
            limit = 1 if self.speed else BATCH_BARS
            bars = self._hinted_bars(cursor)
            if not bars:
                bars = await store.fetch_bars(conn, symbol=cfg["symbol"], interval=cfg["interval"], from_ts=cursor,
                                              limit=limit)
            if not bars:
                await self._wait(self.env.poll_s)
                continue
            await self._trade(conn, cfg, loop, bars, plan.trade_from)
            assert self.last_bar_at is not None  # set by _trade
            cursor = self.last_bar_at + timedelta(milliseconds=1)
            if len(bars) == limit:
                self._bars_due = True
            if self.speed:
                await self._wait(1.0 / self.speed)

    def _hinted_bars(self, cursor: datetime) -> list[Bar]:
        """The next bars from the hints when they continue the bot's last bar (following the market only)."""
        last = self.last_bar_at
        if self.speed is not None or last is None or cursor != last + timedelta(milliseconds=1):
            self.hinted.clear()
            return []
        bars = self.hinted.take(dt_to_ms(last))
        if bars:
            self.metrics.bars_hinted.inc(len(bars))
        return bars

    async def _trade(self, conn: asyncpg.Connection, cfg: asyncpg.Record, loop: BarLoop, bars: list[Bar], trade_from: int | None) -> None:
        """One batch of bars: simulate (paper), decide, and commit everything they caused at once."""
        if self._risk_stale:
            self._risk_stale = False
            await self.gate.refresh(conn)
        blocked = "paused" if self.paused else self.gate.blocked()
        book = self.book
        batch = []
        for bar in bars:
            trading = trade_from is not None and bar.ts >= trade_from
            happened = loop.on_bar(bar, decide=trading, simulate=trading and not self.live,
                                   block_entries=blocked if trading else None)
            for item in happened:
                if type(item) is Decision:
                    book.on_decision(item)
            book.after_bar(bar, happened)
            batch.append((bar, happened, float(loop.model.cash), float(loop.model.position)))
            self._observe(happened, loop, bar.close)
        self.last_bar_at = ms_to_dt(bars[-1].ts)
        self.last_close = bars[-1].close
        commit = Commit()
        commit.bars(batch, book.coid_of)
        await self._write(conn, cfg, commit, last_bar_at=self.last_bar_at)
        self.bars += len(bars)
        self.metrics.last_bar.set(time.time())
        self._observe_ledger(loop.model)
        await self._publish(conn)
        await self._ack([])  # the held 'accepted' reports this transaction wrote (after the publish: off its path)

    async def _write(self, conn: asyncpg.Connection, cfg: asyncpg.Record, commit: Commit | None = None, *,
                     last_bar_at: datetime | None = None) -> None:
        """Write ``commit`` with what the book collected, in one statement; new intents join the outbox.

        The statement also marks the intents JetStream acknowledged since the last write, and writes
        the ledger row when a fill changed it (and, for a replay, with every batch: where a restarted
        replay continues is its last bar). Inside a transaction it is one statement of it.
        """
        book = self.book
        commit = Commit() if commit is None else commit
        ledger = book.ledger() if book.ledger_changed or self.speed is not None else None
        book.ledger_changed = False
        commit.published, self._acked = self._acked, []
        commit.changes(book.take(), ledger=ledger, last_bar_at=last_bar_at)
        assert self.run_id is not None  # created by _run before the loop starts
        outgoing = await write(conn, commit, bot_id=cfg["id"], run_id=self.run_id, mode=self.mode,
                               symbol=cfg["symbol"], subject=contract.intents_subject(cfg["id"]))
        self.outbox.extend(outgoing)
        self.metrics.intents_pending.set(len(self.outbox))

    # -- the executor's side ---------------------------------------------------------------------
    async def _connect_bus(self) -> None:
        bus = self.bus
        if bus is None or bus.ready or time.monotonic() < self._connect_at:
            return
        if not await bus.connect():
            self._connect_at = time.monotonic() + 2.0

    async def _apply_reports(self, conn: asyncpg.Connection, cfg: asyncpg.Record) -> None:
        """Book the executor's reports, one commit (one statement) per batch; acknowledge them once committed.

        The batch's fill ids already booked are read first, in one query: this process is its bot's
        only writer, so what is not booked then is not booked by the commit either, and a fill
        redelivered (an ack lost, a restart) or reported twice by the executor is counted as a
        duplicate and booked once.

        A batch of ``accepted`` reports only (the executor's first answer to every order) changes no
        ledger: it is applied to the book at once and written with the bot's next commit (the fill
        that usually follows within milliseconds, the next bar, or the heartbeat at the latest), and
        acknowledged after that commit. Until then JetStream holds it unacknowledged: a crash
        redelivers it, and applying ``accepted`` twice is a no-op. This saves a commit per order.

        Publish acks are marked the same way, with the next commit (a report, a bar, a heartbeat:
        within ``HEARTBEAT_S``). An intent published but not yet marked when the bot dies is
        published again at the next start: JetStream drops it as a duplicate (same ``Nats-Msg-Id``
        within the de-duplication window, far longer than a heartbeat) and the executor is
        idempotent by clientOrderId anyway.
        """
        bus = self.bus
        if bus is None:
            return
        while not bus.reports.empty():
            messages = [bus.reports.get_nowait() for _ in range(min(REPORT_BATCH, bus.reports.qsize()))]
            parsed: list[tuple[Any, Any]] = []
            for message in messages:
                try:
                    parsed.append((message, contract.parse_report(message.data)))
                except ValidationError as exc:
                    parsed.append((message, exc))
            if all(isinstance(r, contract.StatusReport) and r.status == "accepted" for _m, r in parsed):
                for message, report in parsed:
                    self.book.apply_status(report)
                    self.metrics.reports.labels(kind=report.status).inc()
                    self._held.append(message)
                continue
            happened: list[Any] = []
            done = []
            fill_ids = [r.fill_id for _m, r in parsed if isinstance(r, contract.FillReport)]
            booked = await ledger_store.booked_fills(conn, bot_id=cfg["id"], fill_ids=fill_ids) if fill_ids else set()
            for message, report in parsed:
                if isinstance(report, ValidationError):
                    self.metrics.errors.labels(kind="bad_report").inc()
                    self.book.note("bad_report", f"invalid executor report: {report.error_count()} errors",
                                   level="error", subject=message.subject)
                    done.append((message, False))
                    continue
                if isinstance(report, contract.FillReport):
                    if report.fill_id in booked:
                        self.metrics.reports.labels(kind="duplicate").inc()
                    else:
                        booked.add(report.fill_id)
                        happened.extend(self.book.apply_fill(report))
                        self.metrics.reports.labels(kind="fill").inc()
                else:
                    self.book.apply_status(report)
                    self.metrics.reports.labels(kind=report.status).inc()
                done.append((message, True))
            commit = Commit()
            commit.happened(happened, self.book.coid_of)
            await self._write(conn, cfg, commit)
            await self._ack(done)
            for item in happened:
                if type(item) is Fill:
                    self.metrics.fills.labels(side=item.side.value).inc()
            self._observe_ledger(self.book.model)

    async def _ack(self, done: list[tuple[Any, bool]]) -> None:
        """After a commit: acknowledge the reports it booked (and the held ones it wrote), or drop invalid ones.

        A crash before this redelivers them, harmlessly (fill ids, idempotent statuses).
        """
        if self._held:
            done = [(m, True) for m in self._held] + done
            self._held = []
        for message, valid in done:
            try:
                await (message.ack() if valid else message.term())
            except Exception:  # the ack is lost with the connection; the redelivery is a no-op
                self.metrics.errors.labels(kind="report_ack").inc()
                logger.debug("report ack failed", exc_info=True)

    async def _publish(self, conn: asyncpg.Connection) -> None:
        """Publish committed intents in order; after a failure retry with a growing pause."""
        bus = self.bus
        if not self.outbox or bus is None or not bus.ready or time.monotonic() < self._publish_at:
            return
        acked = await bus.publish(self.outbox)
        if acked:
            self._acked.extend(acked)
            done = set(acked)
            self.outbox = [o for o in self.outbox if o.id not in done]
            self.metrics.intents.inc(len(acked))
        if self.outbox:
            self._publish_at = time.monotonic() + self._publish_backoff
            self._publish_backoff = min(self._publish_backoff * 2, PUBLISH_BACKOFF_MAX_S)
        else:
            self._publish_backoff = 0.5
        self.metrics.intents_pending.set(len(self.outbox))

    # -- stopping ------------------------------------------------------------------------------------
    async def _shutdown(self, conn: asyncpg.Connection, cfg: asyncpg.Record, loop: BarLoop) -> None:
        """A stop the manager asked for cancels open orders (and flattens first when asked)."""
        request = await store.stop_request(conn, bot_id=cfg["id"])
        if request is None or request["desired_state"] != "stopped":
            return  # a restart or a swap: the next process recovers the orders as they are
        now = dt_to_ms(datetime.now(UTC))
        if request["flatten_on_stop"] and loop.model.position > 0:
            await self._flatten(conn, cfg, loop, now, request["version"])
        cancelled = self.book.cancel_all(ts=now)
        if cancelled:
            self.book.note("orders_cancelled", f"stop: {cancelled} open orders cancelled", count=cancelled)
        await self._write(conn, cfg)
        await self._ack([])
        await self._drain_outbox(conn)
        if self.live:  # a bounded wait for the executor to confirm, so the stopped bot shows no open order
            await self._await_executor(conn, cfg, lambda: not self.book.open_records)

    async def _flatten(self, conn: asyncpg.Connection, cfg: asyncpg.Record, loop: BarLoop, now: int, version: int) -> None:
        qty = loop.model.position
        order = self.book.flatten(ts=now, config_version=version, ref_price=self.last_close)
        if not self.live and self.last_close is not None:  # paper: fill at the last close, as a market order
            c = self.last_close
            bar = Bar(now, c, c, c, c, 0.0)
            happened = list(loop.model.process_bar(bar))
            self.book.after_bar(bar, happened)
            commit = Commit()
            commit.happened(happened, self.book.coid_of)
            await self._write(conn, cfg, commit)
        else:
            await self._write(conn, cfg)
            await self._await_executor(conn, cfg, lambda: loop.model.position <= 0)
        await self._ack([])
        left = loop.model.position
        kind, level = ("flattened", "info") if left == 0 else ("flatten_incomplete", "error")
        await store.event(conn, bot_id=cfg["id"], run_id=self.run_id, kind=kind, level=level,
                          message=f"flatten: sold {qty - left} of {qty}" + ("" if left == 0 else f", {left} still held"),
                          data={"clientOrderId": order.client_order_id if order else None,
                                "qty": format(qty, "f"), "remaining": format(left, "f")})

    async def _await_executor(self, conn: asyncpg.Connection, cfg: asyncpg.Record, done: Callable[[], bool]) -> None:
        """Publish and book reports until ``done()`` or ``GORDON_BOT_FLATTEN_WAIT_S`` passes."""
        deadline = time.monotonic() + self.env.flatten_wait_s
        self._publish_at = 0.0
        while not done() and time.monotonic() < deadline:
            self.wakeup.clear()
            await self._publish(conn)
            await self._apply_reports(conn, cfg)
            if not done():
                try:
                    await asyncio.wait_for(self.wakeup.wait(), timeout=0.2)
                except TimeoutError:
                    pass

    async def _drain_outbox(self, conn: asyncpg.Connection, timeout_s: float = 3.0) -> None:
        """Best effort before exiting: what is left stays in the outbox for the next start."""
        deadline = time.monotonic() + timeout_s
        self._publish_at = 0.0
        while self.outbox and self.bus is not None and self.bus.ready and time.monotonic() < deadline:
            await self._publish(conn)
            if self.outbox:
                await asyncio.sleep(0.1)
                self._publish_at = 0.0

    # -- bookkeeping -----------------------------------------------------------------------------
    async def _heartbeat(self, conn: asyncpg.Connection, cfg: asyncpg.Record) -> None:
        if self._held or self._acked:  # 'accepted' reports and publish acks no other write took along
            await self._write(conn, cfg)
            await self._ack([])
        assert self.run_id is not None  # created by _run before the loop starts
        alive, desired = await store.heartbeat(conn, bot_id=cfg["id"], run_id=self.run_id,
                                               last_bar_at=self.last_bar_at, metrics_port=self.env.metrics_port)
        if not alive:
            raise RunAbandoned(f"run {self.run_id} was declared abandoned while this bot still ran")
        self.metrics.heartbeat.set(time.time())
        self._risk_stale = True  # the safety net under the NOTIFYs
        self._sync_pause(desired)

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.wakeup.wait(), timeout=seconds)
        except TimeoutError:
            self._bars_due = True  # the poll: the safety net under the klines NOTIFYs

    def _observe(self, happened: list[Any], loop: BarLoop, close: float) -> None:
        self.metrics.bars.inc()
        decided = None
        for item in happened:
            kind = type(item)
            if kind is Fill:
                self.metrics.fills.labels(side=item.side.value).inc()
            elif kind is Decision:
                decided = item.side.value
            elif kind is BlockedEntry:
                self.metrics.blocked.labels(reason=item.reason.split(":")[0]).inc()
        if loop.warmed_up:
            self.metrics.decisions.labels(side=decided or "hold").inc()
        self.metrics.equity.set(loop.model.equity(close))

    def _observe_ledger(self, model: Any) -> None:
        self.metrics.position.set(float(model.position))

    def _stats(self, loop: BarLoop) -> dict[str, Any]:
        return {"bars": self.bars, "cash": str(loop.model.cash), "position": str(loop.model.position),
                "feesPaid": str(loop.model.fees_paid)}


def _await_chain(task: asyncio.Task[Any], limit: int = 24) -> list[str]:
    """Where a task waits: its coroutine and every coroutine it awaits, outermost first, down to the future.

    ``Task.get_stack`` gives a suspended task's outermost frame only, which says nothing about what
    it waits for; this follows ``cr_await`` (and a generator's ``gi_yieldfrom``) down the chain.
    """
    chain: list[str] = []
    link: Any = task.get_coro()
    while link is not None and len(chain) < limit:
        frame = getattr(link, "cr_frame", None) or getattr(link, "gi_frame", None)
        if frame is None:  # a future, or a coroutine that already finished
            if not hasattr(link, "cr_frame") and not hasattr(link, "gi_frame"):
                chain.append(f"awaiting {type(link).__name__}")
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        link = getattr(link, "cr_await", None) if hasattr(link, "cr_await") else getattr(link, "gi_yieldfrom", None)
    return chain


async def run_bot(env: BotEnv) -> int:
    """Entry point used by the CLI."""
    runner = BotRunner(env)
    runner.install_signal_handlers()
    return await runner.run()
