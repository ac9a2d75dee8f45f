#!/usr/bin/env bash
# Checks the TypeScript types of the hub API, as `make test-ts` does: installs the pinned
# openapi-typescript and typescript from package-lock.json (npm ci), regenerates the types from
# openapi.yaml into a temporary file and fails if they differ from the committed ts/pulse-api.d.ts,
# then type-checks the .ts files that use them (tsc --noEmit).
#
#   openapi/ts/check.sh            check (exit 1 with a message when the types are stale)
#   openapi/ts/check.sh --write    regenerate ts/pulse-api.d.ts (what `make generate` runs)
set -euo pipefail
cd "$(dirname "$0")/.." # openapi/

committed=ts/pulse-api.d.ts
log=$(mktemp)
tmp=$(mktemp --suffix=.d.ts)
trap 'rm -f "$log" "$tmp"' EXIT

# Offline first: with a warm npm cache this needs no network.
if ! npm ci --prefer-offline --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  cat "$log" >&2
  echo "check.sh: npm ci failed in openapi/" >&2
  exit 1
fi

# generate OUT: the one command that makes the types. Fields with a default stay optional
# (--default-non-nullable=false): the hub leaves them out, e.g. a problem's "type".
generate() {
  if ! node_modules/.bin/openapi-typescript openapi.yaml --default-non-nullable=false --output "$1" >"$log" 2>&1; then
    cat "$log" >&2
    echo "check.sh: openapi-typescript failed on openapi/openapi.yaml" >&2
    exit 1
  fi
}

if [ "${1:-}" = "--write" ]; then
  generate "$committed"
  echo "wrote openapi/$committed" >&2
  exit 0
fi

generate "$tmp"
if ! cmp -s "$tmp" "$committed"; then
  diff -u "$committed" "$tmp" | head -40 >&2 || true
  echo "check.sh: openapi/$committed differs from what openapi-typescript generates from openapi/openapi.yaml; run \`make generate\` and commit the result" >&2
  exit 1
fi

if ! node_modules/.bin/tsc --noEmit -p ts/tsconfig.json; then
  echo "check.sh: the TypeScript that uses the API types does not type-check (tsc --noEmit -p openapi/ts)" >&2
  exit 1
fi
