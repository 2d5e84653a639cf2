/**
 * The fleet as the console holds it: every bot (GET /bots pages), kept current by /ws batches
 * (`bot_config_changed`, `bot_status`, `portfolio_state`). A batch makes new objects only for the bots
 * it touches, then one notification, so unchanged rows are not re-rendered.
 */
import type { LiveEvent, Schemas, WsSchemas } from "@gordon/manager-client";

import { num, pushCapped } from "./format";

export type BotRead = Schemas["BotRead"];
export type BotStatus = Schemas["BotStatusRead"];
type ConfigRow = WsSchemas["BotConfigRow"];
type StatusRow = WsSchemas["BotStatusRow"];
type PositionRow = WsSchemas["PortfolioStateRow"];

export interface FleetBot {
  bot: BotRead;
  /** Equity samples for the sparkline (oldest first). */
  equity: number[];
}

export interface FleetFilter {
  text: string;
  observed: string;
  desired: string;
  mode: string;
  quarantined: boolean;
}

export const EMPTY_FILTER: FleetFilter = { text: "", observed: "", desired: "", mode: "", quarantined: false };
export const SPARK_POINTS = 60;

export class FleetStore {
  private bots = new Map<number, FleetBot>();
  private listeners = new Set<() => void>();
  version = 0;
  loaded = false;

  getVersion = (): number => this.version;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  get(id: number): FleetBot | undefined {
    return this.bots.get(id);
  }

  all(): FleetBot[] {
    return [...this.bots.values()];
  }

  get size(): number {
    return this.bots.size;
  }

  /** Replace everything (a full read over HTTP: first load, or after a resync). */
  load(bots: readonly BotRead[], equity: ReadonlyMap<number, number> = new Map()): void {
    const next = new Map<number, FleetBot>();
    for (const bot of bots) {
      const previous = this.bots.get(bot.id);
      const sample = equity.get(bot.id);
      const history = previous?.equity ?? [];
      next.set(bot.id, { bot: previous ? newerBot(previous.bot, bot) : bot, equity: sample !== undefined && Number.isFinite(sample) ? pushCapped(history, sample, SPARK_POINTS) : history });
    }
    this.bots = next;
    this.loaded = true;
    this.bump();
  }

  /** A new equity sample per bot (GET /portfolio: equity points have no /ws channel). */
  sample(equity: ReadonlyMap<number, number>): void {
    let changed = false;
    for (const [id, value] of equity) {
      const entry = this.bots.get(id);
      if (entry && Number.isFinite(value)) {
        this.bots.set(id, { ...entry, equity: pushCapped(entry.equity, value, SPARK_POINTS) });
        changed = true;
      }
    }
    if (changed) {
      this.bump();
    }
  }

  /**
   * One bot read over HTTP (after an action or an edit). The read may be older than what /ws already
   * brought: an action's answer is read when the action commits, and the reconciler's status event
   * can reach the page first. So each part keeps the newer of the two: the config by version, the
   * status and the position by their updatedAt.
   */
  upsert(bot: BotRead): void {
    const previous = this.bots.get(bot.id);
    this.bots.set(bot.id, { bot: previous ? newerBot(previous.bot, bot) : bot, equity: previous?.equity ?? [] });
    this.bump();
  }

  remove(id: number): void {
    if (this.bots.delete(id)) {
      this.bump();
    }
  }

  /** Apply one /ws batch; returns whether anything changed (then listeners were told once). */
  apply(events: readonly LiveEvent[]): boolean {
    let changed = false;
    for (const event of events) {
      if (event.channel === "bot_config_changed" && "table" in event) {
        changed = this.applyConfig(event.op, event.data) || changed;
      } else if (event.channel === "bot_status" && "table" in event) {
        changed = this.applyStatus(event.data) || changed;
      } else if (event.channel === "portfolio_state" && "table" in event) {
        changed = this.applyPosition(event.data) || changed;
      }
    }
    if (changed) {
      this.bump();
    }
    return changed;
  }

