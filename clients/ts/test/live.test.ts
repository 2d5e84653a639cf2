/**
 * connectLive's connection logic (src/live.ts), with a scripted socket in place of the browser's
 * WebSocket: the resume point a first `welcome` gives, the silence watchdog that replaces a half-open
 * connection, and the status callback. (tests/foundation/test_ts_client.py runs it with `node --test`;
 * the same client against a real manager is examples/live.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { connectLive, type LiveSocket } from "../src/live.js";

class ScriptedSocket implements LiveSocket {
  static created: ScriptedSocket[] = [];
  static waiting: Array<() => void> = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  sent: Array<Record<string, unknown>> = [];
  closed = false;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    ScriptedSocket.created.push(this);
    ScriptedSocket.waiting.splice(0).forEach((wake) => wake());
    queueMicrotask(() => this.onopen?.({}));
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(): void {
    this.closed = true; // a half-open connection: no close event ever comes
  }

  frame(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Resolves once `count` sockets were created (no fixed sleep). */
  static async until(count: number): Promise<void> {
    while (ScriptedSocket.created.length < count) {
      await new Promise<void>((wake) => ScriptedSocket.waiting.push(wake));
    }
  }
}

const welcome = (heartbeatS: number, lastId: number | null) => ({
  type: "welcome", version: "3.8.0", channels: ["bot_status"], heartbeatS, breakerSource: "none", lastId,
});

test("a silent connection is replaced, and resumes from the first welcome's lastId", async () => {
  ScriptedSocket.created = [];
  const status: boolean[] = [];
  const live = connectLive("ws://manager/ws", {
    channels: ["bot_status"], onEvent: () => undefined, onStatus: (up) => status.push(up),
    WebSocketImpl: ScriptedSocket, reconnectDelayMs: 1,
  });
  await ScriptedSocket.until(1);
  const first = ScriptedSocket.created[0]!;
  await Promise.resolve();
  assert.deepEqual(first.sent, [{ type: "subscribe", channels: ["bot_status"] }]);
  first.frame(welcome(0.02, 41)); // then nothing: 3 heartbeat periods (60 ms) of silence
  await ScriptedSocket.until(2);
  const second = ScriptedSocket.created[1]!;
  assert.equal(first.closed, true);
  await Promise.resolve();
  assert.deepEqual(second.sent, [{ type: "subscribe", channels: ["bot_status"], since: 41 }]);
  assert.deepEqual(status, [true, false]);
  assert.equal(live.lastId, 41);
  live.close();
});

test("frames keep a connection alive; events move the resume point", async () => {
  ScriptedSocket.created = [];
  const seen: number[] = [];
  const live = connectLive("ws://manager/ws", {
    channels: ["bot_status"], onEvent: (event) => seen.push(event.id), WebSocketImpl: ScriptedSocket,
    reconnectDelayMs: 1, silenceFactor: 3,
  });
  await ScriptedSocket.until(1);
  const socket = ScriptedSocket.created[0]!;
  socket.frame(welcome(0.05, 7)); // 150 ms of silence would drop it
  const row = { botId: 1, observedState: "running" };
  for (let id = 8; id < 38; id += 1) { // 30 frames 10 ms apart: 300 ms, never 150 ms silent
    await new Promise((wake) => setTimeout(wake, 10));
    socket.frame({ type: "event", channel: "bot_status", op: "update", id, at: "2026-12-03T00:00:00Z", data: row });
  }
  assert.equal(ScriptedSocket.created.length, 1);
  assert.equal(socket.closed, false);
  assert.equal(seen.length, 30);
  assert.equal(live.lastId, 37);
  live.reconnect();
  await ScriptedSocket.until(2);
  await Promise.resolve();
  assert.deepEqual(ScriptedSocket.created[1]!.sent.at(-1), { type: "subscribe", channels: ["bot_status"], since: 37 });
  live.close();
});
