/// <reference types="vitest" />
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// The typed client is consumed from its sources (clients/ts/src): types and createClient/connectLive
// come only from there. Its one runtime dependency, openapi-fetch, resolves from this package.
export default defineConfig({
  base: "/ui/",
  resolve: {
    alias: {
      "@gordon/manager-client": here("../clients/ts/src/index.ts"),
      "openapi-fetch": here("./node_modules/openapi-fetch"),
    },
  },
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    port: 5173,
    proxy: {
      "^/(bots|runs|bff|portfolio|performance|strategies|backtests|deploys|risk|data|source-health|healthz|readyz|overlays|exchange)": "http://127.0.0.1:8083",
      "/ws": { target: "ws://127.0.0.1:8083", ws: true },
    },
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.ts"],
  },
});
