/** Deploys: green/blue deploys of a bot (start, watch live, divergences side by side, abort or force) and service deploys. */
import { useMemo, useState, useSyncExternalStore } from "react";
import type { Problem, Schemas } from "@gordon/manager-client";

import { ConfirmDialog, ProblemView, Section, StateBadge } from "../components";
import { api, asProblem } from "../lib/api";
import { fmtPct, fmtTime, show } from "../lib/format";
import { fleet } from "../lib/fleet";
import { useLive, useRead, useThrottled } from "../lib/hooks";
import { navigate, useLocation } from "../lib/router";
import { ParamsFields, useStrategies } from "./BotForm";

type Decision = Schemas["DeployDecision"];
const ACTIVE = new Set(["pending", "shadowing", "comparing", "swapping"]);

function decisionText(d: Decision): string {
  return [d.side, d.qty, d.orderType && d.orderType !== "none" ? d.orderType : "", d.price ? `@ ${d.price}` : ""].filter(Boolean).join(" ");
}

function StartDeploy({ bot, onStarted }: { bot: Schemas["BotRead"]; onStarted: () => void }) {
  const { strategies } = useStrategies();
  const [strategy, setStrategy] = useState(bot.strategy);
  const [params, setParams] = useState<Record<string, unknown>>({ ...bot.params });
  const [image, setImage] = useState("");
  const [compareWindow, setCompareWindow] = useState("");
  const [matchThreshold, setMatchThreshold] = useState("");
  const [problem, setProblem] = useState<Problem | null>(null);
  const submit = async () => {
    setProblem(null);
    const body: Schemas["DeployPromote"] = { strategy, params, ...(image ? { image } : {}) };
    if (compareWindow) body.compareWindow = Number(compareWindow);
    if (matchThreshold) body.matchThreshold = Number(matchThreshold);
    const { error, response } = await api().POST("/bots/{botId}/deploy/promote", { params: { path: { botId: bot.id } }, body });
    if (error) {
      setProblem(asProblem(error, response.status));
      return;
    }
    onStarted();
  };
  return (
    <form className="botform" aria-label="Start a green/blue deploy" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      <p className="muted">The candidate runs as a shadow of <strong>{bot.name}</strong> on the same bars; its actions are compared with the live bot's
        and it replaces the live spec when enough of them match.</p>
      <div className="grid4">
        <div className="field"><label htmlFor="dp-strategy">Candidate strategy</label>
          <select id="dp-strategy" value={strategy} onChange={(e) => {
            setStrategy(e.target.value);
            setParams({ ...(strategies.find((s) => s.name === e.target.value)?.defaultParams ?? {}) });
          }}>{(strategies.length ? strategies.map((s) => s.name) : [bot.strategy]).map((n) => <option key={n}>{n}</option>)}</select>
        </div>
        <div className="field"><label htmlFor="dp-image">Image (empty: the live one)</label><input id="dp-image" value={image} onChange={(e) => setImage(e.target.value)} /></div>
        <div className="field"><label htmlFor="dp-window">Compare window (bars)</label><input id="dp-window" type="number" value={compareWindow} onChange={(e) => setCompareWindow(e.target.value)} placeholder="default" /></div>
        <div className="field"><label htmlFor="dp-threshold">Match threshold (0–1)</label><input id="dp-threshold" type="number" step="any" value={matchThreshold} onChange={(e) => setMatchThreshold(e.target.value)} placeholder="default" /></div>
      </div>
      <ParamsFields schema={strategies.find((s) => s.name === strategy)?.paramsSchema} values={params} onChange={setParams} problem={problem} prefix="params" />
      <ProblemView problem={problem} />
      <div className="row"><button type="submit" className="primary">Start deploy</button></div>
    </form>
  );
}

