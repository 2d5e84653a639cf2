/**
 * The bot form, generated from `GET /strategies` (each strategy's `paramsSchema`) and `GET /bff/bot-defaults`.
 * Create: POST /bots (Idempotency-Key). Edit: PUT /bots/{id} with If-Match = the version the form was
 * opened from; a 412 shows what changed on the server meanwhile, next to the operator's own changes.
 */
import { useEffect, useMemo, useState } from "react";
import type { Problem, Schemas } from "@gordon/manager-client";

import { Loading, ProblemView } from "../components";
import { api, asProblem, ifMatch } from "../lib/api";
import { diff, localToIso, show, type Change } from "../lib/format";
import { fleet } from "../lib/fleet";
import { navigate } from "../lib/router";
import {
  draftFromBot, draftFromDefaults, inputKind, parseParam, specOf, toCreate, toUpdate, type ParamSchema, type SpecDraft,
} from "../lib/spec";

type Strategy = Schemas["StrategyRead"];
type BotRead = Schemas["BotRead"];

export function useStrategies(): { strategies: Strategy[]; defaults: Schemas["BotDefaults"] | null; problem: Problem | null } {
  const [strategies, setStrategies] = useState<Strategy[]>([]);
  const [defaults, setDefaults] = useState<Schemas["BotDefaults"] | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  useEffect(() => {
    void api().GET("/strategies").then(({ data, error, response }) => (error ? setProblem(asProblem(error, response.status)) : setStrategies(data?.items ?? [])));
    void api().GET("/bff/bot-defaults").then(({ data, error, response }) => (error ? setProblem(asProblem(error, response.status)) : setDefaults(data ?? null)));
  }, []);
  return { strategies, defaults, problem };
}

/** A launch form's market and range (backtests, sweeps): from/to as the datetime-local inputs hold them (UTC). */
export type MarketRange = { symbol: string; interval: string; from: string; to: string };

/** The range state of a launch form; symbol and interval follow the bot defaults once they load. */
export function useMarketRange(defaults: Schemas["BotDefaults"] | null): [MarketRange, (next: MarketRange) => void] {
  const [range, setRange] = useState<MarketRange>({ symbol: "BTCUSDT", interval: "1m", from: "2024-01-01T00:00", to: "2024-01-04T00:00" });
  useEffect(() => {
    if (defaults) {
      setRange((r) => ({ ...r, symbol: defaults.symbol, interval: defaults.interval }));
    }
  }, [defaults]);
  return [range, setRange];
}

/** The request body's part of a range: symbol, interval, from and to as RFC 3339 UTC. */
export function rangeBody(range: MarketRange): MarketRange {
  return { symbol: range.symbol, interval: range.interval, from: localToIso(range.from), to: localToIso(range.to) };
}

/** Symbol, interval, from and to fields (ids ``{prefix}-symbol`` …; names as the body's keys). */
export function MarketRangeFields({ prefix, range, onChange }: { prefix: string; range: MarketRange; onChange: (next: MarketRange) => void }) {
  const field = (key: keyof MarketRange, label: string, type?: string) => (
    <div className="field"><label htmlFor={`${prefix}-${key}`}>{label}</label>
      <input id={`${prefix}-${key}`} name={key} type={type} value={range[key]} onChange={(e) => onChange({ ...range, [key]: e.target.value })} />
    </div>
  );
  return (
    <>
      {field("symbol", "Symbol")}
      {field("interval", "Interval")}
      {field("from", "From (UTC)", "datetime-local")}
      {field("to", "To (UTC, excluded)", "datetime-local")}
    </>
  );
}

function fieldError(problem: Problem | null, field: string): string | undefined {
  return problem?.errors?.find((e) => e.field === field || e.field.startsWith(`${field}.`))?.message;
}

