import { describe, expect, it } from "vitest";
import type { LiveEvent, Schemas } from "@gordon/manager-client";

import { actionsFor, EMPTY_FILTER, filterFleet, FleetStore } from "../src/lib/fleet";
import { bot } from "./helpers";

type BotRead = Schemas["BotRead"];

function statusEvent(id: number, botId: number, observedState: "running" | "stopped", updatedAt: string | null = null): LiveEvent {
  return {
    id, channel: "bot_status", op: "update", table: "bot_status",
    data: { botId, observedState, runtime: "process", workloadId: "pid:1", observedVersion: 1, restarts: 0, backoffS: 0, nextRetryAt: null,
      runningSince: null, quarantined: false, quarantineReason: null, quarantinedAt: null, lastError: null, lastErrorAt: null,
      lastHeartbeatAt: null, metricsPort: null, updatedAt, failureTimes: [] },
  } as LiveEvent;
}

function status(observedState: "running" | "stopped", updatedAt: string | null): NonNullable<BotRead["status"]> {
  return { observedState, runtime: "process", workloadId: null, observedVersion: 1, restarts: 0, backoffS: 0, nextRetryAt: null,
    runningSince: null, quarantined: false, quarantineReason: null, quarantinedAt: null, lastError: null, lastErrorAt: null,
    lastHeartbeatAt: null, metricsPort: null, updatedAt };
}

function position(qty: string, updatedAt: string): NonNullable<BotRead["position"]> {
  return { mode: "paper", symbol: "BTCUSDT", qty, avgEntryPrice: "100", cash: "9000", feesPaid: "1", realizedPnl: "0", updatedAt, openOrders: [] };
}

