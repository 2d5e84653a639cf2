/**
 * The API as the console calls it: the generated typed client (`@gordon/manager-client`, clients/ts)
 * with the tokens the operator entered for this browser session (sessionStorage: never a URL, never
 * a log). A 401/403 from any call asks for the token again (the `auth` listeners open the dialog).
 */
import { createClient, isProblem, type ManagerClient, type Problem } from "@gordon/manager-client";

const OPERATOR_KEY = "gordon.operatorToken";
const READ_KEY = "gordon.readToken";

export interface Tokens {
  operator: string;
  read: string;
}

export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function storage(): TokenStorage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

export function loadTokens(store: TokenStorage | null = storage()): Tokens {
  return { operator: store?.getItem(OPERATOR_KEY) ?? "", read: store?.getItem(READ_KEY) ?? "" };
}

export function saveTokens(tokens: Tokens, store: TokenStorage | null = storage()): void {
  for (const [key, value] of [[OPERATOR_KEY, tokens.operator], [READ_KEY, tokens.read]] as const) {
    if (value) {
      store?.setItem(key, value);
    } else {
      store?.removeItem(key);
    }
  }
}

export type AuthReason = { status: 401 | 403; detail: string; write: boolean };
type AuthListener = (reason: AuthReason) => void;
const authListeners = new Set<AuthListener>();
let tokens = loadTokens();
let client = build(tokens);

function build(current: Tokens): ManagerClient {
  const created = createClient({
    baseUrl: globalThis.location?.origin ?? "http://127.0.0.1:8083",
    ...(current.operator ? { operatorToken: current.operator } : {}),
    ...(current.read ? { readToken: current.read } : {}),
  });
  created.use({
    async onResponse({ request, response }) {
      if (response.status === 401 || response.status === 403) {
        let detail = response.statusText;
        try {
          const body: unknown = await response.clone().json();
          if (isProblem(body)) {
            detail = body.detail;
          }
        } catch {
          // not JSON: keep the status text
        }
        // A 403 of the risk peer or a refused origin is not about our token: only ask when it is.
        if (response.status === 401 || /token/i.test(detail)) {
          const write = !["GET", "HEAD"].includes(request.method);
          authListeners.forEach((listener) => listener({ status: response.status as 401 | 403, detail, write }));
        }
      }
      return response;
    },
  });
  return created;
}

/** The typed client with the session's tokens. */
export function api(): ManagerClient {
  return client;
}

export function currentTokens(): Tokens {
  return tokens;
}

export function setTokens(next: Tokens): void {
  tokens = next;
  saveTokens(next);
  client = build(next);
}

export function onAuthNeeded(listener: AuthListener): () => void {
  authListeners.add(listener);
  return () => authListeners.delete(listener);
}

/** A failed call's problem, or a plain one for a network error. */
export function asProblem(error: unknown, status = 0): Problem {
  if (isProblem(error)) {
    return error;
  }
  const detail = error instanceof Error ? error.message : String(error ?? "request failed");
  return { type: "about:blank", title: "Request failed", status, detail } as Problem;
}

/** `If-Match` for a bot version. */
export function ifMatch(version: number): { "If-Match": string } {
  return { "If-Match": `"${version}"` };
}

/** The WebSocket URL of this origin. */
export function wsUrl(): string {
  const { protocol, host } = globalThis.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}/ws`;
}
