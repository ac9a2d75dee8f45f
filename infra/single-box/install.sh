#!/usr/bin/env bash
# Pulse on one machine: MinIO, the hub and a local agent as sandboxed systemd services.
# `install.sh --help` says what it does; docs/self-hosting.md is the guide around it.
set -euo pipefail
umask 022

prog=install.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
  cat <<EOF
Usage: infra/single-box/install.sh [options]
       infra/single-box/install.sh --agent-only --hub URL --enroll-token TOKEN [options]

Installs Pulse on this machine, as root: MinIO (the bucket), the hub and a local agent, each as a
sandboxed systemd service under its own system user (minio, pulse, pulse-agent). Then it creates the
bucket, the hub's signing key and the first admin token (pulse init), and an enrollment token with
which the local agent enrolls, and enables and starts the three services.

  binaries     /usr/local/bin/{minio,pulse,pulse-agent}, copied from the files given (below)
  units        /etc/systemd/system/{minio,pulse,pulse-agent}.service (from infra/single-box/)
  config       /etc/minio/env          MinIO's address and generated root credentials (0600)
               /etc/pulse/pulse.toml   the hub's address and store URL
               /etc/pulse/env          the store credentials the hub uses (0600)
               /etc/pulse/admin.token  the first admin API token (0600)
               /etc/pulse-agent/agent.toml   the local agent's config (hub URL, a disk_usage command)
               /etc/pulse-agent/env    PULSE_ENROLL_TOKEN until the agent has enrolled (0600)
  state        /var/lib/minio/data     the bucket's data: back it up (docs/self-hosting.md)
               /var/lib/pulse/pulse-hub.key  the hub's signing key, never in the bucket: back it up
               /var/lib/pulse-agent    the agent's key and identity

Running it again is safe: it keeps the credentials, the key, the admin token and the agent's
enrollment (a token it finds used up or expired before the agent enrolled is replaced), replaces the
binaries and units, and restarts what changed. A config file that differs from what it would write is
kept, with the new version written beside it as FILE.new. Settings are changed in those files, and
the units with drop-ins (systemctl edit pulse); the units themselves are rewritten.

