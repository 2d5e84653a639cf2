/**
 * Typed client of the gordon-manager HTTP API.
 *
 * `schema.d.ts` is generated from the repository's `openapi.yaml` by openapi-typescript (`make openapi`
 * regenerates both; a test fails when it is stale): nothing in it is written by hand. Requests and
 * answers are typed per path, method, parameter, body, status and media type; every error of the API
 * is an RFC 9457 `Problem` (`application/problem+json`).
 */
import createFetchClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

/** Every named schema of the API (`Schemas["BotRead"]`, `Schemas["RunDetail"]`, …). */
export type Schemas = components["schemas"];
/** The body of every error: RFC 9457 problem details with the request id and, for a 422, field errors. */
export type Problem = components["schemas"]["Problem"];
/** One field error of a validation problem (`field` is spelled as the contract spells it). */
export type FieldError = NonNullable<Problem["errors"]>[number];
/** The typed client: `GET`, `POST`, `PUT`, `PATCH`, `DELETE` per path of the API. */
export type ManagerClient = Client<paths>;

export interface ManagerClientOptions extends ClientOptions {
  /** The base URL of the manager, e.g. `http://localhost:8083` (default: the page's origin). */
  baseUrl?: string;
  /** Sent as `X-Operator-Token`: every mutation and `GET /config` need it; it also reads. */
  operatorToken?: string;
  /** Sent as `X-Read-Token`: needed by reads when the server sets `GORDON_MANAGER_READ_TOKEN`. */
  readToken?: string;
}

/** A client of the API; the tokens given here go with every request (a request's own headers win). */
export function createClient(options: ManagerClientOptions = {}): ManagerClient {
  const { operatorToken, readToken, ...fetchOptions } = options;
  const client = createFetchClient<paths>(fetchOptions);
  const tokens: Middleware = {
    onRequest({ request }) {
      if (operatorToken && !request.headers.has("X-Operator-Token")) {
        request.headers.set("X-Operator-Token", operatorToken);
      }
      if (readToken && !request.headers.has("X-Read-Token")) {
        request.headers.set("X-Read-Token", readToken);
      }
      return request;
    },
  };
  client.use(tokens);
  return client;
}

/** Whether `value` is a problem body (what `error` holds for every error status of the API). */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const candidate = value as Record<string, unknown>;
  return typeof candidate.type === "string" && typeof candidate.title === "string"
    && typeof candidate.status === "number" && typeof candidate.detail === "string";
}

export {
  connectLive, type ChannelName, type ClientFrame, type LiveConnection, type LiveEvent, type LiveEventOf,
  type LiveOptions, type LiveSocket, type LiveSocketConstructor, type ResyncFrame, type ServerFrame, type WsSchemas,
  type wsComponents,
} from "./live.js";
