/** One bot: status and actions, config (edit with If-Match), equity chart, live events, round trips, audit, metrics. */
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import type { Schemas } from "@gordon/manager-client";

import { Loading, ProblemView, Section, StateBadge } from "../components";
import { TimeChart } from "../chart";
import { api, asProblem } from "../lib/api";
import { chartPoints, fmtMoney, fmtNum, fmtQty, fmtTime, isoFromEpochS, show } from "../lib/format";
import { actionsFor, fleet } from "../lib/fleet";
import { useLive, useRead, useThrottled } from "../lib/hooks";
import { Link, navigate } from "../lib/router";
import { ActionDialog } from "./Fleet";
import { BotForm } from "./BotForm";

type BotRead = Schemas["BotRead"];
type Action = "start" | "pause" | "resume" | "stop" | "delete";
const POINTS = 500;

function useBot(id: number): { bot: BotRead | undefined; problem: ReturnType<typeof asProblem> | null } {
  const version = useSyncExternalStore(fleet.subscribe, fleet.getVersion);
  const [problem, setProblem] = useState<ReturnType<typeof asProblem> | null>(null);
  useEffect(() => {
    void api().GET("/bots/{botId}", { params: { path: { botId: id } } }).then(({ data, error, response }) => {
      if (data) {
        fleet.upsert(data);
      } else {
        setProblem(asProblem(error, response.status));
      }
    });
  }, [id]);
  void version;
  return { bot: fleet.get(id)?.bot, problem };
}

function Config({ bot }: { bot: BotRead }) {
  const [editing, setEditing] = useState<BotRead | null>(null);
  if (editing) {
    return (
      <Section title={`Edit ${bot.name}`}>
        <BotForm bot={editing} onSaved={() => setEditing(null)} onCancel={() => setEditing(null)} />
      </Section>
    );
  }
  return (
    <Section title="Config" actions={<button type="button" onClick={() => setEditing(bot)}>Edit</button>}>
      <dl className="kv" data-testid="config">
        <dt>version</dt><dd data-testid="config-version">{bot.version}</dd>
        <dt>spec version</dt><dd>{bot.specVersion}</dd>
        <dt>strategy</dt><dd>{bot.strategy}</dd>
        <dt>market</dt><dd>{bot.symbol} {bot.interval}</dd>
        <dt>mode</dt><dd>{bot.mode}</dd>
        <dt>image</dt><dd><code>{bot.image}</code></dd>
        <dt>params</dt><dd><code>{JSON.stringify(bot.params)}</code></dd>
        <dt>execution</dt><dd><code>{JSON.stringify(bot.execution)}</code></dd>
        <dt>labels</dt><dd><code>{JSON.stringify(bot.labels)}</code></dd>
        <dt>created</dt><dd>{fmtTime(bot.createdAt)} by {bot.createdBy}</dd>
        <dt>updated</dt><dd>{fmtTime(bot.updatedAt)}</dd>
      </dl>
    </Section>
  );
}

type EquityPoint = Schemas["BotEquityPointRead"];

