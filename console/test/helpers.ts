import type { Schemas } from "@gordon/manager-client";

type BotRead = Schemas["BotRead"];

/** A bot as GET /bots answers it. */
export function bot(id: number, patch: Partial<BotRead> = {}): BotRead {
  return {
    id, name: `bot-${id}`, strategy: "sma_crossover", symbol: "BTCUSDT", interval: "1m", params: { fast: 10, slow: 30 },
    execution: { initialCash: "10000", takerFeeBps: "10", makerFeeBps: "10", slippageBps: "1", positionFraction: "1", qtyStep: "0.00000001", priceStep: "0.01", cashStep: "0.01" },
    mode: "paper", image: "img", desiredState: "stopped", version: 1, specVersion: 1, shadowOf: null, labels: {}, createdBy: "operator",
    createdAt: "2024-01-01T00:00:00Z", updatedAt: "2024-01-01T00:00:00Z", deleteRequestedAt: null, deletedAt: null, flattenOnStop: false,
    status: null, position: null, ...patch,
  };
}