export function ParamsFields({ schema, values, onChange, problem, prefix = "params" }: {
  schema: ParamSchema | undefined; values: Record<string, unknown>; onChange: (next: Record<string, unknown>) => void; problem: Problem | null; prefix?: string;
}) {
  const properties = Object.entries(schema?.properties ?? {});
  const extra = Object.keys(values).filter((key) => !(schema?.properties && key in schema.properties));
  return (
    <fieldset>
      <legend>Strategy parameters</legend>
      {properties.length === 0 && extra.length === 0 && <p className="muted">This strategy takes no parameter.</p>}
      {[...properties, ...extra.map((key) => [key, undefined] as const)].map(([key, prop]) => {
        const kind = inputKind(prop);
        const id = `${prefix}-${key}`;
        const value = values[key];
        const error = fieldError(problem, `${prefix}.${key}`);
        const hint = [prop?.description, prop?.minimum !== undefined && prop?.minimum !== null ? `min ${prop.minimum}` : "",
          prop?.maximum !== undefined && prop?.maximum !== null ? `max ${prop.maximum}` : ""].filter(Boolean).join(" · ");
        const set = (raw: string | boolean) => onChange({ ...values, [key]: parseParam(prop, raw) });
        return (
          <div className="field" key={key}>
            <label htmlFor={id}>{prop?.title ?? key}</label>
            {kind === "boolean" ? (
              <input id={id} name={id} type="checkbox" checked={value === true} onChange={(e) => set(e.target.checked)} />
            ) : kind === "enum" ? (
              <select id={id} name={id} value={String(value ?? "")} onChange={(e) => set(e.target.value)}>
                {(prop?.enum ?? []).map((option) => <option key={String(option)} value={String(option)}>{String(option)}</option>)}
              </select>
            ) : (
              <input id={id} name={id} type={kind === "text" ? "text" : "number"} step={kind === "integer" ? 1 : "any"}
                {...(prop?.minimum !== undefined && prop?.minimum !== null ? { min: prop.minimum } : {})}
                {...(prop?.maximum !== undefined && prop?.maximum !== null ? { max: prop.maximum } : {})}
                value={value === null || value === undefined ? "" : typeof value === "object" ? JSON.stringify(value) : String(value)}
                aria-invalid={error ? true : undefined} onChange={(e) => set(e.target.value)} />
            )}
            {hint && <small className="muted">{hint}</small>}
            {error && <small className="error">{error}</small>}
          </div>
        );
      })}
    </fieldset>
  );
}

function Text({ label, name, value, onChange, problem, placeholder, required }: {
  label: string; name: string; value: string; onChange: (v: string) => void; problem: Problem | null; placeholder?: string; required?: boolean;
}) {
  const error = fieldError(problem, name);
  return (
    <div className="field">
      <label htmlFor={`f-${name}`}>{label}</label>
      <input id={`f-${name}`} name={name} value={value} placeholder={placeholder} required={required}
        aria-invalid={error ? true : undefined} onChange={(e) => onChange(e.target.value)} />
      {error && <small className="error">{error}</small>}
    </div>
  );
}

