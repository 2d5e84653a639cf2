import { describe, expect, it } from "vitest";
import { connectLive, type LiveEvent, type LiveSocket } from "@gordon/manager-client";

import { LiveHub } from "../src/lib/live";

/** A fake browser WebSocket: records what is sent, lets the test deliver frames and close it. */
class FakeSocket implements LiveSocket {
  static all: FakeSocket[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  sent: unknown[] = [];
  private closeListeners: (() => void)[] = [];
  constructor(public url: string, public protocols?: string | string[]) {
    FakeSocket.all.push(this);
  }
  addEventListener(type: string, cb: () => void) {
    if (type === "close") this.closeListeners.push(cb);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closeListeners.forEach((cb) => cb());
    this.onclose?.({});
  }
  open() {
    this.onopen?.({});
  }
  frame(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

const event = (id: number): LiveEvent => ({ id, channel: "bot_events", op: "insert", table: "bot_events",
  data: { id, botId: 1, runId: null, kind: "paused", level: "info", message: "m", data: {}, at: "2024-01-01T00:00:00Z" } } as LiveEvent);

describe("LiveHub", () => {
  it("batches events per frame, tracks the state and resumes with since", () => {
    FakeSocket.all = [];
    const flushes: (() => void)[] = [];
    const hub = new LiveHub({ schedule: (flush) => flushes.push(flush), WebSocketImpl: FakeSocket, connect: connectLive });
    const batches: number[][] = [];
    hub.subscribe((events) => batches.push(events.map((e) => ("id" in e ? e.id : -1))));
    hub.start("ws://x/ws", "read-token-1");
    expect(hub.getStatus().state).toBe("connecting");
    const first = FakeSocket.all[0]!;
    expect(first.protocols).toEqual(["gordon.v1", "gordon.read-token.read-token-1"]);
    first.open();
    expect(first.sent[0]).toMatchObject({ type: "subscribe" });
    expect((first.sent[0] as { channels: string[] }).channels).toHaveLength(10);
    first.frame({ type: "welcome", version: "3.8.0", channels: [], heartbeatS: 15, breakerStateSource: "notify", lastId: 0 });
    expect(hub.getStatus().state).toBe("live");
    first.frame({ type: "event", ...event(5) });
    first.frame({ type: "batch", events: [event(6), event(7)] });
    expect(batches).toEqual([]);
    expect(flushes).toHaveLength(1); // one flush scheduled for the three events
    flushes[0]!();
    expect(batches).toEqual([[5, 6, 7]]);
    expect(hub.getStatus().lastId).toBe(7);
    expect(hub.lastFlush?.size).toBe(3);

    first.close();
    expect(hub.getStatus().state).toBe("reconnecting");
    hub.reconnect();
    const second = FakeSocket.all[FakeSocket.all.length - 1]!;
    second.open();
    expect(second.sent[0]).toMatchObject({ type: "subscribe", since: 7 });
    second.frame({ type: "welcome", version: "3.8.0", channels: [], heartbeatS: 15, breakerStateSource: "notify" });
    expect(hub.getStatus()).toMatchObject({ state: "live", connects: 2 });
    hub.stop();
    expect(hub.getStatus().state).toBe("offline");
  });

  it("hands resyncs and breaker snapshots over", () => {
    FakeSocket.all = [];
    const hub = new LiveHub({ schedule: (flush) => flush(), WebSocketImpl: FakeSocket });
    const resyncs: string[] = [];
    const snapshots: number[] = [];
    hub.onResync((frame) => resyncs.push(frame.reason));
    hub.onBreakerSnapshot((items) => snapshots.push(items.length));
    hub.start("ws://x/ws");
    const socket = FakeSocket.all[0]!;
    expect(socket.protocols).toEqual(["gordon.v1"]);
    socket.open();
    socket.frame({ type: "snapshot", channel: "breaker_state", items: [{ breaker: "daily_loss", state: "closed", reason: null, trippedAt: null, data: {}, updatedAt: "2024-01-01T00:00:00Z" }] });
    socket.frame({ type: "resync", reason: "overflow", channels: ["bot_status"] });
    expect(resyncs).toEqual(["overflow"]);
    expect(snapshots).toEqual([1]);
    expect(hub.getStatus().lastResync?.reason).toBe("overflow");
    hub.stop();
  });
});
