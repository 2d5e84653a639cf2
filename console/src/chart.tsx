/**
 * Time-series charts with TradingView's lightweight-charts, loaded on first use (its own chunk, so the
 * fleet page does not pay for it). `onVisibleRange` reports the visible time range after a zoom/scroll
 * (debounced), so a page can re-query `points=N` over it.
 */
import { useEffect, useRef, useState } from "react";
import type { IChartApi, ISeriesApi, UTCTimestamp } from "lightweight-charts";

export interface ChartSeries {
  name: string;
  color: string;
  data: readonly { time: number; value: number }[];
  kind?: "line" | "area";
}

export interface TimeChartProps {
  series: readonly ChartSeries[];
  height?: number;
  label: string;
  /** The visible range after the operator zoomed or scrolled (`zoomed`: less than the whole series is shown). */
  onVisibleRange?: (from: number, to: number, zoomed: boolean) => void;
  /** Formats the price scale (e.g. percentages for drawdown). */
  percent?: boolean;
}

type Lib = typeof import("lightweight-charts");
let libPromise: Promise<Lib> | null = null;
const loadLib = () => (libPromise ??= import("lightweight-charts"));

export function TimeChart({ series, height = 260, label, onVisibleRange, percent }: TimeChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const lines = useRef<ISeriesApi<"Line" | "Area">[]>([]);
  const [lib, setLib] = useState<Lib | null>(null);
  const rangeCallback = useRef(onVisibleRange);
  rangeCallback.current = onVisibleRange;
  const zoomed = useRef(false);
  const span = useRef<[number, number] | null>(null);

  useEffect(() => {
    let alive = true;
    void loadLib().then((loaded) => alive && setLib(loaded));
    return () => {
      alive = false;
    };
  }, []);

  useEffect(() => {
    if (!lib || !host.current) {
      return;
    }
    const created = lib.createChart(host.current, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: "#c9d1d9", attributionLogo: false },
      grid: { vertLines: { color: "#21262d" }, horzLines: { color: "#21262d" } },
      timeScale: { timeVisible: true, secondsVisible: false },
      rightPriceScale: { borderColor: "#30363d" },
      localization: percent ? { priceFormatter: (p: number) => `${(p * 100).toFixed(1)}%` } : {},
    });
    chart.current = created;
    let timer: ReturnType<typeof setTimeout> | undefined;
    created.timeScale().subscribeVisibleTimeRangeChange((range) => {
      if (!range || !rangeCallback.current) {
        return;
      }
      const from = Number(range.from);
      const to = Number(range.to);
      const whole = span.current;
      // Zoomed when less than ~95% of the series is in view; a live series is followed (fitted) otherwise.
      zoomed.current = whole !== null && whole[1] > whole[0] && (to - from) < 0.95 * (whole[1] - whole[0]);
      clearTimeout(timer);
      timer = setTimeout(() => rangeCallback.current?.(from, to, zoomed.current), 350);
    });
    return () => {
      clearTimeout(timer);
      lines.current = [];
      chart.current = null;
      zoomed.current = false;
      created.remove();
    };
  }, [lib, percent]);

  useEffect(() => {
    const current = chart.current;
    if (!lib || !current) {
      return;
    }
    while (lines.current.length > series.length) {
      const line = lines.current.pop();
      if (line) {
        current.removeSeries(line);
      }
    }
    series.forEach((s, index) => {
      let line = lines.current[index];
      if (!line) {
        line = s.kind === "area"
          ? current.addSeries(lib.AreaSeries, { lineColor: s.color, topColor: `${s.color}55`, bottomColor: `${s.color}05`, lineWidth: 2, title: s.name })
          : current.addSeries(lib.LineSeries, { color: s.color, lineWidth: 2, title: s.name });
        lines.current[index] = line;
      }
      line.setData(s.data.map((p) => ({ time: p.time as UTCTimestamp, value: p.value })));
    });
    const times = series.flatMap((s) => (s.data.length ? [s.data[0]?.time ?? 0, s.data[s.data.length - 1]?.time ?? 0] : []));
    if (times.length > 0) {
      span.current = [Math.min(...times), Math.max(...times)];
      if (!zoomed.current) {
        current.timeScale().fitContent();
      }
    }
  }, [lib, series]);

  const points = series.reduce((n, s) => n + s.data.length, 0);
  return (
    <figure className="chart" aria-label={label} data-testid="chart" data-points={points} data-ready={lib ? "1" : "0"}>
      <div ref={host} style={{ height }} />
      <figcaption className="legend">
        {series.map((s) => <span key={s.name}><i style={{ background: s.color }} />{s.name}</span>)}
        {points === 0 && <span className="muted">no points yet</span>}
      </figcaption>
    </figure>
  );
}