function BotDeploys({ bot }: { bot: Schemas["BotRead"] }) {
  const history = useRead(() => api().GET("/bots/{botId}/deploys", { params: { path: { botId: bot.id }, query: { limit: 10 } } }), [bot.id]);
  // The status of the deploy in progress, else the latest (read only once the bot has one: it is a 404 before).
  const latest = history.data?.items[0];
  const status = useRead(() => (latest
    ? api().GET("/bots/{botId}/deploy/status", { params: { path: { botId: bot.id } } })
    : Promise.resolve({ data: undefined, error: undefined, response: new Response(null, { status: 204 }) })), [bot.id, latest?.id, latest?.state, latest?.updatedAt]);
  const refresh = useThrottled(() => { history.reload(); status.reload(); }, 1000);
  useLive((events) => {
    if (events.some((e) => e.channel === "deploy_progress" && "table" in e && e.table === "bot_deploys" && e.data.botId === bot.id)) {
      refresh();
    }
  });
  const [confirm, setConfirm] = useState<"abort" | "force" | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const d = status.data;
  const active = d ? ACTIVE.has(d.state) : false;
  const act = async () => {
    setProblem(null);
    const result = confirm === "abort"
      ? await api().POST("/bots/{botId}/deploy/abort", { params: { path: { botId: bot.id } } })
      : await api().POST("/bots/{botId}/deploys/{deployId}/promote", { params: { path: { botId: bot.id, deployId: d?.id ?? 0 } }, body: { force: true } });
    setConfirm(null);
    if (result.error) {
      setProblem(asProblem(result.error, result.response.status));
    }
    refresh();
  };
  return (
    <div className="stack">
      {!active && <Section title={`New deploy of ${bot.name}`}><StartDeploy bot={bot} onStarted={refresh} /></Section>}
      <Section title="Deploy status" actions={d && (
        <span className="row">
          <span data-testid="deploy-state" data-state={d.state}><StateBadge state={d.state} /></span>
          {active && <button type="button" className="danger" onClick={() => setConfirm("abort")}>abort</button>}
          {d.state === "inconclusive" && <button type="button" className="danger" onClick={() => setConfirm("force")}>force promote</button>}
        </span>)}>
        <ProblemView problem={problem} />
        {history.data && !latest && <p className="muted">No deploy of this bot yet.</p>}
        <ProblemView problem={status.problem} />
        {d && (
          <>
            <dl className="kv wide">
              <dt>deploy</dt><dd>#{d.id} v{d.fromVersion} → {d.toVersion ? `v${d.toVersion}` : "candidate"} by {d.actor}</dd>
              <dt>candidate</dt><dd><code>{JSON.stringify(d.candidate)}</code></dd>
              <dt>bars compared</dt><dd>{d.barsCompared} (idle skipped {d.idleSkipped})</dd>
              <dt>actions compared</dt><dd>{d.actionsCompared} of {d.evidenceNeeded} needed</dd>
              <dt>matches</dt><dd>{d.matches}</dd>
              <dt>divergences</dt><dd>{d.divergences}</dd>
              <dt>match rate</dt><dd>{fmtPct(d.matchRate)} (threshold {fmtPct(d.matchThreshold)})</dd>
              <dt>lease</dt><dd>{d.leaseOwner ?? "—"} until {fmtTime(d.leaseExpiresAt)}</dd>
              <dt>started</dt><dd>{fmtTime(d.startedAt)}</dd>
              <dt>finished</dt><dd>{fmtTime(d.finishedAt)} {d.reason && <span className="muted">{d.reason}</span>}</dd>
            </dl>
            <h3>Latest divergences</h3>
            {d.latestDivergences.length === 0 ? <p className="muted">None.</p> : (
              <table className="tbl" data-testid="divergences">
                <thead><tr><th scope="col">bar</th><th scope="col">live</th><th scope="col">candidate</th></tr></thead>
                <tbody>{d.latestDivergences.map((v) => (
                  <tr key={v.id}><td>{fmtTime(v.barAt)}</td><td>{decisionText(v.liveDecision)} <span className="muted">pos {show(v.liveDecision.position)}</span></td>
                    <td>{decisionText(v.candidateDecision)} <span className="muted">pos {show(v.candidateDecision.position)}</span></td></tr>
                ))}</tbody>
              </table>
            )}
          </>
        )}
      </Section>
      <Section title="Deploy history">
        <table className="tbl"><thead><tr><th scope="col">deploy</th><th scope="col">state</th><th scope="col">compared</th><th scope="col">match rate</th><th scope="col">started</th><th scope="col">reason</th></tr></thead>
          <tbody>{(history.data?.items ?? []).map((h) => (
            <tr key={h.id}><td>#{h.id}</td><td><StateBadge state={h.state} /></td><td>{h.actionsCompared}</td><td>{fmtPct(h.matchRate)}</td><td>{fmtTime(h.startedAt)}</td><td>{h.reason ?? ""}</td></tr>
          ))}</tbody></table>
      </Section>
      {confirm && (
        <ConfirmDialog title={confirm === "abort" ? `Abort deploy #${d?.id}?` : `Force-promote deploy #${d?.id}?`}
          body={confirm === "abort" ? <p>The candidate is removed; the live bot keeps running unchanged.</p> : <p>The candidate becomes the live spec without the evidence the deploy asked for.</p>}
          {...(confirm === "force" ? { typed: bot.name } : {})}
          confirmLabel={confirm === "abort" ? "abort deploy" : "force promote"} onCancel={() => setConfirm(null)} onConfirm={() => void act()} />
      )}
    </div>
  );
}

