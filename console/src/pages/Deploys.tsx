export default function DeploysPage(_props: { ids?: number[] }) {
  return <section className="card"><h1>Deploys</h1></section>;
}
