/**
 * The live events, typed: subscribe to `bot_config_changed` and `bot_status`, create a bot over HTTP,
 * see its `bot_config_changed` event, drop the connection and see the client resubscribe with `since`.
 * Every frame and payload type comes from `asyncapi.yaml` (src/ws.d.ts).
 *
 *     npm run example:live -- http://localhost:8083 "$TOKEN"
 */
import { connectLive, createClient, type LiveEventOf, type LiveSocketConstructor } from "../src/index.js";

export interface LiveReport {
  createdId: number;
  eventId: number;
  resubscribedSince: number | null;
}

/** Type-checks only: `data` is the row of the event's channel. */
export function summary(event: LiveEventOf<"bot_status" | "bot_config_changed">): string {
  if (event.channel === "bot_status") {
    // @ts-expect-error -- a bot_status row has no `name` (that is bot_config_changed's)
    void event.data.name;
    return `bot ${event.data.botId} is ${event.data.observedState}`;
  }
  const version: number = event.data.version;
  return `bot ${event.data.id} (${event.data.name}) is at version ${version}`;
}

export async function live(baseUrl: string, operatorToken: string, WebSocketImpl?: LiveSocketConstructor): Promise<LiveReport> {
  const name = `ts-live-${Date.now()}`;
  let created = -1;
  let subscribedOnce!: () => void;
  const firstSubscribed = new Promise<void>((resolve) => { subscribedOnce = resolve; });
  let sawEvent!: (id: number) => void;
  const event = new Promise<number>((resolve) => { sawEvent = resolve; });
  let resubscribed!: (since: number | null) => void;
  const again = new Promise<number | null>((resolve) => { resubscribed = resolve; });
  let subscriptions = 0;

  const connection = connectLive(baseUrl.replace(/^http/, "ws") + "/ws", {
    channels: ["bot_config_changed", "bot_status"],
    ...(WebSocketImpl ? { WebSocketImpl } : {}),
    onEvent(e) {
      console.log(summary(e));
      if (e.channel === "bot_config_changed" && e.data.name === name) {
        sawEvent(e.id);
      }
    },
    onResync(frame) {
      console.log(`resync (${frame.reason}): re-read over HTTP`);
    },
    onFrame(frame) {
      if (frame.type === "subscribed") {
        subscriptions += 1;
        if (subscriptions === 1) {
          subscribedOnce();
        } else {
          resubscribed(frame.since ?? null); // the reconnection asked for what came after the last id
        }
      } else if (frame.type === "error") {
        console.error(`refused: ${frame.code} ${frame.detail}`);
      }
    },
  });
  const timeout = setTimeout(() => connection.close(), 30_000);
  try {
    await firstSubscribed;
    const operator = createClient({ baseUrl, operatorToken });
    const answer = await operator.POST("/bots", {
      body: { name, strategy: "sma_crossover", symbol: "BTCUSDT", interval: "1m", params: { fast: 10, slow: 30 } },
    });
    if (answer.error) {
      throw new Error(answer.error.detail);
    }
    created = answer.data.id;
    const eventId = await event;
    connection.reconnect();
    return { createdId: created, eventId, resubscribedSince: await again };
  } finally {
    clearTimeout(timeout);
    connection.close();
  }
}

/** `node live.js <base URL> <operator token>`: Node < 22 has no global WebSocket, so `ws` stands in. */
const [baseUrl, token] = (globalThis as { process?: { argv: string[] } }).process?.argv.slice(2) ?? [];
if (baseUrl && token) {
  const global = (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket;
  const impl = global ?? ((await import("ws" as string)) as { WebSocket: LiveSocketConstructor }).WebSocket;
  live(baseUrl, token, impl).then((report) => console.log(JSON.stringify(report)), (error: unknown) => {
    console.error(error);
    (globalThis as { process?: { exitCode?: number } }).process!.exitCode = 1;
  });
}
