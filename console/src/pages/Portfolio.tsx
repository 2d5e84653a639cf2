/** Portfolio & performance: positions and exposure per bot (live via portfolio_state), returns 1d/7d/30d/all, drawdown, Sharpe. */
import type { Schemas } from "@gordon/manager-client";

import { ProblemView, Section } from "../components";
import { api } from "../lib/api";
import { fmtMoney, fmtNum, fmtPct, fmtQty, fmtTime } from "../lib/format";
import { useLive, useRead, useThrottled } from "../lib/hooks";
import { Link } from "../lib/router";

function Figures({ f }: { f: Schemas["PerformanceFigures"] }) {
  const items: [string, string][] = [["1 day", fmtPct(f.return1d)], ["7 days", fmtPct(f.return7d)], ["30 days", fmtPct(f.return30d)],
    ["all", fmtPct(f.returnAll)], ["max drawdown", fmtPct(f.maxDrawdown)], ["Sharpe", fmtNum(f.sharpe)], ["equity", fmtMoney(f.equity)], ["samples", String(f.samples)]];
  return <div className="stats">{items.map(([label, value]) => <div className="stat" key={label}><b>{value}</b><span>{label}</span></div>)}</div>;
}

export default function PortfolioPage() {
  const portfolio = useRead(() => api().GET("/portfolio"), []);
  const performance = useRead(() => api().GET("/performance"), []);
  const refresh = useThrottled(() => { portfolio.reload(); performance.reload(); }, 2000);
  useLive((events) => {
    if (events.some((e) => e.channel === "portfolio_state")) {
      refresh();
    }
  });
  const p = portfolio.data;
  return (
    <div className="stack">
      <Section title="Portfolio" actions={p && <span className="muted">as of {fmtTime(p.asOf)}</span>}>
        <ProblemView problem={portfolio.problem} />
        {p && (
          <>
            <div className="stats" data-testid="portfolio-totals">
              {([["equity", fmtMoney(p.total.equity)], ["cash", fmtMoney(p.total.cash)], ["net exposure", fmtMoney(p.total.exposure)],
                ["gross exposure", fmtMoney(p.total.grossExposure)], ["unrealized PnL", fmtMoney(p.total.unrealizedPnl)], ["positions", String(p.total.positions)]] as const)
                .map(([label, value]) => <div className="stat" key={label}><b>{value}</b><span>{label}</span></div>)}
            </div>
            <table className="tbl">
              <thead><tr><th scope="col">bot</th><th scope="col">mode</th><th scope="col">symbol</th><th scope="col">qty</th><th scope="col">avg entry</th><th scope="col">mark</th><th scope="col">exposure</th><th scope="col">unrealized</th><th scope="col">cash</th><th scope="col">live equity</th></tr></thead>
              <tbody>
                {p.bots.flatMap((b) => (b.positions.length ? b.positions : [null]).map((pos, i) => (
                  <tr key={`${b.botId}-${i}`}>
                    <td>{b.botId !== null ? <Link href={`/ui/bots/${b.botId}`}>{b.botName ?? `#${b.botId}`}</Link> : "—"}</td><td>{b.mode ?? "—"}</td>
                    <td>{pos?.symbol ?? "—"}</td><td className="num">{fmtQty(pos?.qty)}</td><td className="num">{fmtMoney(pos?.avgEntryPrice)}</td>
                    <td className="num">{fmtMoney(pos?.markPrice)}</td><td className="num">{fmtMoney(pos?.exposure)}</td><td className="num">{fmtMoney(pos?.unrealizedPnl)}</td>
                    <td className="num">{fmtMoney(pos?.cash ?? b.totals.cash)}</td><td className="num">{fmtMoney(b.liveRun?.equity ?? b.totals.equity)}</td>
                  </tr>
                )))}
              </tbody>
            </table>
            {p.bots.length === 0 && <p className="muted">No position yet.</p>}
          </>
        )}
      </Section>
      <Section title="Performance" actions={performance.data && <span className="muted">kinds {performance.data.kinds.join(", ")}</span>}>
        <ProblemView problem={performance.problem} />
        {performance.data && (
          <>
            <Figures f={performance.data.portfolio} />
            <table className="tbl" data-testid="performance">
              <thead><tr><th scope="col">bot</th><th scope="col">1d</th><th scope="col">7d</th><th scope="col">30d</th><th scope="col">all</th><th scope="col">max drawdown</th><th scope="col">Sharpe</th><th scope="col">equity</th></tr></thead>
              <tbody>{performance.data.bots.map((b) => (
                <tr key={b.botId}><td><Link href={`/ui/bots/${b.botId}`}>{b.botName}</Link></td><td className="num">{fmtPct(b.return1d)}</td><td className="num">{fmtPct(b.return7d)}</td>
                  <td className="num">{fmtPct(b.return30d)}</td><td className="num">{fmtPct(b.returnAll)}</td><td className="num">{fmtPct(b.maxDrawdown)}</td>
                  <td className="num">{fmtNum(b.sharpe)}</td><td className="num">{fmtMoney(b.equity)}</td></tr>
              ))}</tbody>
            </table>
          </>
        )}
      </Section>
    </div>
  );
}