/** Downsampled equity; a zoom re-queries points=N over the visible range and splices it into the overview. */
function Equity({ botId }: { botId: number }) {
  const [overview, setOverview] = useState<EquityPoint[]>([]);
  const [detail, setDetail] = useState<{ from: number; to: number; items: EquityPoint[] } | null>(null);
  const [problem, setProblem] = useState<ReturnType<typeof asProblem> | null>(null);
  const [info, setInfo] = useState<string>("");
  const zoomed = useRef(false);

  const loadOverview = useCallback(() => {
    void api().GET("/bots/{botId}/equity", { params: { path: { botId: botId }, query: { points: POINTS } } }).then(({ data, error, response }) => {
      if (error || !data) {
        setProblem(asProblem(error, response.status));
        return;
      }
      setProblem(null);
      setOverview(data.items);
      setInfo(data.downsample ? `${data.items.length} of ${data.downsample.sourcePoints} points (${data.downsample.method})` : `${data.items.length} points`);
    });
  }, [botId]);
  useEffect(loadOverview, [loadOverview]);

  const refresh = useThrottled(() => {
    if (!zoomed.current) {
      loadOverview();
    }
  }, 2000);
  useLive((events) => {
    if (events.some((e) => "data" in e && e.data && typeof e.data === "object" && "botId" in e.data && e.data.botId === botId
      && (e.channel === "run_progress" || e.channel === "portfolio_state" || e.channel === "bot_events" || e.channel === "bot_status"))) {
      refresh();
    }
  });

  const onRange = useCallback((from: number, to: number, isZoomed: boolean) => {
    zoomed.current = isZoomed;
    if (!isZoomed) {
      setDetail(null);
      return;
    }
    void api().GET("/bots/{botId}/equity", {
      params: { path: { botId: botId }, query: { points: POINTS, from: isoFromEpochS(Math.floor(from)), to: isoFromEpochS(Math.ceil(to) + 1) } },
    }).then(({ data }) => data && setDetail({ from, to, items: data.items }));
  }, [botId]);

  const series = useMemo(() => {
    let items = overview;
    if (detail) {
      items = [...overview.filter((p) => Date.parse(p.ts) / 1000 < detail.from), ...detail.items,
        ...overview.filter((p) => Date.parse(p.ts) / 1000 > detail.to)];
    }
    return [{ name: "equity", color: "#3fb950", kind: "area" as const, data: chartPoints(items, (p) => p.ts, (p) => p.equity) }];
  }, [overview, detail]);

  return (
    <Section title="Equity" actions={<span className="muted" data-testid="equity-info">{info}{detail ? " · zoomed" : ""}</span>}>
      <ProblemView problem={problem} />
      <TimeChart series={series} label="Equity of the bot's runs" onVisibleRange={onRange} />
    </Section>
  );
}

type EventRow = Schemas["BotEventRead"];

function Events({ botId }: { botId: number }) {
  const initial = useRead(() => api().GET("/bots/{botId}/events", { params: { path: { botId: botId }, query: { limit: 50 } } }), [botId]);
  const [live, setLive] = useState<EventRow[]>([]);
  useLive((events) => {
    const mine = events.flatMap((e) => (e.channel === "bot_events" && "table" in e && e.data.botId === botId ? [e.data as EventRow] : []));
    if (mine.length) {
      setLive((rows) => [...mine.reverse(), ...rows].slice(0, 200));
    }
  });
  const rows = useMemo(() => {
    const seen = new Set<number>();
    return [...live, ...(initial.data?.items ?? [])].filter((row) => (seen.has(row.id) ? false : (seen.add(row.id), true)));
  }, [live, initial.data]);
  return (
    <Section title="Live events">
      <ProblemView problem={initial.problem} />
      <div className="scroll" tabIndex={0} role="region" aria-label="Bot events">
        <table className="tbl" data-testid="events">
          <thead><tr><th scope="col">at</th><th scope="col">level</th><th scope="col">kind</th><th scope="col">message</th></tr></thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.id} className={`lvl-${row.level}`}><td>{fmtTime(row.at)}</td><td>{row.level}</td><td>{row.kind}</td><td>{row.message}</td></tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && !initial.loading && <p className="muted">No event yet.</p>}
      </div>
    </Section>
  );
}

