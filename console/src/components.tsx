/** Shared pieces: the connection indicator, dialogs (token, confirmation), problems, sparkline, charts. */
import { useEffect, useRef, useState, useSyncExternalStore, type ReactNode } from "react";
import type { Problem } from "@gordon/manager-client";

import { currentTokens, setTokens } from "./lib/api";
import { fmtPct, sparklinePath } from "./lib/format";
import { hub, type ConnectionState } from "./lib/live";

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline",
};

export function ConnectionIndicator() {
  const status = useSyncExternalStore(hub.onStatus, hub.getStatus);
  return (
    <div className={`conn conn-${status.state}`} data-testid="connection" data-state={status.state} role="status" aria-live="polite">
      <span className="dot" aria-hidden="true" />
      <span>{STATE_TEXT[status.state]}</span>
      {status.lastId !== undefined && <span className="muted" title="last event id (resume point)">#{status.lastId}</span>}
      {status.state !== "live" && (
        <button type="button" className="link" onClick={() => hub.reconnect()}>retry</button>
      )}
    </div>
  );
}

/** A native modal <dialog> (focus kept inside, Escape closes). */
export function Modal({ title, onClose, children, labelId }: { title: string; onClose: () => void; children: ReactNode; labelId: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) {
      dialog.showModal();
    }
    return () => dialog?.close();
  }, []);
  return (
    <dialog ref={ref} aria-labelledby={labelId} onCancel={(event) => { event.preventDefault(); onClose(); }}>
      <h2 id={labelId}>{title}</h2>
      {children}
    </dialog>
  );
}

export function TokenDialog({ reason, onDone }: { reason: string; onDone: (saved: boolean) => void }) {
  const tokens = currentTokens();
  const [operator, setOperator] = useState(tokens.operator);
  const [read, setRead] = useState(tokens.read);
  return (
    <Modal title="Operator token" onClose={() => onDone(false)} labelId="token-title">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          setTokens({ operator: operator.trim(), read: read.trim() });
          onDone(true);
        }}
      >
        {reason && <p className="warn" role="alert">{reason}</p>}
        <p className="muted">Kept for this browser session only (sessionStorage); never put in a URL. The manager writes
          it to <code>&lt;data dir&gt;/operator-token</code>.</p>
        <label>Operator token (writes)
          <input name="operatorToken" type="password" autoComplete="off" value={operator} onChange={(e) => setOperator(e.target.value)} />
        </label>
        <label>Read token (only when the manager sets one)
          <input name="readToken" type="password" autoComplete="off" value={read} onChange={(e) => setRead(e.target.value)} />
        </label>
        <div className="row">
          <button type="submit" className="primary">Save</button>
          <button type="button" onClick={() => onDone(false)}>Cancel</button>
        </div>
      </form>
    </Modal>
  );
}

/** A confirmation; with `typed`, the operator must type that word (dangerous actions). */
export function ConfirmDialog({ title, body, typed, confirmLabel, onConfirm, onCancel, children }: {
  title: string; body: ReactNode; typed?: string; confirmLabel: string; onConfirm: () => void; onCancel: () => void; children?: ReactNode;
}) {
  const [text, setText] = useState("");
  const ok = !typed || text === typed;
  return (
    <Modal title={title} onClose={onCancel} labelId="confirm-title">
      <form onSubmit={(event) => { event.preventDefault(); if (ok) onConfirm(); }}>
        <div>{body}</div>
        {children}
        {typed && (
          <label>Type <strong>{typed}</strong> to confirm
            <input name="confirmText" autoComplete="off" value={text} onChange={(e) => setText(e.target.value)} />
          </label>
        )}
        <div className="row">
          <button type="submit" className="danger" disabled={!ok} data-testid="confirm">{confirmLabel}</button>
          <button type="button" onClick={onCancel}>Cancel</button>
        </div>
      </form>
    </Modal>
  );
}

export function ProblemView({ problem }: { problem: Problem | null | undefined }) {
  if (!problem) {
    return null;
  }
  return (
    <div className="problem" role="alert" data-testid="problem">
      <strong>{problem.status ? `${problem.status} ` : ""}{problem.title}</strong>: {problem.detail}
      {problem.errors && problem.errors.length > 0 && (
        <ul>{problem.errors.map((error) => <li key={error.field + error.message}><code>{error.field}</code> {error.message}</li>)}</ul>
      )}
      {problem.requestId && <div className="muted">request {problem.requestId}</div>}
    </div>
  );
}

export function Sparkline({ values, label }: { values: readonly number[]; label: string }) {
  const points = sparklinePath(values, 80, 20);
  return (
    <svg className="spark" width="80" height="20" viewBox="0 0 80 20" role="img" aria-label={label}>
      {points && <polyline points={points} fill="none" stroke="currentColor" strokeWidth="1.2" />}
    </svg>
  );
}

export function Section({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card">
      <div className="card-head"><h2>{title}</h2>{actions}</div>
      {children}
    </section>
  );
}

export function StateBadge({ state }: { state: string | null | undefined }) {
  const value = state ?? "pending";
  return <span className={`badge st-${value}`}>{value}</span>;
}

/** A job's (backtest run, sweep) state badge (`data-testid={testId}`, `data-status`), progress and, while it is
 * queued or running, a cancel button. */
export function JobProgress({ testId, label, status, progress, onCancel }: {
  testId: string; label: string; status: string | undefined; progress: number; onCancel: () => void;
}) {
  return (
    <span className="row">
      <span data-testid={testId} data-status={status}><StateBadge state={status} /></span>
      <progress className="progress" max={1} value={progress} aria-label={`progress of ${label}`} />
      <span>{fmtPct(progress, 0)}</span>
      {(status === "queued" || status === "running") && <button type="button" onClick={onCancel}>cancel</button>}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return <p className="muted" aria-busy="true">Loading {what}…</p>;
}
