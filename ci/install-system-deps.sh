#!/usr/bin/env bash
# Install the Debian packages the real-parts tests need (dockerd, haproxy, busybox, prometheus, chromium,
# mmdebstrap (the offline base of the image tests), socat (relays into the test dockerd's namespace),
# docker-compose (validates deploy/compose.yaml);
# Node.js and npm for the TypeScript client and the OpenAPI lint, unless a node and an npm are already there).
# Idempotent: packages already installed are skipped; quiet unless something fails.
set -euo pipefail

PACKAGES=(docker.io haproxy busybox-static prometheus prometheus-alertmanager chromium mmdebstrap socat docker-compose)

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E bash "$0" "$@"
    fi
    echo "install-system-deps: must run as root (or with sudo available)" >&2
    exit 1
fi

missing=()
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)  # a NodeSource nodejs carries its own npm: never mix it with Debian's
fi
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Package lists are empty on a fresh image; refresh them only when something must be installed.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    apt-get update -qq >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
fi
echo "install-system-deps: installed ${missing[*]}"
