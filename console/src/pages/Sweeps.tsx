/** Sweeps: launch a parameter grid, follow it live (run_progress, backtest_sweeps), ranked trials, a heatmap,
 * walk-forward folds, and any trial re-run in full as a backtest. */
import { useEffect, useMemo, useState } from "react";
import type { Problem, Schemas } from "@gordon/manager-client";

import { JobProgress, ProblemView, Section, StateBadge } from "../components";
import { api, asProblem } from "../lib/api";
import { fmtNum, fmtPct, fmtTime } from "../lib/format";
import { useLiveRows, useRead, withLive } from "../lib/hooks";
import { navigate } from "../lib/router";
import { MarketRangeFields, rangeBody, useMarketRange, useStrategies } from "./BotForm";

type Sweep = Schemas["SweepRead"];
type Detail = Schemas["SweepDetail"];
type Trial = Schemas["SweepTrial"];
type Objective = Schemas["SweepCreate"]["objective"];

const OBJECTIVES: NonNullable<Objective>[] = ["sharpe", "totalReturn", "calmar", "cagr", "winRate", "finalEquity", "maxDrawdown"];

/** "5, 10, 20" -> [5, 10, 20] (numbers where they parse, text otherwise); blanks dropped. */
export function parseValues(text: string): unknown[] {
  return text.split(",").map((v) => v.trim()).filter(Boolean).map((v) => (v !== "" && Number.isFinite(Number(v)) ? Number(v) : v));
}

