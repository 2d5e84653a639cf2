export default function BacktestsPage(_props: { ids?: number[] }) {
  return <section className="card"><h1>Backtests</h1></section>;
}