export function ChangeTable({ changes, beforeLabel, afterLabel, testId }: { changes: Change[]; beforeLabel: string; afterLabel: string; testId?: string }) {
  if (changes.length === 0) {
    return <p className="muted">No difference.</p>;
  }
  return (
    <table className="diff" data-testid={testId}>
      <thead><tr><th scope="col">field</th><th scope="col">{beforeLabel}</th><th scope="col">{afterLabel}</th></tr></thead>
      <tbody>
        {changes.map((c) => (
          <tr key={c.path}><td><code>{c.path}</code></td><td className="del">{show(c.before)}</td><td className="add">{show(c.after)}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

interface Conflict {
  current: BotRead;
}

/** Create (no `bot`) or edit (`bot`, the version the form starts from). */
export function BotForm({ bot, onSaved, onCancel }: { bot?: BotRead; onSaved: (saved: BotRead) => void; onCancel?: () => void }) {
  const { strategies, defaults, problem: loadProblem } = useStrategies();
  const [base, setBase] = useState<BotRead | undefined>(bot);
  const [draft, setDraft] = useState<SpecDraft | null>(bot ? draftFromBot(bot) : null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [busy, setBusy] = useState(false);
  const [idempotencyKey] = useState(() => globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`);

  useEffect(() => {
    if (!draft && defaults) {
      setDraft(draftFromDefaults(defaults));
    }
  }, [defaults, draft]);

  const strategy = useMemo(() => strategies.find((s) => s.name === draft?.strategy), [strategies, draft?.strategy]);
  if (loadProblem) {
    return <ProblemView problem={loadProblem} />;
  }
  if (!draft) {
    return <Loading what="the form" />;
  }
  const update = (patch: Partial<SpecDraft>) => setDraft({ ...draft, ...patch });

  const submit = async () => {
    setBusy(true);
    setProblem(null);
    try {
      if (!base) {
        const { data, error, response } = await api().POST("/bots", { params: { header: { "Idempotency-Key": idempotencyKey } }, body: toCreate(draft) });
        if (error || !data) {
          setProblem(asProblem(error, response.status));
          return;
        }
        fleet.upsert(data);
        onSaved(data);
        return;
      }
      const { data, error, response } = await api().PUT("/bots/{botId}", {
        params: { path: { botId: base.id }, header: ifMatch(base.version) }, body: toUpdate(draft),
      });
      if (response.status === 412) {
        const latest = await api().GET("/bots/{botId}", { params: { path: { botId: base.id } } });
        setProblem(asProblem(error, 412));
        if (latest.data) {
          setConflict({ current: latest.data });
        }
        return;
      }
      if (error || !data) {
        setProblem(asProblem(error, response.status));
        return;
      }
      fleet.upsert(data);
      onSaved(data);
    } catch (failure) {
      setProblem(asProblem(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="botform" aria-label={base ? `Edit ${base.name}` : "New bot"} onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      {conflict && base && (
        <div className="conflict" role="alert" data-testid="conflict">
          <h3>Someone changed this bot meanwhile (version {base.version} → {conflict.current.version})</h3>
          <p>Your edit was not saved. What changed on the server since you opened the form:</p>
          <ChangeTable changes={diff(specOf(base), specOf(conflict.current))} beforeLabel={`yours (v${base.version})`} afterLabel={`now (v${conflict.current.version})`} testId="conflict-theirs" />
          <p>Your changes:</p>
          <ChangeTable changes={diff(specOf(base), toUpdate(draft))} beforeLabel={`v${base.version}`} afterLabel="your form" />
          <div className="row">
            <button type="button" onClick={() => { setBase(conflict.current); setConflict(null); setProblem(null); }}>Keep my values over v{conflict.current.version}</button>
            <button type="button" onClick={() => { setBase(conflict.current); setDraft(draftFromBot(conflict.current)); setConflict(null); setProblem(null); }}>Discard mine, load v{conflict.current.version}</button>
          </div>
        </div>
      )}
      <div className="grid2">
        <Text label="Name" name="name" value={draft.name} onChange={(name) => update({ name })} problem={problem} placeholder="btc-sma-1m" required />
        <div className="field">
          <label htmlFor="f-strategy">Strategy</label>
          <select id="f-strategy" name="strategy" value={draft.strategy}
            onChange={(e) => {
              const next = strategies.find((s) => s.name === e.target.value);
              update({ strategy: e.target.value, params: { ...(next?.defaultParams ?? {}) } });
            }}>
            {(strategies.length ? strategies.map((s) => s.name) : defaults?.strategies ?? [draft.strategy]).map((name) => <option key={name}>{name}</option>)}
          </select>
          {strategy && <small className="muted">{strategy.description} (warm-up {strategy.warmupBars} bars)</small>}
        </div>
        <Text label="Symbol" name="symbol" value={draft.symbol} onChange={(symbol) => update({ symbol })} problem={problem} required />
        <Text label="Interval" name="interval" value={draft.interval} onChange={(interval) => update({ interval })} problem={problem} required />
        <div className="field">
          <label htmlFor="f-mode">Mode</label>
          <select id="f-mode" name="mode" value={draft.mode} onChange={(e) => update({ mode: e.target.value as SpecDraft["mode"] })}>
            <option>paper</option><option>shadow</option><option>live</option>
          </select>
        </div>
        <Text label="Image" name="image" value={draft.image} onChange={(image) => update({ image })} problem={problem} />
        {!base && (
          <div className="field">
            <label htmlFor="f-desired">Initial desired state</label>
            <select id="f-desired" name="desiredState" value={draft.desiredState} onChange={(e) => update({ desiredState: e.target.value as SpecDraft["desiredState"] })}>
              <option>stopped</option><option>running</option><option>paused</option>
            </select>
          </div>
        )}
      </div>
      <ParamsFields schema={strategy?.paramsSchema} values={draft.params} onChange={(params) => update({ params })} problem={problem} />
      <fieldset>
        <legend>Execution</legend>
        <div className="grid4">
          {Object.entries(draft.execution).map(([key, value]) => (
            <div className="field" key={key}>
              <label htmlFor={`f-exec-${key}`}>{key}</label>
              <input id={`f-exec-${key}`} name={`execution.${key}`} inputMode="decimal" value={value}
                aria-invalid={fieldError(problem, `execution.${key}`) ? true : undefined}
                onChange={(e) => update({ execution: { ...draft.execution, [key]: e.target.value } })} />
              {fieldError(problem, `execution.${key}`) && <small className="error">{fieldError(problem, `execution.${key}`)}</small>}
            </div>
          ))}
        </div>
      </fieldset>
      <div className="field">
        <label htmlFor="f-labels">Labels (one <code>key=value</code> per line; <code>replay.speed=50</code> replays stored bars at 50 bars/s)</label>
        <textarea id="f-labels" name="labels" rows={3} value={draft.labels} onChange={(e) => update({ labels: e.target.value })} />
        {fieldError(problem, "labels") && <small className="error">{fieldError(problem, "labels")}</small>}
      </div>
      <ProblemView problem={problem} />
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>{base ? `Save (If-Match v${base.version})` : "Create bot"}</button>
        {onCancel && <button type="button" onClick={onCancel}>Cancel</button>}
      </div>
    </form>
  );
}

export default function BotFormPage() {
  return (
    <section className="card">
      <h1>New bot</h1>
      <BotForm onSaved={(bot) => navigate(`/ui/bots/${bot.id}`)} onCancel={() => navigate("/")} />
    </section>
  );
}
