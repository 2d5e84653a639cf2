import { lazy, Suspense, useEffect, useState } from "react";

import { ConnectionIndicator, TokenDialog } from "./components";
import { currentTokens, onAuthNeeded, wsUrl } from "./lib/api";
import { loadFleet } from "./lib/data";
import { fleet } from "./lib/fleet";
import { hub } from "./lib/live";
import { risk } from "./lib/risk";
import { Link, parseRoute, useLocation, type Route } from "./lib/router";
import { FleetPage } from "./pages/Fleet";

// Every page but the fleet is its own chunk: the first load carries the fleet only.
const BotPage = lazy(() => import("./pages/Bot"));
const BotFormPage = lazy(() => import("./pages/BotForm"));
const DeploysPage = lazy(() => import("./pages/Deploys"));
const BacktestsPage = lazy(() => import("./pages/Backtests"));
const SweepsPage = lazy(() => import("./pages/Sweeps"));
const PortfolioPage = lazy(() => import("./pages/Portfolio"));
const RiskPage = lazy(() => import("./pages/Risk"));
const OpsPage = lazy(() => import("./pages/Ops"));

const NAV: { href: string; label: string; pages: Route["page"][] }[] = [
  { href: "/", label: "Fleet", pages: ["fleet", "bot", "new-bot"] },
  { href: "/ui/deploys", label: "Deploys", pages: ["deploys"] },
  { href: "/ui/backtests", label: "Backtests", pages: ["backtests"] },
  { href: "/ui/sweeps", label: "Sweeps", pages: ["sweeps"] },
  { href: "/ui/portfolio", label: "Portfolio", pages: ["portfolio"] },
  { href: "/ui/risk", label: "Risk", pages: ["risk"] },
  { href: "/ui/ops", label: "Data & ops", pages: ["ops"] },
];

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "fleet":
      return <FleetPage />;
    case "bot":
      return <BotPage key={route.id} id={route.id} />;
    case "new-bot":
      return <BotFormPage />;
    case "deploys":
      return <DeploysPage />;
    case "backtests":
      return <BacktestsPage ids={route.ids} />;
    case "sweeps":
      return <SweepsPage id={route.id} />;
    case "portfolio":
      return <PortfolioPage />;
    case "risk":
      return <RiskPage />;
    case "ops":
      return <OpsPage />;
    case "not-found":
      return <section className="card"><h1>Not found</h1><p>No page at <code>{route.path}</code>. <Link href="/">Fleet</Link></p></section>;
  }
}

export function App() {
  const location = useLocation();
  const route = parseRoute(location);
  const [auth, setAuth] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);

  useEffect(() => {
    hub.start(wsUrl(), currentTokens().read || undefined);
    const offBatch = hub.subscribe((events) => {
      fleet.apply(events);
      risk.apply(events);
    });
    const offSnapshot = hub.onBreakerSnapshot((items) => risk.snapshot(items));
    const reload = () => loadFleet().then(() => setLoadError(null), (error: unknown) => {
      setLoadError(error instanceof Error ? error.message : (error as { detail?: string }).detail ?? "could not read /bots");
    });
    const offResync = hub.onResync(() => void reload());
    void reload();
    const offAuth = onAuthNeeded((reason) => {
      setAuth(reason.write ? `${reason.status}: ${reason.detail} — this action needs the operator token.` : `${reason.status}: ${reason.detail}`);
    });
    return () => {
      offBatch();
      offSnapshot();
      offResync();
      offAuth();
      hub.stop();
    };
  }, []);

  const current = NAV.find((item) => item.pages.includes(route.page));
  return (
    <div className="app">
      <header className="top">
        <Link href="/" className="brand">Gordon</Link>
        <nav aria-label="Pages">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={item === current ? "page" : undefined}>{item.label}</Link>
              </li>
            ))}
          </ul>
        </nav>
        <ConnectionIndicator />
        <button type="button" onClick={() => setAuth("")} data-testid="token-button">
          {currentTokens().operator ? "Token ✓" : "Enter token"}
        </button>
      </header>
      <main>
        {loadError && <p className="problem" role="alert">Could not read the fleet: {loadError}</p>}
        <Suspense fallback={<p className="muted">Loading…</p>}>
          <Page route={route} />
        </Suspense>
      </main>
      {auth !== null && (
        <TokenDialog
          reason={auth}
          onDone={(saved) => {
            setAuth(null);
            if (saved) {
              hub.start(wsUrl(), currentTokens().read || undefined);
              void loadFleet().then(() => setLoadError(null), () => undefined);
            }
          }}
        />
      )}
    </div>
  );
}
