#!/usr/bin/env bash
# Builds the dashboard into site/dist/app, which `go build` then embeds in bin/pulse (site/embed.go):
# installs the pinned packages from package-lock.json (npm ci, offline first), type-checks (tsc) and
# runs vite build. `make build` and `make run` call it before go build; `go build` alone skips it and
# embeds the placeholder page site/dist/index.html.
set -euo pipefail
cd "$(dirname "$0")" # site/

if ! command -v npm >/dev/null; then
  echo "site/build.sh: npm not found; the dashboard needs Node 20 with npm (go build alone embeds a placeholder page)" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --prefer-offline --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  cat "$log" >&2
  echo "site/build.sh: npm ci failed in site/" >&2
  exit 1
fi
if ! node_modules/.bin/tsc --noEmit -p tsconfig.json || ! node_modules/.bin/tsc --noEmit -p tsconfig.node.json; then
  echo "site/build.sh: the dashboard does not type-check (tsc --noEmit -p site)" >&2
  exit 1
fi
if ! node_modules/.bin/vite build --logLevel warn >"$log" 2>&1; then
  cat "$log" >&2
  echo "site/build.sh: vite build failed in site/" >&2
  exit 1
fi
echo "site/build.sh: built the dashboard into site/dist/app" >&2
