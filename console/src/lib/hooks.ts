/** Hooks over the client and the live hub. */
import { useCallback, useEffect, useRef, useState } from "react";
import type { LiveEvent, Problem } from "@gordon/manager-client";

import { asProblem } from "./api";
import { hub } from "./live";

export interface Read<T> {
  data: T | undefined;
  problem: Problem | null;
  loading: boolean;
  reload: () => void;
}

/** One read (a typed client call returning `{data, error, response}`), re-run when `deps` change or on `reload()`. */
export function useRead<T>(call: () => Promise<{ data?: T; error?: unknown; response: Response }>, deps: readonly unknown[]): Read<T> {
  const [state, setState] = useState<{ data: T | undefined; problem: Problem | null; loading: boolean }>({ data: undefined, problem: null, loading: true });
  const [tick, setTick] = useState(0);
  const callRef = useRef(call);
  callRef.current = call;
  useEffect(() => {
    let alive = true;
    setState((s) => ({ ...s, loading: true }));
    callRef.current().then(
      ({ data, error, response }) => {
        if (alive) {
          setState(error ? { data: undefined, problem: asProblem(error, response.status), loading: false } : { data, problem: null, loading: false });
        }
      },
      (failure: unknown) => alive && setState({ data: undefined, problem: asProblem(failure), loading: false }),
    );
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Rows of one kind as /ws delivers them (`pick` keeps the ones wanted), each merged over the last seen, by id. */
export function useLiveRows<T extends { id: number }>(pick: (event: LiveEvent) => T | null): Map<number, T> {
  const [rows, setRows] = useState<Map<number, T>>(new Map());
  useLive((events) => {
    const fresh = events.flatMap((e) => {
      const row = pick(e);
      return row ? [row] : [];
    });
    if (fresh.length) {
      setRows((current) => {
        const next = new Map(current);
        fresh.forEach((row) => next.set(row.id, { ...next.get(row.id), ...row }));
        return next;
      });
    }
  });
  return rows;
}

/** A listed page with the live rows merged in (and added), newest (highest id) first, at most `max`. */
export function withLive<T extends { id: number }>(items: readonly T[], live: Map<number, T>, max = 30): T[] {
  const byId = new Map<number, T>(items.map((r) => [r.id, r]));
  live.forEach((row, id) => byId.set(id, { ...byId.get(id), ...row }));
  return [...byId.values()].sort((a, b) => b.id - a.id).slice(0, max);
}

/** Each /ws batch (already coalesced per animation frame). */
export function useLive(listener: (events: readonly LiveEvent[]) => void): void {
  const ref = useRef(listener);
  ref.current = listener;
  useEffect(() => hub.subscribe((events) => ref.current(events)), []);
}

/** Calls `fn` at most once per `ms` (trailing call kept). */
export function useThrottled(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    const wait = last.current + ms - Date.now();
    if (wait <= 0) {
      last.current = Date.now();
      ref.current();
    } else if (timer.current === undefined) {
      timer.current = setTimeout(() => {
        timer.current = undefined;
        last.current = Date.now();
        ref.current();
      }, wait);
    }
  }, [ms]);
}
