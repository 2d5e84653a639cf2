/**
 * Fleet: every bot, live. The list is virtual (only the rows in view are in the DOM) and rows are
 * memoised on their bot object, which the store replaces only when a /ws event touches that bot, so a
 * batch for 1,000 bots costs one filter pass and the visible rows.
 */
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { ConfirmDialog, ProblemView, Sparkline, StateBadge } from "../components";
import { api, asProblem, ifMatch } from "../lib/api";
import { EQUITY_SAMPLE_MS, liveEquity } from "../lib/data";
import { fmtQty } from "../lib/format";
import { actionsFor, EMPTY_FILTER, filterFleet, fleet, type BotRead, type FleetBot, type FleetFilter } from "../lib/fleet";
import { hub } from "../lib/live";
import { Link } from "../lib/router";
import type { Problem } from "@gordon/manager-client";

const ROW = 44;
const OVERSCAN = 8;
type Action = "start" | "pause" | "resume" | "stop" | "delete";

declare global {
  interface Window {
    /** Milliseconds from a /ws batch's hand-over to the fleet's commit (newest last; read by the benchmarks). */
    __gordonFleetRenders?: { ms: number; events: number; rows: number }[];
  }
}

/** Run a lifecycle action (If-Match with the version we show; a 412 is shown like any problem). */
export async function runAction(bot: BotRead, action: Action, flatten = false): Promise<Problem | null> {
  const path = { botId: bot.id };
  const header = ifMatch(bot.version);
  const client = api();
  const result = action === "delete"
    ? await client.DELETE("/bots/{botId}", { params: { path, header, query: flatten ? { flatten: true } : {} } })
    : action === "stop"
      ? await client.POST("/bots/{botId}/stop", { params: { path, header, query: flatten ? { flatten: true } : {} } })
      : await client.POST(`/bots/{botId}/${action}`, { params: { path, header } });
  if (result.error) {
    return asProblem(result.error, result.response.status);
  }
  if (result.data && action !== "delete") {
    fleet.upsert(result.data as BotRead);
  }
  return null;
}

