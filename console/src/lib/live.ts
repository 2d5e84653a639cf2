/**
 * One `/ws` connection for the whole console (the generated client's `connectLive`: subscribe to every
 * channel, reconnect with backoff, resume with `since`). Events are queued and handed to the pages
 * once per animation frame, as one batch, so a burst of 1,000 updates is one render.
 */
import {
  connectLive, type ChannelName, type LiveConnection, type LiveEvent, type LiveSocket, type LiveSocketConstructor,
  type ResyncFrame, type ServerFrame, type WsSchemas,
} from "@gordon/manager-client";

export const CHANNELS: readonly ChannelName[] = [
  "bot_status", "bot_config_changed", "bot_events", "portfolio_state", "run_progress", "deploy_progress",
  "breaker_state", "risk_halt_changed", "source_freshness", "backfill_jobs",
];

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";
export type BreakerRow = WsSchemas["BreakerStateRow"];

export interface HubStatus {
  state: ConnectionState;
  /** Last outbox id seen (what a reconnection resumes from). */
  lastId: number | undefined;
  /** Connections opened so far (1 = never reconnected). */
  connects: number;
  version: string | undefined;
  lastResync: ResyncFrame | undefined;
}

type BatchListener = (events: readonly LiveEvent[]) => void;
type Scheduler = (flush: () => void) => void;

export interface HubOptions {
  /** How a flush is scheduled (default: requestAnimationFrame, or a 16 ms timer without one). */
  schedule?: Scheduler;
  connect?: typeof connectLive;
  WebSocketImpl?: LiveSocketConstructor;
}

const defaultSchedule: Scheduler = (flush) => {
  if (typeof requestAnimationFrame === "function" && typeof document !== "undefined" && !document.hidden) {
    requestAnimationFrame(() => flush());
  } else {
    setTimeout(flush, 16);
  }
};

export class LiveHub {
  private status: HubStatus = { state: "offline", lastId: undefined, connects: 0, version: undefined, lastResync: undefined };
  private readonly batchListeners = new Set<BatchListener>();
  private readonly statusListeners = new Set<() => void>();
  private readonly resyncListeners = new Set<(frame: ResyncFrame) => void>();
  private readonly breakerListeners = new Set<(items: BreakerRow[]) => void>();
  private queue: LiveEvent[] = [];
  private scheduled = false;
  private connection: LiveConnection | null = null;
  private readonly schedule: Scheduler;
  private readonly connect: typeof connectLive;
  private readonly WebSocketImpl: LiveSocketConstructor | undefined;

  constructor(options: HubOptions = {}) {
    this.schedule = options.schedule ?? defaultSchedule;
    this.connect = options.connect ?? connectLive;
    this.WebSocketImpl = options.WebSocketImpl;
  }

  getStatus = (): HubStatus => this.status;

  /** Connect (again, e.g. with another read token). */
  start(url: string, readToken?: string): void {
    this.connection?.close();
    const this_ = this; // eslint-disable-line @typescript-eslint/no-this-alias
    const Base = this.WebSocketImpl ?? (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket;
    if (!Base) {
      throw new Error("no WebSocket in this environment");
    }
    // The client reports frames, not the socket's life: the socket tells the indicator when it closes.
    const Tracked = function (target: string, protocols?: string | string[]): LiveSocket {
      this_.setStatus({ state: this_.status.connects === 0 ? "connecting" : "reconnecting" });
      const socket = new Base(target, protocols);
      const events = socket as unknown as { addEventListener?: (type: string, cb: () => void) => void };
      events.addEventListener?.("close", () => {
        if (this_.connection !== null) {
          this_.setStatus({ state: "reconnecting" });
        }
      });
      return socket;
    } as unknown as LiveSocketConstructor;

    const options = {
      channels: CHANNELS,
      WebSocketImpl: Tracked,
      ...(readToken ? { readToken } : {}),
      ...(this.status.lastId !== undefined ? { since: this.status.lastId } : {}),
      onEvent: (event: LiveEvent) => this.ingest(event),
      onResync: (frame: ResyncFrame) => {
        this.setStatus({ lastResync: frame });
        this.resyncListeners.forEach((listener) => listener(frame));
      },
      onFrame: (frame: ServerFrame) => this.onFrame(frame),
    };
    this.connection = this.connect(url, options);
  }

  stop(): void {
    const connection = this.connection;
    this.connection = null;
    connection?.close();
    this.setStatus({ state: "offline" });
  }

  /** Drop the socket and resume at once (the indicator's "reconnect"). */
  reconnect(): void {
    this.connection?.reconnect();
  }

  onFrame(frame: ServerFrame): void {
    if (frame.type === "welcome") {
      this.setStatus({ state: "live", connects: this.status.connects + 1, version: frame.version });
    } else if (frame.type === "snapshot") {
      this.breakerListeners.forEach((listener) => listener(frame.items));
    } else if (frame.type === "heartbeat" && this.status.state !== "live") {
      this.setStatus({ state: "live" });
    }
  }

  /** An event from the socket: queued, delivered with the others of this frame. */
  ingest(event: LiveEvent): void {
    if ("id" in event) {
      this.status = { ...this.status, lastId: Math.max(this.status.lastId ?? 0, event.id) };
    }
    this.queue.push(event);
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => this.flush());
    }
  }

  /** When the last batch was handed over (performance.now()), for the render timing of the pages. */
  lastFlush: { at: number; size: number } | undefined;

  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) {
      return;
    }
    const batch = this.queue;
    this.queue = [];
    this.lastFlush = { at: typeof performance === "undefined" ? Date.now() : performance.now(), size: batch.length };
    this.batchListeners.forEach((listener) => listener(batch));
  }

  subscribe(listener: BatchListener): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  onStatus = (listener: () => void): (() => void) => {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  };

  onResync(listener: (frame: ResyncFrame) => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  onBreakerSnapshot(listener: (items: BreakerRow[]) => void): () => void {
    this.breakerListeners.add(listener);
    return () => this.breakerListeners.delete(listener);
  }

  private setStatus(patch: Partial<HubStatus>): void {
    this.status = { ...this.status, ...patch };
    this.statusListeners.forEach((listener) => listener());
  }
}

/** Events of one channel, typed. */
export function ofChannel<C extends ChannelName>(events: readonly LiveEvent[], channel: C): Extract<LiveEvent, { channel: C }>[] {
  return events.filter((event): event is Extract<LiveEvent, { channel: C }> => event.channel === channel);
}

export const hub = new LiveHub();