function ServiceDeploys() {
  const list = useRead(() => api().GET("/deploys/service", { params: { query: { limit: 20 } } }), []);
  const refresh = useThrottled(list.reload, 1000);
  useLive((events) => {
    if (events.some((e) => e.channel === "deploy_progress" && "table" in e && e.table === "service_deploys")) {
      refresh();
    }
  });
  const [service, setService] = useState("");
  const [image, setImage] = useState("");
  const [httpPath, setHttpPath] = useState("/healthz");
  const [port, setPort] = useState("8080");
  const [problem, setProblem] = useState<Problem | null>(null);
  const submit = async () => {
    setProblem(null);
    const { error, response } = await api().POST("/deploys/service", { body: { service, image, healthCheck: { httpPath, port: Number(port) } } });
    if (error) setProblem(asProblem(error, response.status));
    refresh();
  };
  return (
    <Section title="Service deploys">
      <form className="filters" aria-label="Start a service deploy" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <label>Service <input value={service} onChange={(e) => setService(e.target.value)} required /></label>
        <label>Image <input value={image} onChange={(e) => setImage(e.target.value)} required /></label>
        <label>Health path <input value={httpPath} onChange={(e) => setHttpPath(e.target.value)} /></label>
        <label>Port <input type="number" value={port} onChange={(e) => setPort(e.target.value)} /></label>
        <button type="submit">Deploy service</button>
      </form>
      <ProblemView problem={problem ?? list.problem} />
      <table className="tbl"><thead><tr><th scope="col">id</th><th scope="col">service</th><th scope="col">image</th><th scope="col">state</th><th scope="col">health check</th><th scope="col">started</th><th scope="col">reason</th><th scope="col" /></tr></thead>
        <tbody>{(list.data?.items ?? []).map((s) => (
          <tr key={s.id}><td>#{s.id}</td><td>{s.service}</td><td><code>{s.oldImage ?? "—"} → {s.newImage}</code></td><td><StateBadge state={s.state} /></td>
            <td><code>{s.healthCheck.httpPath ? `GET :${s.healthCheck.port}${s.healthCheck.httpPath}` : (s.healthCheck.command ?? []).join(" ")}</code> until {fmtTime(s.healthDeadlineAt)}</td>
            <td>{fmtTime(s.startedAt)}</td><td>{s.reason ?? ""}</td>
            <td>{["pending", "starting", "health_checking"].includes(s.state) && (
              <button type="button" onClick={() => void api().DELETE("/deploys/service/{deployId}/abort", { params: { path: { deployId: s.id } } }).then(refresh)}>abort</button>)}</td></tr>
        ))}</tbody></table>
      {list.data?.items.length === 0 && <p className="muted">No service deploy yet.</p>}
    </Section>
  );
}

export default function DeploysPage() {
  const location = useLocation();
  useSyncExternalStore(fleet.subscribe, fleet.getVersion);
  const botId = Number(new URLSearchParams(location.split("?")[1] ?? "").get("bot")) || undefined;
  const bots = useMemo(() => fleet.all().map((b) => b.bot).filter((b) => b.mode !== "shadow").sort((a, b) => a.id - b.id), [fleet.version]); // eslint-disable-line react-hooks/exhaustive-deps
  const bot = botId !== undefined ? fleet.get(botId)?.bot : undefined;
  return (
    <div className="stack">
      <Section title="Green/blue deploys">
        <div className="field">
          <label htmlFor="deploy-bot">Bot</label>
          <select id="deploy-bot" value={botId ?? ""} onChange={(e) => navigate(`/ui/deploys${e.target.value ? `?bot=${e.target.value}` : ""}`, true)}>
            <option value="">choose a bot…</option>
            {bots.map((b) => <option key={b.id} value={b.id}>#{b.id} {b.name} ({b.status?.observedState ?? "pending"})</option>)}
          </select>
        </div>
      </Section>
      {bot && <BotDeploys key={bot.id} bot={bot} />}
      <ServiceDeploys />
    </div>
  );
}
