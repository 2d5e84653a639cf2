export default function RiskPage(_props: { ids?: number[] }) {
  return <section className="card"><h1>Risk</h1></section>;
}
