"""The image's HEALTHCHECK: the manager's /healthz, or a bot container's /metrics (GORDON_BOT_ID set)."""

import os
import sys
import urllib.request


def main() -> int:
    if os.environ.get("GORDON_BOT_ID"):
        port = os.environ.get("GORDON_BOT_METRICS_PORT")
        if not port:
            return 0  # a bot without a metrics endpoint: nothing to probe, its process is the health
        url = f"http://127.0.0.1:{port}/metrics"
    else:
        port = os.environ.get("GORDON_MANAGER_BIND_ADDR", ":8083").rpartition(":")[2]
        url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            response.read()
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
