#!/usr/bin/env bash
# Installs the S3 servers the conformance suite and end-to-end tests run against (MinIO, versitygw and
# SeaweedFS's weed), pinned, from the Go module proxy, and caches them outside the work tree so a fresh
# clone on the same machine reuses them. SeaweedFS's module has replace directives, which `go install`
# refuses: its source is fetched with `go mod download` and `go build ./weed` runs in a writable copy.
# `docker` instead installs Debian's Docker daemon and static busybox (the container integration's
# tests run a private dockerd and build their image from busybox), and `prometheus` Debian's Prometheus
# (the monitoring tests start their own), and `chromium` Debian's Chromium (the dashboard's Playwright
# test drives it; Playwright's own browser download is never used), and `systemd` Debian's systemd
# package for systemd-analyze (the single-box tests verify and rate infra/single-box's units with it;
# no running systemd is needed), with apt-get, as root, once.
#
#   integration-tests/tools/install.sh [minio|versitygw|seaweedfs|all|docker|prometheus|chromium|systemd]
#
# Prints the absolute path of each binary on stdout (one per line, in the order asked); progress goes
# to stderr. PULSE_TOOLS_DIR overrides the cache directory (default: $XDG_CACHE_HOME/pulse-tools or
# ~/.cache/pulse-tools).
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_MODULE=github.com/versity/versitygw/cmd/versitygw
VERSITYGW_VERSION=v1.8.0
# weed 4.53 (what `weed version` reports for this module version).
SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6

cache="${PULSE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pulse-tools}"

# install NAME MODULE VERSION: builds MODULE@VERSION into its own versioned directory unless it is
# already there, so bumping a version never reuses a stale binary.
install_one() {
  local name=$1 module=$2 version=$3
  local dir="$cache/$name-$version"
  local bin="$dir/$name"
  if [ ! -x "$bin" ]; then
    echo "install.sh: building $module@$version (first time only; minio takes ~5 min, versitygw ~1.5 min)" >&2
    mkdir -p "$dir.tmp"
    # CGO off: both servers are pure Go, and a static binary survives a libc upgrade on the machine.
    GOBIN="$dir.tmp" CGO_ENABLED=0 GOFLAGS=-mod=mod go install "$module@$version" >&2
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "install.sh: cached $bin" >&2
  fi
  echo "$bin"
}

