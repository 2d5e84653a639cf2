/**
 * A small typed client of `GET /ws` (the live events). Every frame and payload type comes from
 * `ws.d.ts`, generated from the repository's `asyncapi.yaml` (`make openapi`): nothing about their
 * shapes is written here. `onEvent` gets each event typed by its `channel` (a discriminated union:
 * `if (e.channel === "bot_status") e.data.observedState`). The connection comes back by itself, and
 * resubscribes with `since` = the last outbox id it saw, so that nothing committed meanwhile is missed
 * (or a `resync` says that it could not be replayed). Without a `since` of its own it resumes from the
 * `lastId` of the first `welcome`, so a drop before the first event loses nothing either. A connection
 * that stays silent for `silenceFactor` heartbeat periods (the `welcome` says the period) is taken for
 * dead (a half-open TCP connection never closes by itself) and replaced.
 */
import type { components } from "./ws.js";

export type { components as wsComponents } from "./ws.js";

/** Every named schema of the WebSocket protocol (`WsSchemas["BotStatusRow"]`, …). */
export type WsSchemas = components["schemas"];
export type ChannelName = WsSchemas["ChannelName"];
/** What the console sends: `subscribe`, `unsubscribe`, `ping`. */
export type ClientFrame = WsSchemas["ClientFrame"];
/** What the manager sends: `welcome`, `snapshot`, `event`, `batch`, `subscribed`, … */
export type ServerFrame = WsSchemas["ServerFrame"];
/** One event of any channel (`event` frames and `batch` items), told apart by `channel`. */
export type LiveEvent = WsSchemas["EventItem"];
/** The events of some channels. */
export type LiveEventOf<C extends ChannelName> = Extract<LiveEvent, { channel: C }>;
export type ResyncFrame = WsSchemas["Resync"];

/** What connectLive needs of a WebSocket: the browser's, Node ≥ 22's, or the `ws` package's. */
export interface LiveSocket {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type LiveSocketConstructor = new (url: string, protocols?: string | string[]) => LiveSocket;

export interface LiveOptions<C extends ChannelName> {
  /** The channels to receive (at most 10). */
  channels: readonly C[];
  /** The read token, when the manager sets `GORDON_MANAGER_READ_TOKEN` (sent as a subprotocol). */
  readToken?: string;
  /** Resume after this outbox id (the missed events come first, as `batch` frames with `replay`). */
  since?: number;
  /** Each event of the subscribed channels, live or replayed. */
  onEvent(event: LiveEventOf<C>): void;
  /** Events were (or may have been) missed: re-read the state over HTTP. */
  onResync?(frame: ResyncFrame): void;
  /** Every frame, as received (welcome, snapshot, subscribed, error, heartbeat, …). */
  onFrame?(frame: ServerFrame): void;
  /** The WebSocket class (default: `globalThis.WebSocket`). */
  WebSocketImpl?: LiveSocketConstructor;
  /** First delay before reconnecting, doubled up to 30 s (default 500 ms). */
  reconnectDelayMs?: number;
  /** Heartbeat periods without any frame after which the connection is replaced (default 3). */
  silenceFactor?: number;
  /** The connection is up (`true`, after `welcome`) or down (`false`): for a connection indicator. */
  onStatus?(up: boolean): void;
}

export interface LiveConnection {
  /** The last outbox id seen (what a reconnection sends as `since`). */
  readonly lastId: number | undefined;
  /** Drop the socket and connect again (resubscribing with `since`). */
  reconnect(): void;
  /** Close for good. */
  close(): void;
}

/** Connects to `url` (`ws://host:port/ws`) and subscribes to `options.channels`. */
export function connectLive<C extends ChannelName>(url: string, options: LiveOptions<C>): LiveConnection {
  const Impl = options.WebSocketImpl ?? (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket;
  if (!Impl) {
    throw new Error("no WebSocket here: pass WebSocketImpl (e.g. the `ws` package's WebSocket)");
  }
  const protocols = ["gordon.v1", ...(options.readToken ? [`gordon.read-token.${options.readToken}`] : [])];
  const wanted = new Set<ChannelName>(options.channels);
  const firstDelay = options.reconnectDelayMs ?? 500;
  let lastId = options.since;
  let delay = firstDelay;
  let closed = false;
  let socket: LiveSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  let silenceMs: number | undefined;

  const retry = () => {
    options.onStatus?.(false);
    if (!closed) {
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 30_000);
    }
  };

  /** Give up on `current` (silent, or replaced) without waiting for its close handshake. */
  const drop = (current: LiveSocket) => {
    if (socket !== current) {
      return;
    }
    socket = null;
    clearTimeout(watchdog);
    current.close();
    retry();
  };

  const watch = (current: LiveSocket) => {
    clearTimeout(watchdog);
    if (silenceMs !== undefined) {
      watchdog = setTimeout(() => drop(current), silenceMs);
    }
  };

  const deliver = (event: LiveEvent) => {
    if ("id" in event) {
      lastId = Math.max(lastId ?? 0, event.id);
    }
    if (wanted.has(event.channel)) {
      options.onEvent(event as LiveEventOf<C>);
    }
  };

  const open = () => {
    const current = new Impl(url, protocols);
    socket = current;
    current.onopen = () => {
      const subscribe: ClientFrame = { type: "subscribe", channels: [...options.channels] };
      if (lastId !== undefined) {
        subscribe.since = lastId;
      }
      current.send(JSON.stringify(subscribe));
    };
    current.onmessage = ({ data }) => {
      if (socket !== current) {
        return;
      }
      const frame = JSON.parse(typeof data === "string" ? data : String(data)) as ServerFrame;
      options.onFrame?.(frame);
      switch (frame.type) {
        case "welcome":
          delay = firstDelay;
          silenceMs = frame.heartbeatS * 1000 * (options.silenceFactor ?? 3);
          if (lastId === undefined && frame.lastId !== null && frame.lastId !== undefined) {
            lastId = frame.lastId;
          }
          options.onStatus?.(true);
          break;
        case "event":
          deliver(frame);
          break;
        case "batch":
          frame.events.forEach(deliver);
          break;
        case "resync":
          options.onResync?.(frame);
          break;
      }
      watch(current); // any frame proves the connection alive (the welcome set the period)
    };
    current.onerror = () => undefined; // onclose follows
    current.onclose = () => {
      if (socket !== current) {
        return;
      }
      socket = null;
      clearTimeout(watchdog);
      retry();
    };
  };
  open();

  return {
    get lastId() {
      return lastId;
    },
    reconnect() {
      const previous = socket;
      socket = null;
      previous?.close();
      clearTimeout(timer);
      clearTimeout(watchdog);
      if (!closed) {
        open();
      }
    },
    close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(watchdog);
      socket?.close();
      socket = null;
    },
  };
}
