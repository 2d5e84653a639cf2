export default function OpsPage(_props: { ids?: number[] }) {
  return <section className="card"><h1>Ops</h1></section>;
}
