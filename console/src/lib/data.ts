/** Reads shared by several pages. */
import type { Schemas } from "@gordon/manager-client";

import { api } from "./api";
import { num } from "./format";
import { fleet } from "./fleet";

/** Every bot (GET /bots, all pages) into the fleet store, with each bot's live equity as a first sparkline sample. */
export async function loadFleet(): Promise<void> {
  const bots: Schemas["BotRead"][] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const { data, error } = await api().GET("/bots", { params: { query: { limit: 1000, ...(cursor ? { cursor } : {}) } } });
    if (error || !data) {
      throw error ?? new Error("GET /bots failed");
    }
    bots.push(...data.items);
    if (!data.nextCursor) {
      break;
    }
    cursor = data.nextCursor;
  }
  fleet.load(bots, await liveEquity());
}

/** Each bot's newest equity (its live run's, else its positions' total), from GET /portfolio. */
export async function liveEquity(): Promise<Map<number, number>> {
  const equity = new Map<number, number>();
  const portfolio = await api().GET("/portfolio");
  for (const entry of portfolio.data?.bots ?? []) {
    const value = num(entry.liveRun?.equity ?? entry.totals.equity);
    if (entry.botId !== null && Number.isFinite(value)) {
      equity.set(entry.botId, value);
    }
  }
  return equity;
}

/** Equity points have no /ws channel: the fleet's sparklines take a sample this often while it is open. */
export const EQUITY_SAMPLE_MS = 15_000;