  private applyConfig(op: string, row: ConfigRow): boolean {
    const previous = this.bots.get(row.id);
    if (op === "delete" || row.deletedAt) {
      return this.bots.delete(row.id);
    }
    if (previous && previous.bot.version > row.version) {
      return false; // an older row than what we hold (an HTTP read overtook the event)
    }
    const bot: BotRead = { ...row, status: previous?.bot.status ?? null, position: previous?.bot.position ?? null };
    this.bots.set(row.id, { bot, equity: previous?.equity ?? [] });
    return true;
  }

  private applyStatus(row: StatusRow): boolean {
    const previous = this.bots.get(row.botId);
    if (!previous || isOlder(row, previous.bot.status)) {
      return false;
    }
    const { botId: _botId, failureTimes: _failures, ...status } = row;
    this.bots.set(row.botId, { ...previous, bot: { ...previous.bot, status: status as BotStatus } });
    return true;
  }

  private applyPosition(row: PositionRow): boolean {
    if (row.botId === null) {
      return false;
    }
    const previous = this.bots.get(row.botId);
    if (!previous || isOlder(row, previous.bot.position)) {
      return false;
    }
    const position = previous.bot.position
      ? { ...previous.bot.position, qty: row.qty, avgEntryPrice: row.avgEntryPrice, cash: row.cash, updatedAt: row.updatedAt }
      : null;
    const qty = num(row.qty);
    const mark = num(row.markPrice);
    const equity = num(row.cash) + (qty === 0 ? 0 : qty * mark);
    this.bots.set(row.botId, {
      bot: { ...previous.bot, position },
      equity: Number.isFinite(equity) ? pushCapped(previous.equity, equity, SPARK_POINTS) : previous.equity,
    });
    return true;
  }

  private bump(): void {
    this.version += 1;
    this.listeners.forEach((listener) => listener());
  }
}

function time(at: string | null | undefined): number {
  const t = at ? Date.parse(at) : Number.NaN;
  return Number.isFinite(t) ? t : Number.NEGATIVE_INFINITY;
}

/** Whether ``row`` was written before ``held`` (null: nothing held, so not older). */
function isOlder(row: { updatedAt: string | null }, held: { updatedAt: string | null } | null): boolean {
  return held !== null && time(row.updatedAt) < time(held.updatedAt);
}

/** The newer of two reads of one part (ties: the incoming one; a read without it keeps what is held). */
function newer<T extends { updatedAt: string | null }>(held: T | null, incoming: T | null): T | null {
  return incoming === null || isOlder(incoming, held) ? held ?? incoming : incoming;
}

/** Of two reads of one bot, each part as the newer one has it (ties: the incoming read). */
function newerBot(held: BotRead, incoming: BotRead): BotRead {
  const base = held.version > incoming.version ? held : incoming;
  return { ...base, status: newer(held.status, incoming.status), position: newer(held.position, incoming.position) };
}

/** The bots a filter keeps, by id. */
export function filterFleet(bots: readonly FleetBot[], filter: FleetFilter): FleetBot[] {
  const text = filter.text.trim().toLowerCase();
  return bots
    .filter(({ bot }) => {
      if (text && !`${bot.name} ${bot.strategy} ${bot.symbol} ${bot.id}`.toLowerCase().includes(text)) {
        return false;
      }
      if (filter.observed && (bot.status?.observedState ?? "pending") !== filter.observed) {
        return false;
      }
      if (filter.desired && bot.desiredState !== filter.desired) {
        return false;
      }
      if (filter.mode && bot.mode !== filter.mode) {
        return false;
      }
      return !(filter.quarantined && !bot.status?.quarantined);
    })
    .sort((a, b) => a.bot.id - b.bot.id);
}

/** The lifecycle actions a bot offers in its current desired state. */
export function actionsFor(bot: BotRead): ("start" | "pause" | "resume" | "stop")[] {
  switch (bot.desiredState) {
    case "stopped":
      return ["start"];
    case "running":
      return ["pause", "stop"];
    case "paused":
      return ["resume", "stop"];
  }
}

export const fleet = new FleetStore();
