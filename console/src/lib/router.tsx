/** A tiny history router: every page has a URL (`/`, `/ui/bots/7`, `/ui/deploys`…), the server answers index.html. */
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

const location = () => window.location.pathname + window.location.search;

export function useLocation(): string {
  return useSyncExternalStore(subscribe, location);
}

export function navigate(to: string, replace = false): void {
  if (to === location()) {
    return;
  }
  if (replace) {
    window.history.replaceState(null, "", to);
  } else {
    window.history.pushState(null, "", to);
  }
  listeners.forEach((listener) => listener());
}

export type Route =
  | { page: "fleet" }
  | { page: "bot"; id: number }
  | { page: "new-bot" }
  | { page: "deploys" }
  | { page: "backtests"; ids: number[] }
  | { page: "sweeps"; id?: number }
  | { page: "portfolio" }
  | { page: "risk" }
  | { page: "ops" }
  | { page: "not-found"; path: string };

/** The page a location shows (pure, unit-tested). */
export function parseRoute(url: string): Route {
  const [path = "/", query = ""] = url.split("?");
  const clean = path.replace(/\/+$/, "") || "/";
  if (clean === "/" || clean === "/ui") {
    return { page: "fleet" };
  }
  if (clean === "/ui/bots/new") {
    return { page: "new-bot" };
  }
  const bot = /^\/ui\/bots\/(\d+)$/.exec(clean);
  if (bot?.[1]) {
    return { page: "bot", id: Number(bot[1]) };
  }
  if (clean === "/ui/backtests") {
    const ids = (new URLSearchParams(query).get("runs") ?? "").split(",").map(Number).filter((n) => Number.isInteger(n) && n > 0);
    return { page: "backtests", ids };
  }
  if (clean === "/ui/sweeps") {
    const id = Number(new URLSearchParams(query).get("id") ?? "");
    return Number.isInteger(id) && id > 0 ? { page: "sweeps", id } : { page: "sweeps" };
  }
  for (const page of ["deploys", "portfolio", "risk", "ops"] as const) {
    if (clean === `/ui/${page}`) {
      return { page };
    }
  }
  return { page: "not-found", path: clean };
}

export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const click = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={click} {...rest} />;
}
