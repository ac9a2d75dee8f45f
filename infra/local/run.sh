#!/usr/bin/env bash
# `make run`: a hub on the embedded local store and one local agent enrolled against it, in .run/.
# Idempotent: the first run initialises (signing key, admin token, agent enrollment); later runs reuse
# them. Ctrl-C stops both gracefully.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
run="$root/${RUN_DIR:-.run}"
pulse="$root/bin/pulse"
agent="$root/bin/pulse-agent"
addr="${PULSE_ADDR:-127.0.0.1:8080}"
hub="http://$addr"
mkdir -p "$run"
cd "$run"

if [ ! -s admin.token ]; then
  "$pulse" init --json > init.json
  token=$(sed -n 's/.*"adminToken": *"\([^"]*\)".*/\1/p' init.json)
  if [ -z "$token" ]; then
    echo "run.sh: pulse init printed no admin token; remove $run to start afresh" >&2
    exit 1
  fi
  umask 077
  printf '%s\n' "$token" > admin.token
  rm -f init.json
fi
export PULSE_TOKEN=$(cat admin.token) PULSE_HUB="$hub"

pids=()
stop() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "pulse: stopped (state kept in $run)"
}
trap stop INT TERM EXIT

"$pulse" serve --addr "$addr" > hub.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "$hub/healthz" >/dev/null 2>&1 && break
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "pulse serve failed to start:" >&2; cat hub.log >&2; exit 1; fi
  sleep 0.1
done

enroll=()
if [ ! -s agent-state/identity.json ]; then
  enroll=(--enroll-token "$("$pulse" enroll-token create --labels env=dev,role=local 2>/dev/null)")
fi
"$agent" run --hub "$hub" --state-dir agent-state --config "$root/infra/agent.example.toml" "${enroll[@]}" > agent.log 2>&1 &
pids+=($!)

cat <<MSG

  Pulse is running.
    hub        $hub   (API docs: $hub/docs)    log: $run/hub.log
    dashboard  $hub/   (sign in with the token in $run/admin.token)
    agent      one local agent (labels env=dev,role=local)       log: $run/agent.log

  In another shell:
    export PULSE_HUB=$hub PULSE_TOKEN=\$(cat $run/admin.token)
    bin/pulse agents
    bin/pulse run host_uptime --target all --wait
    bin/pulse run disk_usage --target env=dev --param path=/ --wait

  Ctrl-C stops both.
MSG
wait -n "${pids[@]}" || true
echo "pulse: a process exited; see $run/hub.log and $run/agent.log" >&2
