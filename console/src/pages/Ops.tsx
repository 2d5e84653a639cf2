/** Data & ops: source freshness (live), inventory and gaps, backfill jobs (live), firing alerts, stack health and degraded reasons. */
import { useState } from "react";

import { ProblemView, Section, StateBadge } from "../components";
import { api } from "../lib/api";
import { fmtNum, fmtPct, fmtTime } from "../lib/format";
import { useLive, useRead, useThrottled } from "../lib/hooks";

export default function OpsPage() {
  const health = useRead(() => api().GET("/healthz"), []);
  const sources = useRead(() => api().GET("/source-health"), []);
  const inventory = useRead(() => api().GET("/data/inventory"), []);
  const jobs = useRead(() => api().GET("/data/backfill/jobs", { params: { query: { limit: 20 } } }), []);
  const [alertsAsked, setAlertsAsked] = useState(0);
  const alerts = useRead(() => (alertsAsked ? api().GET("/bff/alerts/firing")
    : Promise.resolve({ data: undefined, error: undefined, response: new Response(null, { status: 204 }) })), [alertsAsked]);
  const refreshSources = useThrottled(sources.reload, 2000);
  const refreshJobs = useThrottled(jobs.reload, 1000);
  useLive((events) => {
    if (events.some((e) => e.channel === "source_freshness")) refreshSources();
    if (events.some((e) => e.channel === "backfill_jobs")) refreshJobs();
  });
  const h = health.data;
  return (
    <div className="stack">
      <Section title="Stack health" actions={<button type="button" onClick={health.reload}>Refresh</button>}>
        <ProblemView problem={health.problem} />
        {h && (
          <>
            <p>Status <StateBadge state={h.status === "ok" ? "running" : "error"} /> {h.status} · version {h.version}</p>
            {h.degraded.length > 0 && <ul className="error">{h.degraded.map((d) => <li key={d}>{d}: {JSON.stringify(h.degradedDetails[d] ?? {})}</li>)}</ul>}
            <table className="tbl"><thead><tr><th scope="col">peer</th><th scope="col">ok</th><th scope="col">latency</th><th scope="col">detail</th></tr></thead>
              <tbody>{Object.entries(h.checks.peers ?? {}).map(([name, peer]) => (
                <tr key={name}><td>{name}</td><td>{peer?.ok ? "yes" : <span className="error">no</span>}</td><td>{fmtNum(peer?.latencyMs, 1)} ms</td><td>{peer?.detail ?? ""}</td></tr>
              ))}</tbody></table>
          </>
        )}
      </Section>
      <Section title="Source freshness" actions={sources.data && <span className="muted">{sources.data.staleCount} stale</span>}>
        <ProblemView problem={sources.problem} />
        <table className="tbl"><thead><tr><th scope="col">source</th><th scope="col">state</th><th scope="col">age</th><th scope="col">stale after</th><th scope="col">last data</th><th scope="col">last update</th></tr></thead>
          <tbody>{(sources.data?.sources ?? []).map((s) => (
            <tr key={s.source}><td>{s.source}</td><td>{s.stale ? <span className="badge st-error">stale</span> : <span className="badge st-running">fresh</span>}</td>
              <td>{fmtNum(s.ageSeconds, 0)} s</td><td>{s.staleAfterSeconds} s</td><td>{fmtTime(s.lastDataAt)}</td><td>{fmtTime(s.lastUpdateAt)}</td></tr>
          ))}</tbody></table>
        {sources.data?.sources.length === 0 && <p className="muted">No source has reported.</p>}
      </Section>
      <Section title="Inventory and gaps">
        <ProblemView problem={inventory.problem} />
        <table className="tbl" data-testid="inventory"><thead><tr><th scope="col">dataset</th><th scope="col">symbol</th><th scope="col">interval</th><th scope="col">from</th><th scope="col">to</th><th scope="col">rows</th><th scope="col">gaps</th><th scope="col">missing bars</th><th scope="col">first gap</th></tr></thead>
          <tbody>{(inventory.data?.items ?? []).map((i) => (
            <tr key={`${i.dataset}-${i.symbol}-${i.interval}-${i.name}`}><td>{i.dataset}</td><td>{i.symbol ?? i.name ?? ""}</td><td>{i.interval ?? ""}</td>
              <td>{fmtTime(i.firstAt)}</td><td>{fmtTime(i.lastAt)}</td><td className="num">{i.rows.toLocaleString("en-US")}</td>
              <td className={`num ${i.gaps ? "error" : ""}`}>{i.gaps ?? "—"}</td><td className="num">{i.missingBars ?? "—"}</td><td>{fmtTime(i.firstGapAt)}</td></tr>
          ))}</tbody></table>
      </Section>
      <Section title="Backfill jobs">
        <ProblemView problem={jobs.problem} />
        <table className="tbl"><thead><tr><th scope="col">job</th><th scope="col">source</th><th scope="col">market</th><th scope="col">range</th><th scope="col">status</th><th scope="col">progress</th><th scope="col">rows</th><th scope="col">error</th></tr></thead>
          <tbody>{(jobs.data?.items ?? []).map((j) => (
            <tr key={j.id}><td>#{j.id}</td><td>{j.source}</td><td>{j.symbol ?? ""} {j.interval ?? ""}</td><td>{fmtTime(j.rangeStart)} → {fmtTime(j.rangeEnd)}</td>
              <td><StateBadge state={j.status} /></td><td>{fmtPct(j.progress, 0)}</td><td className="num">{j.rowsWritten}</td><td className="error">{j.error ?? ""}</td></tr>
          ))}</tbody></table>
        {jobs.data?.items.length === 0 && <p className="muted">No backfill job.</p>}
      </Section>
      <Section title="Firing alerts" actions={<button type="button" onClick={() => setAlertsAsked((n) => n + 1)}>{alertsAsked ? "Refresh" : "Read from AlertManager"}</button>}>
        {alerts.problem && <p className="muted">Alerts unavailable: {alerts.problem.detail}</p>}
        {alerts.data && (alerts.data.items.length === 0 ? <p className="muted">No alert firing.</p> : (
          <table className="tbl"><thead><tr><th scope="col">alert</th><th scope="col">severity</th><th scope="col">summary</th><th scope="col">since</th></tr></thead>
            <tbody>{alerts.data.items.map((a) => <tr key={a.fingerprint}><td>{a.alertname}</td><td>{a.severity ?? ""}</td><td>{a.summary ?? a.description ?? ""}</td><td>{fmtTime(a.startsAt)}</td></tr>)}</tbody></table>
        ))}
      </Section>
    </div>
  );
}