export function RoundTrips({ runId }: { runId: number }) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const page = useRead(() => api().GET("/runs/{runId}/roundtrips", { params: { path: { runId: runId }, query: { limit: 20, ...(cursor ? { cursor } : {}) } } }), [runId, cursor]);
  const items = page.data?.items ?? [];
  return (
    <div data-testid="roundtrips">
      <ProblemView problem={page.problem} />
      <table className="tbl">
        <thead><tr><th scope="col">entry</th><th scope="col">exit</th><th scope="col">side</th><th scope="col">qty</th><th scope="col">entry price</th><th scope="col">exit price</th><th scope="col">net PnL</th><th scope="col">exit reason</th></tr></thead>
        <tbody>
          {items.map((t) => (
            <tr key={t.id}><td>{fmtTime(t.entryAt)}</td><td>{fmtTime(t.exitAt)}</td><td>{t.side}</td><td className="num">{fmtQty(t.qty)}</td>
              <td className="num">{fmtMoney(t.entryPrice)}</td><td className="num">{fmtMoney(t.exitPrice)}</td>
              <td className={`num ${Number(t.netPnl) < 0 ? "neg" : "pos"}`}>{fmtMoney(t.netPnl)}</td><td>{t.exitReason ?? "—"}</td></tr>
          ))}
        </tbody>
      </table>
      {items.length === 0 && !page.loading && <p className="muted">No round trip{cursors.length > 1 ? " on this page" : " yet"}.</p>}
      <div className="row">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous page</button>
        <span className="muted">page {cursors.length}</span>
        <button type="button" disabled={!page.data?.nextCursor} onClick={() => page.data?.nextCursor && setCursors((c) => [...c, page.data?.nextCursor ?? undefined])}>Next page</button>
      </div>
    </div>
  );
}

