"""Load-generator worker: one process holding many /ws connections (uvloop + a minimal RFC 6455 client).

A full client library costs tens of microseconds per frame, more than the server spends sending
it; on a 2-core box the load generator would measure itself. This client does only what a
subscriber must: the HTTP upgrade, masked client frames, and for every server frame a header
parse, then it counts *events* (a batch frame carries several) and records each event's
commit→client latency from the publisher's timestamp in the row. Events are found with one regex
over the frame (every event carries exactly one stamp); one frame in VERIFY_EVERY is also fully
parsed with orjson and must agree, event by event.

Driven over a multiprocessing Pipe by bench/ws_fanout.py: ("report", phase) → stats of that phase.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections import Counter
from multiprocessing.connection import Connection

import orjson

BUCKET_S = 0.0001  # 0.1 ms latency buckets ...
BUCKETS = 30_000   # ... up to 3 s; slower events land in the last bucket (max is kept apart)
INV_BUCKET = 1.0 / BUCKET_S
EVENT_PREFIX = b'{"type":"event",'
BATCH_PREFIX = b'{"type":"batch",'
# The publisher's stamp inside each event's row data (jsonb orders keys by length, then bytes).
STAMP = re.compile(rb'"data":\{"p":(\d+),"t":([0-9.e+-]+)\}')
VERIFY_EVERY = 97


class PhaseStats:
    """Events, frames and a latency histogram for one benchmark phase."""

    __slots__ = ("events", "frames", "hist", "max_latency", "resyncs")

    def __init__(self) -> None:
        self.events = 0
        self.frames = 0
        self.hist = [0] * BUCKETS
        self.max_latency = 0.0
        self.resyncs = 0


class Collector:
    """Per-process stats keyed by phase (the publisher stamps its phase in every row)."""

    def __init__(self) -> None:
        self.phases: dict[int, PhaseStats] = {}
        self.subscribed = 0
        self.closed = 0
        self.resyncs = 0

    def phase(self, number: int | bytes) -> PhaseStats:
        stats = self.phases.get(int(number))
        if stats is None:
            stats = self.phases[int(number)] = PhaseStats()
        return stats


class WsClient(asyncio.Protocol):
    """One subscriber connection."""

    def __init__(self, collector: Collector, host: str, port: int, channels: list[str]) -> None:
        self.collector = collector
        self.host, self.port, self.channels = host, port, channels
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.sampled = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        .encode())

    def send_frame(self, first_byte: int, payload: bytes) -> None:
        """A masked client frame (payloads here are small: < 126 bytes)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.transport.write(bytes((first_byte, 0x80 | len(payload))) + mask + masked)

    def send_json(self, message: dict) -> None:
        self.send_frame(0x81, orjson.dumps(message))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"upgrade refused: {buffer[:80]!r}")
            self.upgraded = True
            buffer = buffer[end + 4:]
            self.send_json({"type": "subscribe", "channels": self.channels})
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, length = buffer[pos], buffer[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2:pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 1 or opcode == 2:
                self.on_message(buffer[start:end])
            elif opcode == 9:  # ping: answer, or uvicorn's keepalive drops us after ws_ping_timeout
                self.send_frame(0x8A, buffer[start:end])
            elif opcode == 8:
                self.transport.close()
            pos = end
        self.buffer = buffer[pos:] if pos < size else b""

    def on_message(self, payload: bytes) -> None:
        now = time.time()
        head = payload[:16]
        if head == EVENT_PREFIX or head == BATCH_PREFIX:
            # Every event carries its publisher stamp exactly once; rows of one publisher tick share
            # it, so count per distinct stamp (C-speed) instead of walking dicts in Python.
            stamps = STAMP.findall(payload)
            self.sampled += 1
            if self.sampled % VERIFY_EVERY == 0:  # keep the shortcut honest: a full parse agrees
                message = orjson.loads(payload)
                parsed = [message] if message["type"] == "event" else message["events"]
                assert len(parsed) == len(stamps), (len(parsed), len(stamps))
                assert all(e["data"]["data"]["t"] == float(t) for e, (_, t) in zip(parsed, stamps, strict=True))
            groups = ((stamps[0], 1),) if len(stamps) == 1 else Counter(stamps).items()
            last_phase = None
            for (phase, stamp), count in groups:
                if phase != last_phase:
                    last_phase = phase
                    stats = self.collector.phase(phase)
                    stats.frames += 1
                latency = now - float(stamp)
                stats.events += count
                if latency > stats.max_latency:
                    stats.max_latency = latency
                index = int(latency * INV_BUCKET)
                stats.hist[index if 0 <= index < BUCKETS else (BUCKETS - 1 if index >= BUCKETS else 0)] += count
            return
        message = orjson.loads(payload)
        kind = message["type"]
        if kind == "subscribed":
            self.collector.subscribed += 1
            if not self.done.done():
                self.done.set_result(True)
        elif kind == "resync":
            self.collector.resyncs += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.collector.closed += 1
        if not self.done.done():
            self.done.set_result(False)


async def _serve(pipe: Connection, host: str, port: int, connections: int, channels: list[str]) -> None:
    loop = asyncio.get_running_loop()
    collector = Collector()
    clients: list[WsClient] = []
    gate = asyncio.Semaphore(64)

    async def open_one() -> None:
        async with gate:
            _, client = await loop.create_connection(lambda: WsClient(collector, host, port, channels), host, port)
            clients.append(client)
            await asyncio.wait_for(client.done, 30)

    await asyncio.gather(*(open_one() for _ in range(connections)))
    pipe.send(("ready", collector.subscribed))
    stop = loop.create_future()

    def on_command() -> None:
        command = pipe.recv()
        if command[0] == "report":
            stats = collector.phases.pop(command[1], PhaseStats())
            pipe.send(("stats", stats.events, stats.frames, stats.hist, stats.max_latency,
                       collector.resyncs, collector.closed))
        elif command[0] == "stop" and not stop.done():
            stop.set_result(None)

    loop.add_reader(pipe.fileno(), on_command)
    await stop
    for client in clients:
        client.transport.close()


def worker(pipe: Connection, host: str, port: int, connections: int, channels: list[str]) -> None:
    """Process entry point."""
    import uvloop

    uvloop.run(_serve(pipe, host, port, connections, channels))