# install_seaweedfs: SeaweedFS's weed, built from its module's source: `go install` refuses a module
# whose go.mod has replace directives, so the module is downloaded into the module cache, copied out
# (the cache is read-only) and `go build ./weed` runs in the copy, which honours them.
install_seaweedfs() {
  local dir="$cache/seaweedfs-$SEAWEEDFS_VERSION"
  local bin="$dir/weed"
  if [ ! -x "$bin" ]; then
    echo "install.sh: building $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION ./weed (first time only; ~13 min on two shared cores, ~1.5 min when Go's build cache already has its packages)" >&2
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    local src
    # Outside any module (the work tree's go.mod and go.sum stay untouched).
    src=$(cd "$dir.tmp" && GOWORK=off GOFLAGS= go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    if [ -z "$src" ] || [ ! -d "$src/weed" ]; then
      echo "install.sh: go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION gave no source directory" >&2
      exit 1
    fi
    cp -r "$src" "$dir.tmp/src"
    chmod -R u+w "$dir.tmp/src"
    # CGO off, as for the others: a static binary; -mod=mod lets go.sum gaps be filled from the proxy.
    (cd "$dir.tmp/src" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$dir.tmp/weed" ./weed) >&2
    rm -rf "$dir.tmp/src"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "install.sh: cached $bin ($("$bin" version 2>/dev/null | head -n 1))" >&2
  fi
  echo "$bin"
}

# install_docker: dockerd and a static /usr/bin/busybox from Debian (docker.io, busybox-static) unless
# both are there; prints the dockerd path.
install_docker() {
  local dockerd
  dockerd=$(command -v dockerd || true)
  if [ -z "$dockerd" ] || ! static_busybox; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: docker: dockerd or a static /usr/bin/busybox is missing, and installing them (apt-get install docker.io busybox-static) needs root" >&2
      exit 1
    fi
    echo "install.sh: apt-get install docker.io busybox-static (first time only, ~15 s)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io busybox-static >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io busybox-static >&2; }
    dockerd=$(command -v dockerd)
    static_busybox || { echo "install.sh: /usr/bin/busybox is still not statically linked" >&2; exit 1; }
  fi
  echo "$dockerd"
}

# static_busybox: /usr/bin/busybox exists and has no ELF interpreter (busybox-static, not busybox).
static_busybox() {
  [ -x /usr/bin/busybox ] || return 1
  ! LC_ALL=C od -An -c -N 4096 /usr/bin/busybox | tr -d ' \n' | grep -q 'ld-linux'
}

# install_prometheus: Debian's prometheus unless it is there (the monitoring tests start their own, on
# a loopback port with a generated config; the package's service is not used); prints its path.
install_prometheus() {
  local bin
  bin=$(command -v prometheus || true)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: prometheus is missing, and installing it (apt-get install prometheus) needs root" >&2
      exit 1
    fi
    echo "install.sh: apt-get install prometheus (first time only, ~15 s)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >&2; }
    bin=$(command -v prometheus)
  fi
  echo "$bin"
}

# install_chromium: Debian's chromium unless it is there (the dashboard's Playwright test launches it
# by path, /usr/bin/chromium); prints its path.
install_chromium() {
  local bin=/usr/bin/chromium
  if [ ! -x "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: chromium is missing, and installing it (apt-get install chromium) needs root" >&2
      exit 1
    fi
    echo "install.sh: apt-get install chromium (first time only, ~30 s)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
    [ -x "$bin" ] || { echo "install.sh: apt-get installed chromium but $bin is not there" >&2; exit 1; }
  fi
  echo "$bin"
}

# install_systemd: Debian's systemd package unless systemd-analyze is there (infra/single-box's tests
# run `systemd-analyze verify` and `security --offline=true` on unit files; nothing is started); prints
# its path.
install_systemd() {
  local bin
  bin=$(command -v systemd-analyze || true)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "install.sh: systemd-analyze is missing, and installing it (apt-get install systemd) needs root" >&2
      exit 1
    fi
    echo "install.sh: apt-get install systemd (first time only, ~15 s)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd >&2; }
    bin=$(command -v systemd-analyze) || { echo "install.sh: apt-get installed systemd but systemd-analyze is not on PATH" >&2; exit 1; }
  fi
  echo "$bin"
}

if [ "${1:-}" = systemd ]; then
  install_systemd
  exit 0
fi
if [ "${1:-}" = chromium ]; then
  install_chromium
  exit 0
fi
if [ "${1:-}" = docker ]; then
  install_docker
  exit 0
fi
if [ "${1:-}" = prometheus ]; then
  install_prometheus
  exit 0
fi

mkdir -p "$cache"
# One build at a time: parallel test packages may all ask for the same binary on a fresh machine.
exec 9>"$cache/.lock"
flock 9

what="${1:-all}"
case "$what" in
  minio) install_one minio "$MINIO_MODULE" "$MINIO_VERSION" ;;
  versitygw) install_one versitygw "$VERSITYGW_MODULE" "$VERSITYGW_VERSION" ;;
  seaweedfs) install_seaweedfs ;;
  all)
    install_one minio "$MINIO_MODULE" "$MINIO_VERSION"
    install_one versitygw "$VERSITYGW_MODULE" "$VERSITYGW_VERSION"
    install_seaweedfs
    ;;
  *) echo "install.sh: unknown tool '$what' (want minio, versitygw, seaweedfs, all, docker, prometheus, chromium or systemd)" >&2; exit 2 ;;
esac
