export default function PortfolioPage(_props: { ids?: number[] }) {
  return <section className="card"><h1>Portfolio</h1></section>;
}
