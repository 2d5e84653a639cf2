/** Risk: halts and breakers live (/ws); resume and emergency flatten behind a typed confirmation (forwarded to gordon-risk). */
import { useState, useSyncExternalStore } from "react";
import type { Problem } from "@gordon/manager-client";

import { ConfirmDialog, ProblemView, Section, StateBadge } from "../components";
import { api, asProblem } from "../lib/api";
import { fmtTime } from "../lib/format";
import { risk } from "../lib/risk";

type Act = "resume" | "flatten";

export default function RiskPage() {
  useSyncExternalStore(risk.subscribe, risk.getVersion);
  const [act, setAct] = useState<Act | null>(null);
  const [reason, setReason] = useState("");
  const [scope, setScope] = useState("");
  const [problem, setProblem] = useState<Problem | null>(null);
  const [answer, setAnswer] = useState<string | null>(null);
  const breakers = [...risk.breakers.values()].sort((a, b) => a.breaker.localeCompare(b.breaker));
  const halts = [...risk.halts.values()];
  const run = async () => {
    const which = act;
    setAct(null);
    setProblem(null);
    const body = { reason, ...(scope ? { scope } : {}) };
    const result = which === "resume" ? await api().POST("/bff/risk/resume", { body }) : await api().POST("/risk/emergency-flatten", { body });
    if (result.error) {
      setProblem(asProblem(result.error, result.response.status));
    } else {
      setAnswer(`${which}: ${JSON.stringify(result.data)} (audit ${result.response.headers.get("X-Audit-Id") ?? "?"})`);
    }
  };
  return (
    <div className="stack">
      <Section title="Halts" actions={<span className="muted">live from risk_halt_changed</span>}>
        {halts.length === 0 ? <p className="muted">No halt change since this page opened (halts have no HTTP read; they arrive on /ws).</p> : (
          <table className="tbl" data-testid="halts"><thead><tr><th scope="col">scope</th><th scope="col">halted</th><th scope="col">reason</th><th scope="col">actor</th><th scope="col">at</th></tr></thead>
            <tbody>{halts.map((h) => <tr key={h.scope}><td>{h.scope}</td><td>{h.halted ? <span className="badge st-error">halted</span> : "no"}</td><td>{h.reason ?? ""}</td><td>{h.actor ?? ""}</td><td>{fmtTime(h.updatedAt)}</td></tr>)}</tbody></table>
        )}
      </Section>
      <Section title="Breakers" actions={<span className="muted">snapshot {fmtTime(risk.snapshotAt)}, then live</span>}>
        {breakers.length === 0 ? <p className="muted">No breaker in trading.breaker_state.</p> : (
          <table className="tbl" data-testid="breakers"><thead><tr><th scope="col">breaker</th><th scope="col">state</th><th scope="col">reason</th><th scope="col">tripped</th><th scope="col">updated</th></tr></thead>
            <tbody>{breakers.map((b) => <tr key={b.breaker}><td>{b.breaker}</td><td><StateBadge state={b.state === "closed" ? "running" : b.state === "open" ? "error" : "paused"} /> {b.state}</td><td>{b.reason ?? ""}</td><td>{fmtTime(b.trippedAt)}</td><td>{fmtTime(b.updatedAt)}</td></tr>)}</tbody></table>
        )}
      </Section>
      <Section title="Operator actions">
        <form className="filters" aria-label="Risk actions" onSubmit={(e) => e.preventDefault()}>
          <label>Reason (recorded in the audit) <input name="reason" value={reason} onChange={(e) => setReason(e.target.value)} required /></label>
          <label>Scope (empty: gordon-risk's default) <input name="scope" value={scope} onChange={(e) => setScope(e.target.value)} placeholder="global" /></label>
          <button type="button" disabled={!reason} onClick={() => setAct("resume")}>Resume trading…</button>
          <button type="button" className="danger" disabled={!reason} onClick={() => setAct("flatten")}>Emergency flatten…</button>
        </form>
        <ProblemView problem={problem} />
        {answer && <p className="muted" role="status">{answer}</p>}
      </Section>
      {act && (
        <ConfirmDialog title={act === "resume" ? "Resume trading?" : "Emergency flatten?"}
          body={<p>{act === "resume" ? "gordon-risk lifts the halt" : "gordon-risk sells every position and halts"}{scope ? ` for ${scope}` : ""}. Reason: {reason}</p>}
          typed={act === "resume" ? "RESUME" : "FLATTEN"} confirmLabel={act === "resume" ? "resume" : "flatten everything"}
          onCancel={() => setAct(null)} onConfirm={() => void run()} />
      )}
    </div>
  );
}
