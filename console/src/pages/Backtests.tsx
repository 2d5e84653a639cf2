/** Backtests: launch, live progress (run_progress), results (stats, equity and drawdown, trades), two runs side by side. */
import { useEffect, useMemo, useState } from "react";
import type { Problem, Schemas } from "@gordon/manager-client";

import { JobProgress, ProblemView, Section, StateBadge } from "../components";
import { TimeChart } from "../chart";
import { api, asProblem } from "../lib/api";
import { chartPoints, drawdown, fmtMoney, fmtNum, fmtPct, fmtTime } from "../lib/format";
import { useLiveRows, useRead, withLive } from "../lib/hooks";
import { navigate } from "../lib/router";
import { RoundTrips as RoundTripsLazy } from "./Bot";
import { MarketRangeFields, ParamsFields, rangeBody, useMarketRange, useStrategies } from "./BotForm";

type Run = Schemas["RunRead"];
type RunDetail = Schemas["RunDetail"];


function LaunchForm({ onLaunched }: { onLaunched: (id: number) => void }) {
  const { strategies, defaults, problem: loadProblem } = useStrategies();
  const [strategy, setStrategy] = useState("");
  const [params, setParams] = useState<Record<string, unknown>>({});
  const [range, setRange] = useMarketRange(defaults);
  const [problem, setProblem] = useState<Problem | null>(null);
  useEffect(() => {
    if (!strategy && defaults) {
      setStrategy(defaults.strategy);
      setParams({ ...defaults.params });
    }
  }, [defaults, strategy]);
  const schema = strategies.find((s) => s.name === strategy)?.paramsSchema;
  const submit = async () => {
    setProblem(null);
    const { data, error, response } = await api().POST("/backtests", {
      body: { strategy, params, ...rangeBody(range) },
    });
    if (error || !data) {
      setProblem(asProblem(error, response.status));
      return;
    }
    onLaunched(data.id);
  };
  return (
    <form aria-label="Launch a backtest" className="botform" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      <ProblemView problem={loadProblem} />
      <div className="grid4">
        <div className="field"><label htmlFor="bt-strategy">Strategy</label>
          <select id="bt-strategy" name="strategy" value={strategy} onChange={(e) => {
            setStrategy(e.target.value);
            setParams({ ...(strategies.find((s) => s.name === e.target.value)?.defaultParams ?? {}) });
          }}>
            {strategies.map((s) => <option key={s.name}>{s.name}</option>)}
          </select>
        </div>
        <MarketRangeFields prefix="bt" range={range} onChange={setRange} />
      </div>
      <ParamsFields schema={schema} values={params} onChange={setParams} problem={problem} prefix="params" />
      <ProblemView problem={problem} />
      <div className="row"><button type="submit" className="primary">Run backtest</button></div>
    </form>
  );
}

function fmtDuration(seconds: number | null | undefined): string {
  if (seconds == null) {
    return "—";
  }
  const hours = seconds / 3600;
  return hours >= 48 ? `${(hours / 24).toFixed(1)} d` : `${hours.toFixed(1)} h`;
}

function Stats({ run }: { run: RunDetail }) {
  const s = run.stats;
  if (!s) {
    return <p className="muted">No statistics yet.</p>;
  }
  const items: [string, string][] = [
    ["total return", fmtPct(s.totalReturn)], ["max drawdown", fmtPct(s.maxDrawdown)], ["Sharpe", fmtNum(s.sharpe)],
    ["win rate", fmtPct(s.winRate)], ["trades", String(s.tradeCount ?? "—")], ["fees", fmtMoney(s.totalFees)],
    ["initial equity", fmtMoney(s.initialEquity)], ["final equity", fmtMoney(s.finalEquity)], ["exposure", fmtPct(s.exposure)],
    ["bars", String(s.bars ?? "—")],
    ["annualised return", fmtPct(s.cagr)], ["buy & hold", fmtPct(s.buyHoldReturn)], ["volatility", fmtPct(s.volatility)],
    ["Sortino", fmtNum(s.sortino)], ["Calmar", fmtNum(s.calmar)], ["avg drawdown", fmtPct(s.avgDrawdown)],
    ["max drawdown duration", fmtDuration(s.maxDrawdownDurationS)], ["best trade", fmtPct(s.bestTrade)],
    ["worst trade", fmtPct(s.worstTrade)], ["profit factor", fmtNum(s.profitFactor)], ["expectancy", fmtPct(s.expectancy)],
    ["SQN", fmtNum(s.sqn)], ["run time", s.timings?.totalS == null ? "—" : `${s.timings.totalS.toFixed(2)} s`],
  ];
  return (
    <div className="stats" data-testid="run-stats">
      {items.map(([label, value]) => <div className="stat" key={label}><b>{value}</b><span>{label}</span></div>)}
    </div>
  );
}