describe("FleetStore", () => {
  it("applies a batch once and replaces only the bots it touches", () => {
    const store = new FleetStore();
    store.load([bot(1), bot(2)], new Map([[1, 10000]]));
    let told = 0;
    store.subscribe(() => told++);
    const untouched = store.get(2);
    expect(store.apply([statusEvent(10, 1, "running"), statusEvent(11, 1, "running"), statusEvent(12, 99, "running")])).toBe(true);
    expect(told).toBe(1);
    expect(store.get(1)?.bot.status?.observedState).toBe("running");
    expect(store.get(2)).toBe(untouched);
    expect(store.get(1)?.equity).toEqual([10000]);
  });

  it("takes config rows, ignores older versions and drops deleted bots", () => {
    const store = new FleetStore();
    store.load([bot(1, { version: 3 })]);
    const { status: _s, position: _p, ...row } = bot(1, { version: 2, name: "old" });
    store.apply([{ id: 1, channel: "bot_config_changed", op: "update", table: "bot_configs", data: row } as LiveEvent]);
    expect(store.get(1)?.bot.name).toBe("bot-1");
    const { status: _s2, position: _p2, ...newer } = bot(1, { version: 4, name: "new" });
    store.apply([{ id: 2, channel: "bot_config_changed", op: "update", table: "bot_configs", data: newer } as LiveEvent]);
    expect(store.get(1)?.bot.name).toBe("new");
    const { status: _s3, position: _p3, ...created } = bot(5);
    store.apply([{ id: 3, channel: "bot_config_changed", op: "insert", table: "bot_configs", data: created } as LiveEvent]);
    expect(store.size).toBe(2);
    store.apply([{ id: 4, channel: "bot_config_changed", op: "update", table: "bot_configs", data: { ...created, version: 2, deletedAt: "2024-01-02T00:00:00Z" } } as LiveEvent]);
    expect(store.get(5)).toBeUndefined();
  });

  it("keeps what /ws brought when an older HTTP read arrives after it (an action's answer overtaken by the reconciler)", () => {
    const store = new FleetStore();
    store.load([bot(1, { status: status("stopped", "2026-12-05T03:45:00Z") })]);
    // start: the reconciler's status event reaches the page before the POST /start answer read before it
    store.apply([statusEvent(1, 1, "running", "2026-12-05T03:46:03.938Z")]);
    store.upsert(bot(1, { version: 2, desiredState: "running", status: status("stopped", "2026-12-05T03:45:00Z") }));
    expect(store.get(1)?.bot.status?.observedState).toBe("running");
    expect(store.get(1)?.bot.desiredState).toBe("running"); // the config of the newer version is taken
    // an older status event after a newer read is dropped too; an equal or newer one is taken
    store.upsert(bot(1, { version: 2, desiredState: "running", status: status("stopped", "2026-12-05T03:47:00Z") }));
    store.apply([statusEvent(2, 1, "running", "2026-12-05T03:46:30Z")]);
    expect(store.get(1)?.bot.status?.observedState).toBe("stopped");
    store.apply([statusEvent(3, 1, "running", "2026-12-05T03:47:00Z")]);
    expect(store.get(1)?.bot.status?.observedState).toBe("running");
    // an older config version read over HTTP does not replace a newer one; nor does a read without a status erase it
    store.upsert(bot(1, { version: 1, desiredState: "stopped", status: null }));
    expect(store.get(1)?.bot.desiredState).toBe("running");
    expect(store.get(1)?.bot.status?.observedState).toBe("running");
    // a full reload (resync) follows the same rule
    store.load([bot(1, { version: 2, desiredState: "running", status: status("stopped", "2026-12-05T03:40:00Z") })]);
    expect(store.get(1)?.bot.status?.observedState).toBe("running");
  });

  it("keeps the newer position of an HTTP read and a portfolio_state row", () => {
    const store = new FleetStore();
    store.load([bot(1, { position: position("1", "2026-12-05T03:46:10Z") })]);
    store.upsert(bot(1, { position: position("0", "2026-12-05T03:46:00Z") }));
    expect(store.get(1)?.bot.position?.qty).toBe("1");
    store.apply([{ id: 1, channel: "portfolio_state", op: "update", table: "portfolio_state",
      data: { id: 1, botId: 1, symbol: "BTCUSDT", qty: "0.5", avgEntryPrice: "100", markPrice: "120", cash: "9950", exposure: "60", unrealizedPnl: "10", updatedAt: "2026-12-05T03:46:05Z" } } as LiveEvent]);
    expect(store.get(1)?.bot.position?.qty).toBe("1");
    store.upsert(bot(1, { position: position("2", "2026-12-05T03:46:20Z") }));
    expect(store.get(1)?.bot.position?.qty).toBe("2");
  });

  it("samples equity from portfolio_state (cash + qty × mark, decimal strings)", () => {
    const store = new FleetStore();
    store.load([bot(1)]);
    store.apply([{ id: 1, channel: "portfolio_state", op: "update", table: "portfolio_state",
      data: { id: 1, botId: 1, symbol: "BTCUSDT", qty: "0.5", avgEntryPrice: "100", markPrice: "120", cash: "9950", exposure: "60", unrealizedPnl: "10", updatedAt: "2024-01-01T00:00:00Z" } } as LiveEvent]);
    expect(store.get(1)?.equity).toEqual([10010]);
  });

  it("takes equity samples read over HTTP for the bots it knows, with one notification", () => {
    const store = new FleetStore();
    store.load([bot(1), bot(2)], new Map([[1, 100]]));
    let told = 0;
    store.subscribe(() => told++);
    store.sample(new Map([[1, 101], [2, Number.NaN], [99, 5]]));
    expect(told).toBe(1);
    expect(store.get(1)?.equity).toEqual([100, 101]);
    expect(store.get(2)?.equity).toEqual([]);
    store.sample(new Map([[99, 5]]));
    expect(told).toBe(1); // nothing it knows changed
  });

  it("filters and offers the legal actions", () => {
    const bots = [bot(1, { desiredState: "running" }), bot(2, { mode: "live", name: "eth" }), bot(3, { desiredState: "paused" })].map((b) => ({ bot: b, equity: [] }));
    expect(filterFleet(bots, { ...EMPTY_FILTER, text: "ETH" }).map((b) => b.bot.id)).toEqual([2]);
    expect(filterFleet(bots, { ...EMPTY_FILTER, desired: "running" }).map((b) => b.bot.id)).toEqual([1]);
    expect(filterFleet(bots, { ...EMPTY_FILTER, observed: "pending" })).toHaveLength(3);
    expect(actionsFor(bot(1))).toEqual(["start"]);
    expect(actionsFor(bot(1, { desiredState: "running" }))).toEqual(["pause", "stop"]);
    expect(actionsFor(bot(1, { desiredState: "paused" }))).toEqual(["resume", "stop"]);
  });

  it("applies a 1,000-bot batch quickly", () => {
    const store = new FleetStore();
    store.load(Array.from({ length: 1000 }, (_, i) => bot(i + 1)));
    const batch = Array.from({ length: 1000 }, (_, i) => statusEvent(i + 1, i + 1, "running"));
    const started = performance.now();
    store.apply(batch);
    const rows = filterFleet(store.all(), EMPTY_FILTER);
    expect(rows.every((r) => r.bot.status?.observedState === "running")).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
  });
});
