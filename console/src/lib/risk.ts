/** Breakers (the snapshot each subscription sends, then deltas) and risk halts (risk_halt_changed), from /ws. */
import type { LiveEvent, WsSchemas } from "@gordon/manager-client";

type Breaker = WsSchemas["BreakerStateRow"];
type Halt = WsSchemas["RiskHaltRow"];

export class RiskStore {
  breakers = new Map<string, Breaker>();
  halts = new Map<string, Halt>();
  snapshotAt: string | undefined;
  version = 0;
  private listeners = new Set<() => void>();

  getVersion = (): number => this.version;
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot(items: readonly Breaker[]): void {
    this.breakers = new Map(items.map((item) => [item.breaker, item]));
    this.snapshotAt = new Date().toISOString();
    this.bump();
  }

  apply(events: readonly LiveEvent[]): void {
    let changed = false;
    for (const event of events) {
      if (event.channel === "risk_halt_changed" && "table" in event) {
        this.halts.set(event.data.scope, event.data);
        changed = true;
      } else if (event.channel === "breaker_state") {
        if ("source" in event) {
          const previous = this.breakers.get(event.data.breaker);
          this.breakers.set(event.data.breaker, {
            ...(previous ?? { data: {}, trippedAt: null }),
            breaker: event.data.breaker, state: event.data.state, reason: event.data.reason, updatedAt: event.data.at,
          } as Breaker);
        } else if (event.op === "delete") {
          this.breakers.delete(event.data.breaker);
        } else {
          this.breakers.set(event.data.breaker, event.data);
        }
        changed = true;
      }
    }
    if (changed) {
      this.bump();
    }
  }

  private bump(): void {
    this.version += 1;
    this.listeners.forEach((listener) => listener());
  }
}

export const risk = new RiskStore();
