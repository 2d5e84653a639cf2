/** Formatting and small pure helpers (unit-tested in test/format.test.ts). */

/** A money/quantity value as the API sends it — a decimal string or (equity series) a JSON number — as a number. */
export function num(value: string | number | null | undefined): number {
  if (value === null || value === undefined || value === "") {
    return Number.NaN;
  }
  return typeof value === "number" ? value : Number(value);
}

export function fmtMoney(value: string | number | null | undefined, digits = 2): string {
  const n = num(value);
  if (!Number.isFinite(n)) {
    return "—";
  }
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtQty(value: string | number | null | undefined): string {
  const n = num(value);
  if (!Number.isFinite(n)) {
    return "—";
  }
  return n === 0 ? "0" : n.toLocaleString("en-US", { maximumFractionDigits: 8 });
}

export function fmtPct(value: string | number | null | undefined, digits = 2): string {
  const n = num(value);
  if (!Number.isFinite(n)) {
    return "—";
  }
  return `${(n * 100).toFixed(digits)}%`;
}

export function fmtNum(value: string | number | null | undefined, digits = 2): string {
  const n = num(value);
  return Number.isFinite(n) ? n.toFixed(digits) : "—";
}

/** "2024-01-01 12:00:00" in UTC (the API's times are UTC). */
export function fmtTime(value: string | null | undefined): string {
  if (!value) {
    return "—";
  }
  return value.replace("T", " ").replace(/(\.\d+)?Z$/, "");
}

/** An RFC 3339 time in seconds since the epoch (what lightweight-charts takes). */
/** A `datetime-local` value read as UTC (`2024-01-01T00:00`) as RFC 3339 (`2024-01-01T00:00:00Z`); "" stays "". */
export function localToIso(local: string): string {
  return local ? new Date(`${local}:00Z`).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

export function epochS(value: string): number {
  return Math.floor(Date.parse(value) / 1000);
}

/** RFC 3339 with Z, from seconds since the epoch. */
export function isoFromEpochS(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Chart points: sorted by time, strictly increasing (lightweight-charts refuses equal times), numbers. */
export function chartPoints<T>(items: readonly T[], time: (item: T) => string, value: (item: T) => string | number | null):
  { time: number; value: number }[] {
  const out: { time: number; value: number }[] = [];
  for (const item of items) {
    const t = epochS(time(item));
    const v = num(value(item));
    if (!Number.isFinite(t) || !Number.isFinite(v)) {
      continue;
    }
    const last = out[out.length - 1];
    if (last && t <= last.time) {
      if (t === last.time) {
        last.value = v; // the later point of the same second wins
      }
      continue;
    }
    out.push({ time: t, value: v });
  }
  return out;
}

/** Drawdown series (fraction ≤ 0) of an equity series. */
export function drawdown(points: readonly { time: number; value: number }[]): { time: number; value: number }[] {
  let peak = Number.NEGATIVE_INFINITY;
  return points.map(({ time, value }) => {
    peak = Math.max(peak, value);
    return { time, value: peak > 0 ? value / peak - 1 : 0 };
  });
}

export interface Change {
  path: string;
  before: unknown;
  after: unknown;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Leaf-level differences between two JSON values (objects compared key by key, dotted paths). */
export function diff(before: unknown, after: unknown, path = ""): Change[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => diff(before[key], after[key], path ? `${path}.${key}` : key));
  }
  if (JSON.stringify(before) === JSON.stringify(after)) {
    return [];
  }
  return [{ path: path || "(value)", before, after }];
}

export function show(value: unknown): string {
  if (value === undefined) {
    return "—";
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Keep at most `max` values, the newest last. */
export function pushCapped(values: readonly number[], value: number, max: number): number[] {
  const next = values.length >= max ? values.slice(values.length - max + 1) : values.slice();
  next.push(value);
  return next;
}

/** SVG polyline points of a sparkline of `values` in a width × height box. */
export function sparklinePath(values: readonly number[], width: number, height: number): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length < 2) {
    return "";
  }
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  const span = max - min || 1;
  const step = width / (finite.length - 1);
  return finite.map((v, i) => `${(i * step).toFixed(1)},${(height - ((v - min) / span) * (height - 2) - 1).toFixed(1)}`).join(" ");
}