function Runs({ botId }: { botId: number }) {
  const runs = useRead(() => api().GET("/bots/{botId}/runs", { params: { path: { botId: botId }, query: { limit: 20 } } }), [botId]);
  const [selected, setSelected] = useState<number | null>(null);
  const refresh = useThrottled(runs.reload, 3000);
  useLive((events) => {
    if (events.some((e) => e.channel === "run_progress" && "table" in e && e.table === "runs" && e.data.botId === botId && e.op === "insert")) {
      refresh();
    }
  });
  const items = runs.data?.items ?? [];
  const runId = selected ?? items[0]?.id;
  return (
    <Section title="Round trips" actions={items.length > 0 ? (
      <label>Run <select value={runId} onChange={(e) => setSelected(Number(e.target.value))}>
        {items.map((r) => <option key={r.id} value={r.id}>#{r.id} {r.kind} {r.status}</option>)}
      </select></label>) : null}>
      <ProblemView problem={runs.problem} />
      {runId !== undefined ? <RoundTrips key={runId} runId={runId} /> : <p className="muted">The bot has not run yet.</p>}
    </Section>
  );
}

function Audit({ botId, version }: { botId: number; version: number }) {
  const audit = useRead(() => api().GET("/bots/{botId}/audit", { params: { path: { botId: botId }, query: { limit: 50 } } }), [botId, version]);
  return (
    <Section title="Audit log">
      <ProblemView problem={audit.problem} />
      <ul className="audit" data-testid="audit" tabIndex={0} aria-label="Audit rows">
        {(audit.data?.items ?? []).map((row) => (
          <li key={row.id}>
            <div><strong>{row.action}</strong> v{row.version} by {row.actor} at {fmtTime(row.at)} {row.requestId && <span className="muted">({row.requestId})</span>}</div>
            <table className="diff"><tbody>
              {Object.entries(row.diff).filter(([, change]) => change).map(([field, change]) => (
                <tr key={field}><td><code>{field}</code></td><td className="del">{show(change?.before)}</td><td className="add">{show(change?.after)}</td></tr>
              ))}
            </tbody></table>
          </li>
        ))}
      </ul>
      {audit.data?.items.length === 0 && <p className="muted">No audit row.</p>}
    </Section>
  );
}

/** Prometheus' rollup, read when asked (it is a 503 when the manager has no Prometheus configured). */
function Metrics({ botId }: { botId: number }) {
  const [asked, setAsked] = useState(0);
  const metrics = useRead(() => (asked
    ? api().GET("/bff/bots/{botId}/metrics-summary", { params: { path: { botId: botId } } })
    : Promise.resolve({ data: undefined, error: undefined, response: new Response(null, { status: 204 }) })), [botId, asked]);
  const m = metrics.data;
  return (
    <Section title="Metrics" actions={<button type="button" onClick={() => setAsked((n) => n + 1)}>{asked ? "Refresh" : "Read from Prometheus"}</button>}>
      {!asked && <p className="muted">Decisions, orders and errors per minute, equity and last bar age, from Prometheus.</p>}
      {metrics.problem && <p className="muted">Metrics unavailable: {metrics.problem.detail}</p>}
      {m && (
        <dl className="kv">
          <dt>up</dt><dd>{show(m.up)}</dd>
          <dt>decisions/min</dt><dd>{fmtNum(m.decisionsPerMin)}</dd>
          <dt>orders/min</dt><dd>{fmtNum(m.ordersPerMin)}</dd>
          <dt>errors/min</dt><dd>{fmtNum(m.errorsPerMin)}</dd>
          <dt>equity</dt><dd>{fmtMoney(m.equity)}</dd>
          <dt>last bar age</dt><dd>{fmtNum(m.lastBarAgeSeconds, 1)} s</dd>
          {m.missing.length > 0 && <><dt>missing</dt><dd>{m.missing.map((q) => q.query).join(", ")}</dd></>}
        </dl>
      )}
    </Section>
  );
}

export default function BotPage({ id }: { id: number }) {
  const { bot, problem } = useBot(id);
  const [pending, setPending] = useState<Action | null>(null);
  const [clearProblem, setClearProblem] = useState<ReturnType<typeof asProblem> | null>(null);
  if (!bot) {
    return problem ? <section className="card"><h1>Bot #{id}</h1><ProblemView problem={problem} /><Link href="/">Back to the fleet</Link></section> : <Loading what={`bot #${id}`} />;
  }
  const status = bot.status;
  return (
    <div className="stack">
      <section className="card">
        <div className="card-head">
          <h1>{bot.name} <span className="muted">#{bot.id}</span></h1>
          <span>desired <StateBadge state={bot.desiredState} /></span>
          <span data-testid="observed-state" data-state={status?.observedState ?? "pending"}>observed <StateBadge state={status?.observedState} /></span>
          <span className="actions">
            {actionsFor(bot).map((action) => <button key={action} type="button" onClick={() => setPending(action)}>{action}</button>)}
            <button type="button" className="danger" onClick={() => setPending("delete")}>delete</button>
          </span>
        </div>
        <dl className="kv wide">
          <dt>workload</dt><dd>{status?.workloadId ?? "—"} {status?.runtime ? `(${status.runtime})` : ""}</dd>
          <dt>restarts</dt><dd>{status?.restarts ?? 0}</dd>
          <dt>running since</dt><dd>{fmtTime(status?.runningSince)}</dd>
          <dt>last heartbeat</dt><dd>{fmtTime(status?.lastHeartbeatAt)}</dd>
          <dt>position</dt><dd>{bot.position ? `${fmtQty(bot.position.qty)} ${bot.symbol} · cash ${fmtMoney(bot.position.cash)} · realized ${fmtMoney(bot.position.realizedPnl)}` : "—"}</dd>
          {status?.lastError && <><dt>last error</dt><dd className="error">{status.lastError} ({fmtTime(status.lastErrorAt)})</dd></>}
          {status?.quarantined && (
            <><dt>quarantine</dt><dd className="error">{status.quarantineReason}{" "}
              <button type="button" onClick={() => void api().POST("/bots/{botId}/clear-quarantine", { params: { path: { botId: bot.id } } })
                .then(({ error, response }) => setClearProblem(error ? asProblem(error, response.status) : null))}>clear quarantine</button></dd></>
          )}
          <dt>deploys</dt><dd><Link href={`/ui/deploys?bot=${bot.id}`}>green/blue deploys of this bot</Link></dd>
        </dl>
        <ProblemView problem={clearProblem} />
      </section>
      <div className="grid2">
        <Config bot={bot} />
        <Metrics botId={bot.id} />
      </div>
      <Equity botId={bot.id} />
      <div className="grid2">
        <Events botId={bot.id} />
        <Audit botId={bot.id} version={bot.version} />
      </div>
      <Runs botId={bot.id} />
      {pending && <ActionDialog bot={bot} action={pending} onClose={(done) => { setPending(null); if (done && pending === "delete") navigate("/"); }} />}
    </div>
  );
}