function RunResult({ id, live }: { id: number; live: Run | undefined }) {
  const detail = useRead(() => api().GET("/runs/{runId}", { params: { path: { runId: id } } }), [id, live?.status]);
  const equity = useRead(() => api().GET("/runs/{runId}/equity", { params: { path: { runId: id }, query: { points: 500 } } }), [id, live?.status]);
  const run = detail.data;
  const status = live?.status ?? run?.status;
  const progress = live?.progress ?? run?.progress ?? 0;
  const series = useMemo(() => {
    const points = chartPoints(equity.data?.items ?? [], (p) => p.ts, (p) => p.equity);
    return { equity: [{ name: "equity", color: "#58a6ff", data: points }], dd: [{ name: "drawdown", color: "#ff7b72", kind: "area" as const, data: drawdown(points) }] };
  }, [equity.data]);
  const [cancelProblem, setCancelProblem] = useState<Problem | null>(null);
  return (
    <Section title={`Run #${id}`} actions={
      <JobProgress testId={`run-status-${id}`} label={`run ${id}`} status={status} progress={progress}
        onCancel={() => void api().POST("/backtests/{runId}/cancel", { params: { path: { runId: id } } })
          .then(({ error, response }) => setCancelProblem(error ? asProblem(error, response.status) : null))} />}>
      <ProblemView problem={detail.problem ?? cancelProblem} />
      {run && <p className="muted">{run.strategy} {JSON.stringify(run.params)} · {run.symbol} {run.interval} · {fmtTime(run.rangeStart)} → {fmtTime(run.rangeEnd)}</p>}
      {run?.error && <p className="error">{run.error}</p>}
      {run && <Stats run={run} />}
      <TimeChart series={series.equity} height={200} label={`Equity of run ${id}`} />
      <TimeChart series={series.dd} height={120} label={`Drawdown of run ${id}`} percent />
      <h3>Trades</h3>
      <RoundTripsLazy runId={id} />
    </Section>
  );
}

export default function BacktestsPage({ ids = [] }: { ids?: number[] }) {
  const runs = useRead(() => api().GET("/runs", { params: { query: { kind: "backtest", limit: 20 } } }), []);
  const live = useLiveRows<Run>((e) => (e.channel === "run_progress" && "table" in e && e.table === "runs" && e.data.kind === "backtest" ? e.data as Run : null));
  const list = useMemo(() => withLive(runs.data?.items ?? [], live), [runs.data, live]);
  const show = (next: number[]) => navigate(`/ui/backtests${next.length ? `?runs=${next.join(",")}` : ""}`);
  const toggle = (id: number) => show(ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id].slice(-2));
  return (
    <div className="stack">
      <Section title="New backtest"><LaunchForm onLaunched={(id) => show([id, ...ids].slice(0, 2))} /></Section>
      <Section title="Recent backtests" actions={<span className="muted">tick two to compare them side by side</span>}>
        <ProblemView problem={runs.problem} />
        <div className="scroll" role="region" aria-label="Recent backtests" tabIndex={0}>
          <table className="tbl">
            <thead><tr><th scope="col">compare</th><th scope="col">run</th><th scope="col">strategy</th><th scope="col">market</th><th scope="col">range</th><th scope="col">status</th><th scope="col">progress</th></tr></thead>
            <tbody>
              {list.map((r) => (
                <tr key={r.id}>
                  <td><input type="checkbox" checked={ids.includes(r.id)} onChange={() => toggle(r.id)} aria-label={`compare run ${r.id}`} /></td>
                  <td>#{r.id}</td><td>{r.strategy}</td><td>{r.symbol} {r.interval}</td><td>{fmtTime(r.rangeStart)} → {fmtTime(r.rangeEnd)}</td>
                  <td><StateBadge state={r.status} /></td><td>{fmtPct(r.progress, 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
      <div className={ids.length > 1 ? "side" : ""}>
        {ids.map((id) => <RunResult key={id} id={id} live={live.get(id)} />)}
      </div>
    </div>
  );
}
