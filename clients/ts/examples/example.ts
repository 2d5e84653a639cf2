/**
 * A typed tour of the gordon-manager API with the generated client: list bots, create a bot with the
 * operator token, handle a problem (typed), read a run's equity. Every type comes from `openapi.yaml`.
 *
 * Build and run it against a manager (`make run`; the token is in <data dir>/operator-token):
 *
 *     npm run example -- http://localhost:8083 "$TOKEN"
 */
import { createClient, isProblem, type Problem, type Schemas } from "../src/index.js";

/** What the tour saw (returned so that a test can check it). */
export interface TourReport {
  botNames: string[];
  created: { id: number; etag: string | null; location: string | null };
  validationFields: string[];
  equityPoints: number;
}

/** One line for an error of the API: every error status answers a `Problem`. */
export function describe(problem: Problem): string {
  const fields = (problem.errors ?? []).map((error) => `${error.field}: ${error.message}`);
  return `${problem.status} ${problem.title}: ${problem.detail}` + (fields.length ? ` (${fields.join("; ")})` : "")
    + (problem.requestId ? ` [request ${problem.requestId}]` : "");
}

export async function tour(baseUrl: string, operatorToken: string): Promise<TourReport> {
  const reader = createClient({ baseUrl });
  const operator = createClient({ baseUrl, operatorToken });

  // 1. Every bot, page by page (keyset: follow `nextCursor` until it is null).
  const bots: Schemas["BotRead"][] = [];
  let cursor: string | null = null;
  do {
    const { data, error } = await reader.GET("/bots", { params: { query: { limit: 100, cursor } } });
    if (error) {
      throw new Error(describe(error));
    }
    const page: Schemas["BotPage"] = data;
    bots.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);

  // 2. A new bot (a mutation: the operator token). The body is checked by the compiler: a missing
  //    `symbol` or a `mode: "papper"` does not build. Decimals are strings (numbers are accepted too).
  const name = `ts-example-${Date.now()}`;
  const created = await operator.POST("/bots", {
    params: { header: { "Idempotency-Key": name } },
    body: {
      name, strategy: "sma_crossover", symbol: "BTCUSDT", interval: "1m", mode: "paper",
      params: { fast: 10, slow: 30 }, execution: { initialCash: "10000", takerFeeBps: "7.5" },
      labels: { team: "console" },
    },
  });
  if (created.error) {
    throw new Error(describe(created.error));
  }
  const bot: Schemas["BotRead"] = created.data;
  const initialCash: string = bot.execution.initialCash; // "10000": exact, never a float

  // 3. A refusal, typed: fast ≥ slow is a 422 whose `errors` name the fields (`params.fast`, …).
  const refused = await operator.POST("/bots", {
    body: { name: `${name}-bad`, strategy: "sma_crossover", symbol: "BTCUSDT", interval: "1m",
            params: { fast: 30, slow: 10 } },
  });
  const validationFields: string[] = [];
  if (refused.error) {
    const problem: Problem = refused.error;
    if (problem.status === 422) {
      validationFields.push(...(problem.errors ?? []).map((error) => error.field));
    }
  } else {
    throw new Error("fast >= slow was accepted");
  }
  if (!isProblem(refused.error)) {
    throw new Error("an error that is not a problem");
  }

  // 4. A run's equity: the newest backtest's, the whole range downsampled to at most 500 points.
  let equityPoints = 0;
  const runs = await reader.GET("/runs", { params: { query: { kind: "backtest", limit: 1 } } });
  const run: Schemas["RunRead"] | undefined = runs.data?.items[0];
  if (run) {
    const equity = await reader.GET("/runs/{runId}/equity", {
      params: { path: { runId: run.id }, query: { points: 500, method: "lttb" } },
    });
    if (equity.error) {
      throw new Error(describe(equity.error));
    }
    for (const point of equity.data.items) {
      const text: string = point.equity; // a decimal string, like every amount ("10512.25")
      if (Number.isFinite(Number(text))) {
        equityPoints += 1;
      }
    }
  }

  console.log(`${bots.length} bots before; created ${bot.name} (#${bot.id}, initial cash ${initialCash})`);
  return {
    botNames: bots.map((b) => b.name),
    created: { id: bot.id, etag: created.response.headers.get("ETag"), location: created.response.headers.get("Location") },
    validationFields,
    equityPoints,
  };
}

/** `node example.js <base URL> <operator token>` */
const [baseUrl, token] = (globalThis as { process?: { argv: string[] } }).process?.argv.slice(2) ?? [];
if (baseUrl && token) {
  tour(baseUrl, token).then((report) => console.log(JSON.stringify(report)), (error: unknown) => {
    console.error(error);
    (globalThis as { process?: { exitCode?: number } }).process!.exitCode = 1;
  });
}