Where the binaries come from (each option defaults to the path in brackets):
  --pulse FILE         the hub and CLI: \`make build\` in the repository (bin/pulse, with the
                       dashboard; a plain \`go build ./functions/cmd/pulse\` serves a placeholder page)
                       [$repo/bin/pulse]
  --pulse-agent FILE   \`make build\` (bin/pulse-agent) [$repo/bin/pulse-agent]
  --minio FILE         MinIO, built from the Go module proxy at the version the tests pin:
                       \`integration-tests/tools/install.sh minio\` prints its path (~5 min the first
                       time, cached in ~/.cache/pulse-tools); or MinIO's own release binary
                       [\$PULSE_MINIO_BIN, else minio on PATH]

Options:
  --hub-addr HOST:PORT     where the hub listens [127.0.0.1:8080]; put a TLS proxy in front
  --minio-addr HOST:PORT   where MinIO listens [127.0.0.1:9000]
  --bucket NAME            the hub's bucket [pulse]
  --agent-labels K=V,...   the local agent's labels [role=hub]
  --agent-only             install only the agent, for another machine: needs --hub and, until the
                           agent has enrolled, --enroll-token (or \$PULSE_ENROLL_TOKEN)
  --hub URL                (--agent-only) the hub's URL as this machine reaches it
  --enroll-token TOKEN     (--agent-only) from \`pulse enroll-token create\`
  --prefix DIR             install under DIR instead of / (or \$PULSE_PREFIX): every path above,
                           and the paths written into the units and configs, start with DIR. For
                           tests and staging; needs --no-systemd
  --no-systemd             write the units but do not run systemctl; MinIO and the hub are started
                           here just long enough to create the bucket, key and tokens, then stopped,
                           and the systemctl commands are printed instead
  --no-users               create no system users and chown nothing to them (files stay root's;
                           the useradd commands are printed instead)
  -h, --help               this text
EOF
}

say() { printf '%s: %s\n' "$prog" "$*"; }
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
bad_usage() { printf '%s: %s (see %s --help)\n' "$prog" "$*" "$prog" >&2; exit 2; }

prefix=${PULSE_PREFIX:-/}
pulse_src=$repo/bin/pulse
agent_src=$repo/bin/pulse-agent
minio_src=${PULSE_MINIO_BIN:-}
hub_addr=127.0.0.1:8080
minio_addr=127.0.0.1:9000
bucket=pulse
agent_labels=role=hub
agent_only=0
hub_url=
enroll_token=
enroll_flag=0
use_systemd=1
use_users=1

declare -A given=()  # the options on the command line
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || bad_usage "$1 needs a value"; }
while [ $# -gt 0 ]; do
  given[$1]=1
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --prefix) need_arg "$@"; prefix=$2; shift 2 ;;
    --pulse) need_arg "$@"; pulse_src=$2; shift 2 ;;
    --pulse-agent) need_arg "$@"; agent_src=$2; shift 2 ;;
    --minio) need_arg "$@"; minio_src=$2; shift 2 ;;
    --hub-addr) need_arg "$@"; hub_addr=$2; shift 2 ;;
    --minio-addr) need_arg "$@"; minio_addr=$2; shift 2 ;;
    --bucket) need_arg "$@"; bucket=$2; shift 2 ;;
    --agent-labels) need_arg "$@"; agent_labels=$2; shift 2 ;;
    --agent-only) agent_only=1; shift ;;
    --hub) need_arg "$@"; hub_url=$2; shift 2 ;;
    --enroll-token) need_arg "$@"; enroll_token=$2; enroll_flag=1; shift 2 ;;
    --no-systemd) use_systemd=0; shift ;;
    --no-users) use_users=0; shift ;;
    --*=*) bad_usage "write ${1%%=*} VALUE, not ${1}" ;;
    *) bad_usage "unknown argument '$1'" ;;
  esac
done

# --- checking what was asked, before anything is touched ------------------------------------------

# Paths go into unit files, whose command lines split at spaces: only plain characters.
case "$prefix" in
  /*) ;;
  *) bad_usage "--prefix '$prefix': want an absolute path" ;;
esac
[[ "$prefix" =~ ^[A-Za-z0-9._/+-]+$ ]] || bad_usage "--prefix '$prefix': only letters, digits and . _ + - / (it is written into unit files)"
P=${prefix%/}
[ "$P" = "" ] || [ "$use_systemd" = 0 ] ||
  bad_usage "--prefix $prefix writes units where systemd does not look for them: add --no-systemd"

check_addr() { # FLAG HOST:PORT
  local port=${2##*:}
  [[ "$2" == *:* ]] && [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] &&
    [[ "${2%:*}" =~ ^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$ ]] ||
    bad_usage "$1 '$2': want HOST:PORT, e.g. 127.0.0.1:8080"
}
# dial_addr HOST:PORT: how a client on this machine reaches a listener on HOST:PORT.
dial_addr() {
  case "${1%:*}" in
    0.0.0.0 | "") echo "127.0.0.1:${1##*:}" ;;
    "[::]") echo "[::1]:${1##*:}" ;;
    *) echo "$1" ;;
  esac
}

if [ "$agent_only" = 1 ]; then
  [ -n "$hub_url" ] || bad_usage "--agent-only needs --hub URL (the hub as this machine reaches it)"
  [[ "$hub_url" =~ ^https?://[^[:space:]\"\\]+$ ]] || bad_usage "--hub '$hub_url': want an http:// or https:// URL"
  for opt in --pulse --minio --hub-addr --minio-addr --bucket --agent-labels; do
    [ -z "${given[$opt]:-}" ] || bad_usage "$opt is not for --agent-only (it installs no hub or MinIO; the agent's labels come with its enrollment token)"
  done
  [ "$enroll_flag" = 1 ] || enroll_token=${PULSE_ENROLL_TOKEN:-}
  [[ "$enroll_token" =~ ^[A-Za-z0-9_-]*$ ]] || bad_usage "--enroll-token: not a token (letters, digits, _ and - only)"
else
  [ -z "$hub_url" ] || bad_usage "--hub is for --agent-only (the local agent reaches the hub at --hub-addr)"
  [ "$enroll_flag" = 0 ] || bad_usage "--enroll-token is for --agent-only (this run makes the local agent's token)"
  check_addr --hub-addr "$hub_addr"
  check_addr --minio-addr "$minio_addr"
  [ "${hub_addr##*:}" != "${minio_addr##*:}" ] || bad_usage "--hub-addr and --minio-addr must use different ports"
  [[ "$bucket" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] ||
    bad_usage "--bucket '$bucket': want 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
  [[ "$agent_labels" =~ ^[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*)*$ ]] ||
    bad_usage "--agent-labels '$agent_labels': want k=v,k2=v2"
  hub_url=http://$(dial_addr "$hub_addr")
fi

check_bin() { # FLAG FILE HOW-TO-GET-IT
  [ -n "$2" ] || die "$1: no binary given and none found; $3"
  [ -f "$2" ] || die "$1 $2: no such file; $3"
  [ -x "$2" ] || die "$1 $2: not executable"
}
if [ -z "$minio_src" ]; then minio_src=$(command -v minio || true); fi
check_bin --pulse-agent "$agent_src" "build it with \`make build\` (bin/pulse-agent) or pass --pulse-agent FILE"
"$agent_src" version >/dev/null 2>&1 || die "--pulse-agent $agent_src: \`$agent_src version\` fails; is it pulse-agent for this machine?"
if [ "$agent_only" = 0 ]; then
  check_bin --pulse "$pulse_src" "build it with \`make build\` (bin/pulse) or pass --pulse FILE"
  "$pulse_src" version >/dev/null 2>&1 || die "--pulse $pulse_src: \`$pulse_src version\` fails; is it pulse for this machine?"
  check_bin --minio "$minio_src" "build it with \`integration-tests/tools/install.sh minio\` (it prints the path) and pass --minio FILE"
  "$minio_src" --version >/dev/null 2>&1 || die "--minio $minio_src: \`$minio_src --version\` fails; is it MinIO for this machine?"
fi

[ "$(id -u)" = 0 ] || die "run me as root (I create users, write /etc and /usr/local/bin and chown state directories)"
for tool in install cmp stat sed grep awk od timeout setpriv sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian's coreutils, util-linux, sed, grep and mawk provide what I use)"
done
[ "$use_users" = 0 ] || command -v useradd >/dev/null || die "useradd is missing (Debian's passwd package), or pass --no-users"
if [ "$use_systemd" = 1 ]; then
  command -v systemctl >/dev/null && [ -d /run/systemd/system ] ||
    die "systemd is not running here (no /run/systemd/system): add --no-systemd to install without enabling the services"
fi

# --- layout ------------------------------------------------------------------------------------------

bindir=$P/usr/local/bin
unitdir=$P/etc/systemd/system
etc_minio=$P/etc/minio
etc_pulse=$P/etc/pulse
etc_agent=$P/etc/pulse-agent
lib_minio=$P/var/lib/minio
lib_pulse=$P/var/lib/pulse
lib_agent=$P/var/lib/pulse-agent
key_file=$lib_pulse/pulse-hub.key
admin_file=$etc_pulse/admin.token

if [ "$agent_only" = 1 ]; then services=(pulse-agent); else services=(minio pulse pulse-agent); fi
for svc in "${services[@]}"; do
  [ -f "$here/$svc.service" ] || die "$here/$svc.service is missing: run me from infra/single-box/ in a checkout, where the units sit beside me"
done
declare -A changed=()  # service -> 1 when its binary, unit or config changed in this run

# owner USER: USER:USER, or root:root without the system users.
owner() { if [ "$use_users" = 1 ]; then echo "$1:$1"; else echo root:root; fi; }

# put_file PATH MODE OWNER SERVICE [replace] < content: writes a file we generate. A missing file is
# written; an equal one is kept; one that differs is kept and the new content goes to PATH.new,
# unless "replace" (files that are ours alone: units, the enrollment token's env).
put_file() {
  local path=$1 mode=$2 own=$3 svc=$4 policy=${5:-keep} tmp
  tmp=$(mktemp "$path.tmp.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  chown "$own" "$tmp"
  if [ ! -e "$path" ]; then
    mv -f "$tmp" "$path"
    say "wrote $path"
    changed[$svc]=1
  elif cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    if [ "$(stat -c '%a %U:%G' "$path")" != "${mode#0} $own" ]; then
      chmod "$mode" "$path"
      chown "$own" "$path"
      say "kept $path (set its mode $mode and owner $own)"
    fi
  elif [ "$policy" = replace ]; then
    mv -f "$tmp" "$path"
    say "updated $path"
    changed[$svc]=1
  else
    mv -f "$tmp" "$path.new"
    warn "$path differs from what this run would write: kept it, and wrote $path.new beside it (compare them; move it into place, or delete it)"
  fi
}

put_bin() { # SRC NAME SERVICE
  local dest=$bindir/$2
  if [ -e "$dest" ] && cmp -s "$1" "$dest"; then
    say "kept $dest (same as $1)"
  else
    # install(1) writes a new file and renames it over the old one: a running binary is not disturbed.
    install -m 0755 -o root -g root "$1" "$dest.tmp"
    mv -f "$dest.tmp" "$dest"
    say "installed $dest (from $1)"
    changed[$3]=1
  fi
}

# env_get FILE KEY: the value of KEY in an environment file (empty when absent).
env_get() { [ -f "$1" ] && sed -n "s/^$2=//p" "$1" | tail -n 1 || true; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# --- users and directories -----------------------------------------------------------------------

make_user() { # NAME HOME
  if id -u "$1" >/dev/null 2>&1; then
    say "user $1 exists"
  elif [ "$use_users" = 1 ]; then
    useradd --system --user-group --home-dir "$2" --no-create-home --shell /usr/sbin/nologin "$1"
    say "created system user $1"
  else
    say "--no-users: would run: useradd --system --user-group --home-dir $2 --no-create-home --shell /usr/sbin/nologin $1"
  fi
}

make_dir() { # PATH MODE OWNER
  if [ ! -d "$1" ]; then
    install -d -m "$2" -o "${3%:*}" -g "${3#*:}" "$1"
    say "made $1"
  else
    chmod "$2" "$1"
    chown "$3" "$1"
  fi
}

install -d -m 0755 "$bindir" "$unitdir"
if [ "$agent_only" = 0 ]; then
  make_user minio /var/lib/minio
  make_user pulse /var/lib/pulse
fi
make_user pulse-agent /var/lib/pulse-agent

# Config directories: root's, readable by the service's group (no secrets but in 0600 files).
if [ "$agent_only" = 0 ]; then
  make_dir "$etc_minio" 0750 "root:$(owner minio | cut -d: -f2)"
  make_dir "$etc_pulse" 0750 "root:$(owner pulse | cut -d: -f2)"
  make_dir "$lib_minio" 0700 "$(owner minio)"
  make_dir "$lib_minio/data" 0700 "$(owner minio)"
  make_dir "$lib_pulse" 0700 "$(owner pulse)"
fi
make_dir "$etc_agent" 0750 "root:$(owner pulse-agent | cut -d: -f2)"
make_dir "$lib_agent" 0700 "$(owner pulse-agent)"

# own_all DIR USER: what lies in a state directory is its service's (files put back from a backup as
# root, say). systemd fixes a state directory's ownership only when the directory itself is wrong.
own_all() {
  local n
  [ "$use_users" = 1 ] || return 0
  n=$(find "$1" ! -user "$2" -printf . -exec chown -h "$2:$2" {} + | wc -c)
  [ "$n" = 0 ] || say "made $2 the owner of $n files in $1 (put back as another user?)"
}
[ "$agent_only" = 1 ] || own_all "$lib_pulse" pulse
own_all "$lib_agent" pulse-agent

# --- binaries ------------------------------------------------------------------------------------

put_bin "$agent_src" pulse-agent pulse-agent
if [ "$agent_only" = 0 ]; then
  put_bin "$pulse_src" pulse pulse
  put_bin "$minio_src" minio minio
fi

# --- credentials and configuration ---------------------------------------------------------------

agent_enrolled=0
[ -s "$lib_agent/identity.json" ] && agent_enrolled=1

if [ "$agent_only" = 0 ]; then
  store_url="s3://$bucket?endpoint=http://$(dial_addr "$minio_addr")&region=us-east-1"
  minio_user=$(env_get "$etc_minio/env" MINIO_ROOT_USER)
  minio_pass=$(env_get "$etc_minio/env" MINIO_ROOT_PASSWORD)
  if [ -f "$etc_minio/env" ]; then
    [ -n "$minio_user" ] && [ -n "$minio_pass" ] ||
      die "$etc_minio/env has no MINIO_ROOT_USER or MINIO_ROOT_PASSWORD: MinIO's data needs the credentials it was made with; put them back (or remove the file and $lib_minio/data to start afresh)"
    say "kept MinIO's credentials in $etc_minio/env"
  else
    [ -z "$(ls -A "$lib_minio/data")" ] ||
      die "$lib_minio/data holds MinIO data but $etc_minio/env (its credentials) is missing: restore it from your backup (or move the data away to start afresh)"
    minio_user=pulse-$(random_hex 4)
    minio_pass=$(random_hex 24)
    say "generated MinIO credentials"
  fi
  put_file "$etc_minio/env" 0600 root:root minio <<EOF
# MinIO for Pulse, written by infra/single-box/install.sh. The credentials are MinIO's root user;
# /etc/pulse/env gives the hub the same.
MINIO_ROOT_USER=$minio_user
MINIO_ROOT_PASSWORD=$minio_pass
MINIO_ADDRESS=$minio_addr
EOF
  put_file "$etc_pulse/env" 0600 root:root pulse <<EOF
# The store credentials of the Pulse hub (MinIO's root user, from /etc/minio/env), written by
# infra/single-box/install.sh.
AWS_ACCESS_KEY_ID=$minio_user
AWS_SECRET_ACCESS_KEY=$minio_pass
EOF
  put_file "$etc_pulse/pulse.toml" 0640 "root:$(owner pulse | cut -d: -f2)" pulse <<EOF
# The Pulse hub's settings, written by infra/single-box/install.sh; every key is described in
# infra/pulse.example.toml. The store's credentials are in /etc/pulse/env.
addr = "$hub_addr"
store = "$store_url"

[log]
format = "json"
EOF
fi

put_file "$etc_agent/agent.toml" 0640 "root:$(owner pulse-agent | cut -d: -f2)" pulse-agent <<EOF
# The Pulse agent's settings, written by infra/single-box/install.sh; every key is described in
# infra/agent.example.toml. The agent keeps the hub's URL when it enrolls; this one is for the first
# start.
[agent]
hub = "$hub_url"

# A command of your own, to try: pulse run disk_usage --target all --param path=/ --wait
[exec.commands.disk_usage]
binary = "/usr/bin/df"
args = ["-h", "{{path}}"]
timeout = "30s"
description = "Disk usage of a mount point"
[exec.commands.disk_usage.params.path]
pattern = "/[a-zA-Z0-9/._-]*"
max_bytes = 256
required = true
EOF

# --- units -----------------------------------------------------------------------------------------

# Under a prefix, every path of ours in a unit (binaries, config, state) moves under it.
for svc in "${services[@]}"; do
  put_file "$unitdir/$svc.service" 0644 root:root "$svc" replace < <(
    sed -E "s#(^|[ =-])/(usr/local/bin|etc|var/lib)/(minio|pulse|pulse-agent)\b#\1$P/\2/\3#g" "$here/$svc.service")
done

# --- bringing the services up ----------------------------------------------------------------------

tmpdir=$(mktemp -d)
declare -A temp_pid=()
stop_temps() {
  local svc pid
  for svc in pulse minio; do
    pid=${temp_pid[$svc]:-}
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "temp_pid[$svc]"
    say "--no-systemd: stopped the $svc I had started"
  done
}
trap 'stop_temps; rm -rf "$tmpdir"' EXIT

# http_ok HOST:PORT PATH: a GET answers 200 (bash's /dev/tcp: no curl on a bare machine).
http_ok() {
  local host=${1%:*} port=${1##*:}
  host=${host#[}
  host=${host%]}
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$0" >&3 &&
    read -r _ code _ <&3 && [ "$code" = 200 ]' "$host" "$port" "$2" 2>/dev/null
}

# with_env VAR=VALUE... -- CMD...: execs CMD with exactly that environment, so call it in a subshell.
# The values are exported, never put on a command line, where any user could read a secret in
# /proc/PID/cmdline.
with_env() {
  local v
  while read -r v; do unset "$v" 2>/dev/null || true; done < <(compgen -e)
  while [ "$1" != -- ]; do export "${1?}"; shift; done
  shift
  exec "$@"
}

# run_unit SERVICE: runs the unit's ExecStart with its Environment=, EnvironmentFile= and
# WorkingDirectory=, as its User= (with the system users), in the background: what systemd would
# start, without the sandbox. Only for --no-systemd.
run_unit() {
  local svc=$1 unit=$unitdir/$1.service line f wd user
  local -a argv envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin) as=()
  read -r -a argv <<<"$(sed -n 's/^ExecStart=//p' "$unit")"
  wd=$(sed -n 's/^WorkingDirectory=//p' "$unit")
  user=$(sed -n 's/^User=//p' "$unit")
  envs+=("HOME=${wd:-/}")
  for line in $(sed -n 's/^Environment=//p' "$unit"); do envs+=("$line"); done
  while read -r f; do
    [ -f "${f#-}" ] || continue
    while IFS= read -r line; do envs+=("$line"); done < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "${f#-}")
  done < <(sed -n 's/^EnvironmentFile=//p' "$unit")
  [ "$use_users" = 1 ] && as=(setpriv "--reuid=$user" "--regid=$user" --init-groups)
  (cd "${wd:-/}" && with_env "${envs[@]}" -- "${as[@]}" "${argv[@]}") >>"$tmpdir/$svc.log" 2>&1 &
  temp_pid[$svc]=$!
}

# up SERVICE HOST:PORT PATH: makes sure the service runs and answers PATH with 200.
up() {
  local svc=$1 addr=$2 path=$3
  if [ "$use_systemd" = 1 ]; then
    systemctl enable --quiet "$svc.service"
    if [ -n "${changed[$svc]:-}" ]; then systemctl restart "$svc.service"; else systemctl start "$svc.service"; fi
    say "enabled and started $svc.service"
  elif http_ok "$addr" "$path"; then
    say "--no-systemd: $svc already answers at $addr; using it"
    return 0
  else
    run_unit "$svc"
    say "--no-systemd: started $svc from its unit's command line, for as long as I need it"
  fi
  for _ in $(seq 1 300); do
    http_ok "$addr" "$path" && return 0
    if [ -n "${temp_pid[$svc]:-}" ] && ! kill -0 "${temp_pid[$svc]}" 2>/dev/null; then
      die "$svc exited at start-up; its output:
$(tail -n 30 "$tmpdir/$svc.log")"
    fi
    sleep 0.1
  done
  if [ "$use_systemd" = 1 ]; then
    die "$svc does not answer at $addr after 30 s; see: journalctl -u $svc.service"
  fi
  die "$svc does not answer at $addr after 30 s; its output:
$(tail -n 30 "$tmpdir/$svc.log")"
}

# as_pulse: what runs a command as the hub's user (nothing: as root, without the system users).
as_pulse=()
[ "$use_users" = 0 ] || as_pulse=(setpriv --reuid=pulse --regid=pulse --init-groups)

if [ "$use_systemd" = 1 ]; then
  systemctl daemon-reload
else
  say "--no-systemd: would run: systemctl daemon-reload"
fi

if [ "$agent_only" = 0 ]; then
  minio_dial=$(dial_addr "$minio_addr")
  hub_dial=$(dial_addr "$hub_addr")
  admin_token=
  [ -s "$admin_file" ] && admin_token=$(tr -d '[:space:]' <"$admin_file")
  if [ ! -s "$key_file" ] && [ -d "$lib_minio/data/$bucket" ] && [ -n "$(ls -A "$lib_minio/data/$bucket")" ]; then
    die "the bucket $bucket holds a hub's state but the signing key $key_file is missing: restore it from your backup (docs/self-hosting.md), or move $lib_minio/data away to start afresh"
  fi

  if [ "$use_systemd" = 1 ] || [ ! -s "$key_file" ] || [ -z "$admin_token" ] || [ "$agent_enrolled" = 0 ]; then
    up minio "$minio_dial" /minio/health/live
    key_existed=0
    [ ! -s "$key_file" ] || key_existed=1
    # pulse init: the bucket, the signing key and the first admin token; a no-op once done.
    init_json=$(cd "$lib_pulse" && with_env "PATH=$PATH" "AWS_ACCESS_KEY_ID=$minio_user" "AWS_SECRET_ACCESS_KEY=$minio_pass" -- \
      "${as_pulse[@]}" "$bindir/pulse" init --json --store "$store_url" --key-file "$key_file") ||
      die "pulse init failed (above)"
    new_token=$(printf '%s\n' "$init_json" | sed -n 's/.*"adminToken": *"\([^"]*\)".*/\1/p')
    if printf '%s\n' "$init_json" | grep -q '"bucketCreated": *true'; then say "created the bucket $bucket"; fi
    if [ "$key_existed" = 1 ]; then
      say "pulse init: kept the signing key $key_file"
    else
      say "pulse init: made the signing key $key_file"
    fi
    if [ -n "$new_token" ]; then
      if [ -n "$admin_token" ]; then
        mv -f "$admin_file" "$admin_file.old"
        warn "the store had no operator token (a new or emptied bucket), so pulse init made a new admin token; the one $admin_file held is kept as $admin_file.old"
      fi
      admin_token=$new_token
      put_file "$admin_file" 0600 root:root pulse replace <<<"$admin_token"
      say "the first admin token is in $admin_file"
    elif [ -z "$admin_token" ]; then
      warn "the store already has operator tokens, so pulse init made no new one, and $admin_file is missing: put an admin token of yours there (mode 0600)"
    else
      say "kept the admin token in $admin_file"
    fi
    up pulse "$hub_dial" /healthz
  else
    say "kept the signing key $key_file and the admin token in $admin_file"
  fi

  # The local agent's enrollment token: kept while it can still be used, else a new one.
  if [ "$agent_enrolled" = 1 ]; then
    say "the local agent has enrolled ($lib_agent/identity.json); no enrollment token needed"
  else
    [ -n "$admin_token" ] || die "no admin token to create the local agent's enrollment token with: put one in $admin_file and run me again"
    hubcli() { (with_env "PATH=$PATH" "PULSE_HUB=http://$hub_dial" "PULSE_TOKEN=$admin_token" -- "$bindir/pulse" "$@"); }
    old=$(env_get "$etc_agent/env" PULSE_ENROLL_TOKEN)
    if [ -n "$old" ]; then
      id=$(printf '%s' "$old" | sha256sum | cut -c1-16)
      list=$(hubcli enroll-token list) || die "pulse enroll-token list failed (above)"
      if printf '%s\n' "$list" | awk -v id="$id" '$1 == id { for (i = 2; i <= NF; i++) if ($i == "valid") ok = 1 } END { exit !ok }'; then
        enroll_token=$old
        say "kept the local agent's enrollment token (id $id, still valid) in $etc_agent/env"
      else
        say "the enrollment token in $etc_agent/env (id $id) is used up, expired, revoked or unknown to this hub: making a new one"
      fi
    fi
    if [ -z "$enroll_token" ]; then
      enroll_token=$(hubcli enroll-token create --labels "$agent_labels" --uses 1 2>"$tmpdir/enroll.err") ||
        die "pulse enroll-token create failed: $(tail -n 1 "$tmpdir/enroll.err")"
      say "made an enrollment token for the local agent (labels $agent_labels, one use, valid 24 h)"
    fi
  fi
  stop_temps
fi

if [ "$agent_enrolled" = 1 ] && [ "$enroll_flag" = 1 ]; then
  say "the agent has enrolled already ($lib_agent/identity.json): --enroll-token is not needed, and not used"
fi
if [ "$agent_enrolled" = 0 ]; then
  [ -n "$enroll_token" ] || [ -n "$(env_get "$etc_agent/env" PULSE_ENROLL_TOKEN)" ] ||
    die "the agent has not enrolled and I have no enrollment token: pass --enroll-token TOKEN (pulse enroll-token create, on a machine with the CLI)"
  [ -n "$enroll_token" ] || enroll_token=$(env_get "$etc_agent/env" PULSE_ENROLL_TOKEN)
  put_file "$etc_agent/env" 0600 root:root pulse-agent replace <<EOF
# The enrollment token the agent uses on its first start (written by infra/single-box/install.sh;
# ignored once the agent has enrolled).
PULSE_ENROLL_TOKEN=$enroll_token
EOF
fi

if [ "$use_systemd" = 1 ]; then
  systemctl enable --quiet pulse-agent.service
  if [ -n "${changed[pulse-agent]:-}" ]; then systemctl restart pulse-agent.service; else systemctl start pulse-agent.service; fi
  say "enabled and started pulse-agent.service"
else
  say "--no-systemd: would run: systemctl enable --now ${services[*]/%/.service}"
fi

# --- what next -------------------------------------------------------------------------------------

cli=pulse
[ -z "$P" ] || cli=$bindir/pulse
echo
if [ "$agent_only" = 1 ]; then
  cat <<EOF
The Pulse agent is installed${P:+ under $P}; it enrolls with $hub_url on its first start.
  config   $etc_agent/agent.toml        state $lib_agent
  logs     journalctl -u pulse-agent
  check    pulse agents    (on a machine with the CLI and a token)
EOF
else
  cat <<EOF
Pulse is installed${P:+ under $P}.
  dashboard  http://$hub_dial/   sign in with the token in $admin_file
             (from elsewhere: put a TLS proxy in front, docs/self-hosting.md)
  hub        $etc_pulse/pulse.toml   key $key_file (back it up; it is never in the bucket)
  bucket     $store_url   data $lib_minio/data
  agent      labels $agent_labels   config $etc_agent/agent.toml
  logs       journalctl -u minio -u pulse -u pulse-agent

  export PULSE_HUB=http://$hub_dial PULSE_TOKEN=\$(cat $admin_file)
  $cli agents
  $cli run host_uptime --target all --wait
EOF
fi
if [ "$use_systemd" = 0 ]; then
  echo
  echo "Nothing is running: start the services with systemctl enable --now ${services[*]/%/.service}"
fi