export const ActionDialog = ({ bot, action, onClose }: { bot: BotRead; action: Action; onClose: (done: boolean) => void }) => {
  const [flatten, setFlatten] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const dangerous = action === "delete";
  return (
    <ConfirmDialog
      title={`${action[0]?.toUpperCase()}${action.slice(1)} ${bot.name}?`}
      body={<p>Bot #{bot.id} <strong>{bot.name}</strong> ({bot.strategy} {bot.symbol} {bot.mode}), desired state {bot.desiredState}.</p>}
      {...(dangerous ? { typed: bot.name } : {})}
      confirmLabel={action}
      onCancel={() => onClose(false)}
      onConfirm={() => {
        void runAction(bot, action, flatten).then((failed) => (failed ? setProblem(failed) : onClose(true)));
      }}
    >
      {(action === "stop" || action === "delete") && (
        <label className="check"><input type="checkbox" checked={flatten} onChange={(e) => setFlatten(e.target.checked)} /> Sell the position first (flatten)</label>
      )}
      <ProblemView problem={problem} />
    </ConfirmDialog>
  );
};

const Row = memo(function Row({ item, top, onAction }: { item: FleetBot; top: number; onAction: (bot: BotRead, action: Action) => void }) {
  const { bot } = item;
  const status = bot.status;
  return (
    <div className="frow" role="row" style={{ transform: `translateY(${top}px)` }} data-testid={`bot-row-${bot.id}`}>
      <span role="cell" className="c-id">{bot.id}</span>
      <span role="cell" className="c-name"><Link href={`/ui/bots/${bot.id}`}>{bot.name}</Link></span>
      <span role="cell">{bot.strategy}</span>
      <span role="cell">{bot.symbol} {bot.interval}</span>
      <span role="cell">{bot.mode}</span>
      <span role="cell"><StateBadge state={bot.desiredState} /></span>
      <span role="cell" data-testid="observed"><StateBadge state={status?.observedState} /></span>
      <span role="cell">{status?.quarantined ? <span className="badge st-quarantined" title={status.quarantineReason ?? ""}>quarantined</span> : "—"}</span>
      <span role="cell" className="num">{status?.restarts ?? 0}</span>
      <span role="cell" className="num">{fmtQty(bot.position?.qty)}</span>
      <span role="cell"><Sparkline values={item.equity} label={`equity of ${bot.name}`} /></span>
      <span role="cell" className="actions">
        {actionsFor(bot).map((action) => (
          <button key={action} type="button" onClick={() => onAction(bot, action)} aria-label={`${action} ${bot.name}`}>{action}</button>
        ))}
        <button type="button" className="danger" onClick={() => onAction(bot, "delete")} aria-label={`delete ${bot.name}`}>delete</button>
      </span>
    </div>
  );
});

const OBSERVED = ["pending", "starting", "running", "paused", "stopping", "stopped", "crashed", "backoff", "quarantined", "error", "removed"];

export function FleetPage() {
  const version = useSyncExternalStore(fleet.subscribe, fleet.getVersion);
  const [filter, setFilter] = useState<FleetFilter>(EMPTY_FILTER);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [pending, setPending] = useState<{ bot: BotRead; action: Action } | null>(null);
  const scroller = useRef<HTMLDivElement>(null);

  // eslint-disable-next-line react-hooks/exhaustive-deps
  const rows = useMemo(() => filterFleet(fleet.all(), filter), [version, filter]);

  // Sparklines: equity points have no /ws channel, so a sample is read now and then (the only polling).
  useEffect(() => {
    const timer = setInterval(() => void liveEquity().then((equity) => fleet.sample(equity), () => undefined),
                              EQUITY_SAMPLE_MS);
    return () => clearInterval(timer);
  }, []);

  // "fleet-ready": the first commit showing the loaded fleet (what the first-load figure measures to).
  useLayoutEffect(() => {
    if (fleet.loaded && typeof performance !== "undefined" && performance.getEntriesByName("fleet-ready").length === 0) {
      performance.mark("fleet-ready", { detail: { rows: rows.length } });
    }
  }, [rows]);

  useLayoutEffect(() => {
    const flushed = hub.lastFlush;
    if (flushed && typeof performance !== "undefined") {
      const ms = performance.now() - flushed.at;
      hub.lastFlush = undefined;
      const log = (window.__gordonFleetRenders ??= []);
      log.push({ ms, events: flushed.size, rows: rows.length });
      if (log.length > 200) {
        log.shift();
      }
      performance.measure?.("fleet-batch-render", { start: flushed.at, duration: ms });
    }
  }, [rows]);

  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) {
      return;
    }
    setViewport(element.clientHeight);
    const observer = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(() => setViewport(element.clientHeight));
    observer?.observe(element);
    return () => observer?.disconnect();
  }, []);

  const onScroll = useCallback(() => {
    const element = scroller.current;
    if (element) {
      setScrollTop(element.scrollTop);
    }
  }, []);
  const onAction = useCallback((bot: BotRead, action: Action) => setPending({ bot, action }), []);

  const first = Math.max(0, Math.floor(scrollTop / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + viewport) / ROW) + OVERSCAN);
  const visible = rows.slice(first, last);
  const counts = useMemo(() => {
    const byState = new Map<string, number>();
    for (const { bot } of rows) {
      const state = bot.status?.observedState ?? "pending";
      byState.set(state, (byState.get(state) ?? 0) + 1);
    }
    return [...byState.entries()].sort();
  }, [rows]);

  const set = <K extends keyof FleetFilter>(key: K, value: FleetFilter[K]) => setFilter((f) => ({ ...f, [key]: value }));
  return (
    <section className="card fleet">
      <div className="card-head">
        <h1>Fleet</h1>
        <span className="muted" data-testid="fleet-count">{rows.length} of {fleet.size} bots</span>
        <span className="muted">{counts.map(([state, n]) => `${n} ${state}`).join(" · ")}</span>
        <Link href="/ui/bots/new" className="button primary">New bot</Link>
      </div>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>Search <input type="search" value={filter.text} onChange={(e) => set("text", e.target.value)} placeholder="name, strategy, symbol" /></label>
        <label>Observed
          <select value={filter.observed} onChange={(e) => set("observed", e.target.value)}>
            <option value="">any</option>
            {OBSERVED.map((s) => <option key={s}>{s}</option>)}
          </select>
        </label>
        <label>Desired
          <select value={filter.desired} onChange={(e) => set("desired", e.target.value)}>
            <option value="">any</option><option>running</option><option>paused</option><option>stopped</option>
          </select>
        </label>
        <label>Mode
          <select value={filter.mode} onChange={(e) => set("mode", e.target.value)}>
            <option value="">any</option><option>paper</option><option>shadow</option><option>live</option>
          </select>
        </label>
        <label className="check"><input type="checkbox" checked={filter.quarantined} onChange={(e) => set("quarantined", e.target.checked)} /> quarantined only</label>
      </form>
      <div className="ftable fbody" ref={scroller} onScroll={onScroll} data-testid="fleet-scroll" tabIndex={0} role="region" aria-label="Bots">
        <div role="table" aria-label="Bots" aria-rowcount={rows.length + 1}>
          <div role="rowgroup" className="fheadgroup">
            <div className="frow fhead" role="row">
              {["id", "name", "strategy", "market", "mode", "desired", "observed", "quarantine", "restarts", "position", "equity", "actions"].map((h) => (
                <span role="columnheader" key={h}>{h}</span>
              ))}
            </div>
          </div>
          <div role="rowgroup" style={{ height: rows.length * ROW, position: "relative" }}>
            {visible.map((item, index) => (
              <Row key={item.bot.id} item={item} top={(first + index) * ROW} onAction={onAction} />
            ))}
          </div>
        </div>
      </div>
      {fleet.loaded && rows.length === 0 && <p className="muted empty">No bot{fleet.size ? " matches the filters" : " yet: create one with New bot"}.</p>}
      {pending && <ActionDialog bot={pending.bot} action={pending.action} onClose={() => setPending(null)} />}
    </section>
  );
}