function LaunchForm({ onLaunched }: { onLaunched: (id: number) => void }) {
  const { strategies, defaults, problem: loadProblem } = useStrategies();
  const [strategy, setStrategy] = useState("");
  const [values, setValues] = useState<Record<string, string>>({});
  const [range, setRange] = useMarketRange(defaults);
  const [objective, setObjective] = useState<NonNullable<Objective>>("sharpe");
  const [minTrades, setMinTrades] = useState("0");
  const [folds, setFolds] = useState("0");
  const [mode, setMode] = useState<"rolling" | "anchored">("rolling");
  const [problem, setProblem] = useState<Problem | null>(null);
  const pick = (name: string) => {
    const spec = strategies.find((s) => s.name === name);
    setStrategy(name);
    setValues(Object.fromEntries(Object.entries(spec?.defaultParams ?? {}).map(([k, v]) => [k, String(v)])));
  };
  useEffect(() => {
    if (!strategy && defaults) {
      pick(defaults.strategy);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [defaults, strategy]);
  const submit = async () => {
    setProblem(null);
    const grid: Record<string, unknown[]> = {};
    const params: Record<string, unknown> = {};
    Object.entries(values).forEach(([name, text]) => {
      const parsed = parseValues(text);
      if (parsed.length > 1) {
        grid[name] = parsed;
      } else if (parsed.length === 1) {
        params[name] = parsed[0];
      }
    });
    const { data, error, response } = await api().POST("/backtests/sweeps", {
      body: { strategy, params, ...rangeBody(range), objective, minTrades: Number(minTrades),
        walkForward: Number(folds) > 0 ? { folds: Number(folds), mode } : undefined,
        // nothing swept: one trial of the fixed params
        grid: Object.keys(grid).length ? grid : Object.fromEntries(Object.entries(params).map(([k, v]) => [k, [v]])) },
    });
    if (error || !data) {
      setProblem(asProblem(error, response.status));
      return;
    }
    onLaunched(data.id);
  };
  return (
    <form aria-label="Launch a sweep" className="botform" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      <ProblemView problem={loadProblem} />
      <div className="grid4">
        <div className="field"><label htmlFor="sw-strategy">Strategy</label>
          <select id="sw-strategy" name="strategy" value={strategy} onChange={(e) => pick(e.target.value)}>
            {strategies.map((s) => <option key={s.name}>{s.name}</option>)}
          </select>
        </div>
        <MarketRangeFields prefix="sw" range={range} onChange={setRange} />
        <div className="field"><label htmlFor="sw-objective">Objective</label>
          <select id="sw-objective" name="objective" value={objective} onChange={(e) => setObjective(e.target.value as NonNullable<Objective>)}>
            {OBJECTIVES.map((o) => <option key={o}>{o}</option>)}
          </select>
        </div>
        <div className="field"><label htmlFor="sw-min-trades">Minimum trades</label><input id="sw-min-trades" name="minTrades" type="number" min={0} value={minTrades} onChange={(e) => setMinTrades(e.target.value)} /></div>
        <div className="field"><label htmlFor="sw-folds">Walk-forward folds (0: none)</label><input id="sw-folds" name="folds" type="number" min={0} max={20} value={folds} onChange={(e) => setFolds(e.target.value)} /></div>
        <div className="field"><label htmlFor="sw-mode">Train windows</label>
          <select id="sw-mode" name="mode" value={mode} onChange={(e) => setMode(e.target.value as "rolling" | "anchored")}>
            <option>rolling</option><option>anchored</option>
          </select>
        </div>
      </div>
      <p className="muted">Each param takes one value (fixed) or several, comma-separated (swept: every combination is a trial).</p>
      <div className="grid4">
        {Object.keys(values).map((name) => (
          <div className="field" key={name}><label htmlFor={`sw-values-${name}`}>{name}</label>
            <input id={`sw-values-${name}`} name={`values-${name}`} value={values[name]} onChange={(e) => setValues({ ...values, [name]: e.target.value })} />
          </div>
        ))}
      </div>
      <ProblemView problem={problem} />
      <div className="row"><button type="submit" className="primary">Run sweep</button></div>
    </form>
  );
}

/** Cell colour: red (worst) to green (best) over the map's range; maxDrawdown ranks lowest first. */
function shade(value: number | null | undefined, lo: number, hi: number, lowerIsBetter: boolean): string | undefined {
  if (value == null || !(hi > lo)) {
    return undefined;
  }
  const t = (value - lo) / (hi - lo);
  return `hsl(${Math.round((lowerIsBetter ? 1 - t : t) * 120)} 45% 30%)`;
}

function Heatmap({ map, objective }: { map: NonNullable<Detail["heatmap"]>; objective: string }) {
  const flat = map.values.flat().filter((v): v is number => v != null);
  const lo = Math.min(...flat);
  const hi = Math.max(...flat);
  return (
    <div className="scroll" role="region" aria-label="Heatmap" tabIndex={0}>
      <table className="tbl heatmap" data-testid="sweep-heatmap">
        <caption>best {objective} per {map.y} (rows) × {map.x} (columns)</caption>
        <thead><tr><th scope="col">{map.y} \ {map.x}</th>{map.xValues.map((x) => <th scope="col" key={String(x)}>{String(x)}</th>)}</tr></thead>
        <tbody>
          {map.values.map((row, j) => (
            <tr key={String(map.yValues[j])}>
              <th scope="row">{String(map.yValues[j])}</th>
              {row.map((v, i) => <td key={i} data-testid="heatmap-cell" style={{ background: shade(v, lo, hi, objective === "maxDrawdown") }}>{v == null ? "—" : fmtNum(v, 3)}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Trials({ sweepId, trials }: { sweepId: number; trials: Trial[] }) {
  const [problem, setProblem] = useState<Problem | null>(null);
  const rerun = async (n: number) => {
    const { data, error, response } = await api().POST("/backtests/sweeps/{sweepId}/trials/{n}/run", { params: { path: { sweepId, n } } });
    if (error || !data) {
      setProblem(asProblem(error, response.status));
      return;
    }
    navigate(`/ui/backtests?runs=${data.id}`);
  };
  return (
    <>
      <ProblemView problem={problem} />
      <div className="scroll" role="region" aria-label="Ranked trials" tabIndex={0}>
        <table className="tbl" data-testid="sweep-trials">
          <thead><tr><th scope="col">rank</th><th scope="col">trial</th><th scope="col">params</th><th scope="col">value</th><th scope="col">trades</th><th scope="col">return</th><th scope="col">max drawdown</th><th scope="col">Sharpe</th><th scope="col" /></tr></thead>
          <tbody>
            {trials.slice(0, 50).map((t) => (
              <tr key={t.n} data-testid="sweep-trial">
                <td>{t.rank ?? "—"}</td><td>#{t.n}</td><td><code>{JSON.stringify(t.params)}</code></td><td>{fmtNum(t.value, 4)}</td>
                <td>{t.stats?.tradeCount ?? "—"}</td><td>{fmtPct(t.stats?.totalReturn)}</td><td>{fmtPct(t.stats?.maxDrawdown)}</td><td>{fmtNum(t.stats?.sharpe)}</td>
                <td>{t.error ? <span className="error">{t.error}</span> : <button type="button" onClick={() => void rerun(t.n)}>run #{t.n} in full</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {trials.length > 50 && <p className="muted">{trials.length - 50} more trials (GET /backtests/sweeps/{sweepId}).</p>}
    </>
  );
}

function SweepResult({ id, live }: { id: number; live: Sweep | undefined }) {
  const status = live?.status;
  const detail = useRead(() => api().GET("/backtests/sweeps/{sweepId}", { params: { path: { sweepId: id } } }), [id, status, live?.trialsDone]);
  const sweep: Detail | undefined = detail.data;
  const shown = status ?? sweep?.status;
  const progress = live?.progress ?? sweep?.progress ?? 0;
  const [cancelProblem, setCancelProblem] = useState<Problem | null>(null);
  return (
    <Section title={`Sweep #${id}`} actions={
      <JobProgress testId={`sweep-status-${id}`} label={`sweep ${id}`} status={shown} progress={progress}
        onCancel={() => void api().POST("/backtests/sweeps/{sweepId}/cancel", { params: { path: { sweepId: id } } })
          .then(({ error, response }) => setCancelProblem(error ? asProblem(error, response.status) : null))} />}>
      <ProblemView problem={detail.problem ?? cancelProblem} />
      {sweep && <p className="muted">{sweep.strategy} · {sweep.symbol} {sweep.interval} · {fmtTime(sweep.from)} → {fmtTime(sweep.to)} · {sweep.trialsDone}/{sweep.trialsTotal} trials · objective {sweep.objective}{sweep.minTrades ? `, ≥ ${sweep.minTrades} trades` : ""}</p>}
      {sweep?.error && <p className="error">{sweep.error}</p>}
      {sweep?.best && <p data-testid="sweep-best">best: trial #{sweep.best.n} <code>{JSON.stringify(sweep.best.params)}</code>, {sweep.objective} {fmtNum(sweep.best.value, 4)}</p>}
      {sweep?.heatmap && <Heatmap map={sweep.heatmap} objective={sweep.objective} />}
      {sweep && sweep.folds.length > 0 && <h3>Walk-forward</h3>}
      {sweep && sweep.folds.length > 0 && (
        <div className="scroll" role="region" aria-label="Walk-forward folds" tabIndex={0}>
          <table className="tbl" data-testid="sweep-folds">
            <thead><tr><th scope="col">fold</th><th scope="col">train</th><th scope="col">test</th><th scope="col">best in-sample</th><th scope="col">in-sample</th><th scope="col">out-of-sample</th></tr></thead>
            <tbody>
              {sweep.folds.map((f) => (
                <tr key={f.fold}>
                  <td>{f.fold}</td><td>{fmtTime(f.trainFrom)} → {fmtTime(f.trainTo)}</td><td>{fmtTime(f.testFrom)} → {fmtTime(f.testTo)}</td>
                  <td>{f.params ? <code>{JSON.stringify(f.params)}</code> : "—"}</td><td>{fmtNum(f.inSampleValue, 4)}</td><td>{fmtNum(f.outOfSampleValue, 4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {sweep?.degradation && (
        <p data-testid="sweep-walk-forward">walk-forward, {sweep.degradation.foldsCompared} of {sweep.degradation.folds} folds compared:
          in-sample {sweep.objective} {fmtNum(sweep.degradation.inSampleMean, 4)} vs out-of-sample {fmtNum(sweep.degradation.outOfSampleMean, 4)}{" "}
          (ratio of means {fmtNum(sweep.degradation.ratioOfMeans, 2)}; out-of-sample return {fmtPct(sweep.degradation.outOfSampleReturn)})</p>
      )}
      {sweep && <><h3>Ranked trials</h3><Trials sweepId={id} trials={sweep.trials} /></>}
    </Section>
  );
}

export default function SweepsPage({ id }: { id?: number }) {
  const sweeps = useRead(() => api().GET("/backtests/sweeps", { params: { query: { limit: 20 } } }), []);
  const live = useLiveRows<Sweep>((e) => (e.channel === "run_progress" && "table" in e && e.table === "backtest_sweeps" ? e.data as Sweep : null));
  const list = useMemo(() => withLive(sweeps.data?.items ?? [], live), [sweeps.data, live]);
  const show = (next: number) => navigate(`/ui/sweeps?id=${next}`);
  return (
    <div className="stack">
      <Section title="New sweep"><LaunchForm onLaunched={show} /></Section>
      <Section title="Recent sweeps">
        <ProblemView problem={sweeps.problem} />
        <div className="scroll" role="region" aria-label="Recent sweeps" tabIndex={0}>
          <table className="tbl">
            <thead><tr><th scope="col">sweep</th><th scope="col">strategy</th><th scope="col">market</th><th scope="col">trials</th><th scope="col">objective</th><th scope="col">best</th><th scope="col">status</th><th scope="col">progress</th></tr></thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.id}>
                  <td><a href={`/ui/sweeps?id=${s.id}`} onClick={(e) => { e.preventDefault(); show(s.id); }}>#{s.id}</a></td>
                  <td>{s.strategy}</td><td>{s.symbol} {s.interval}</td><td>{s.trialsDone}/{s.trialsTotal}</td><td>{s.objective}</td>
                  <td>{s.bestValue == null ? "—" : fmtNum(s.bestValue, 4)}</td><td><StateBadge state={s.status} /></td><td>{fmtPct(s.progress, 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </Section>
      {id != null && <SweepResult key={id} id={id} live={live.get(id)} />}
    </div>
  );
}
