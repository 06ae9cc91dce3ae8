#!/usr/bin/env bash
# install-compose.sh — provide the `docker compose` CLI plugin (Compose v2), so that
# `docker compose -f compose/docker-compose.yml config` can validate the compose file.
#
# Debian 12 (bookworm) ships only Compose v1 (python, `docker-compose`); Debian 13 (trixie)
# ships Compose v2 as package `docker-compose`: one Go binary that needs nothing but
# glibc >= 2.34, which bookworm has. We download that package from trixie with apt against
# private lists (the InRelease signature is checked with the Debian archive keyring and the
# .deb against the signed checksums), unpack it, and install only its binary as
# /usr/local/lib/docker/cli-plugins/docker-compose, where
# the docker CLI looks for plugins. The system's apt sources, lists and dpkg status are never
# touched. No Docker engine is needed to validate a compose file.
#
# Idempotent and quiet: exits at once when `docker compose version` already answers.
# Run as root. Does nothing useful without a docker CLI, and says so.
set -euo pipefail

PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose   # a folder the docker CLI searches

log() { echo "install-compose: $*"; }
die() { echo "install-compose: ERROR: $*" >&2; exit 1; }
# shellcheck source=trixie-download.sh
source "$(dirname "$0")/trixie-download.sh"

# --- 0. fast path --------------------------------------------------------------------------

command -v docker >/dev/null || { log "no docker CLI on PATH: nothing to plug into, skipping"; exit 0; }
if version=$(docker compose version 2>/dev/null) && [[ -n "$version" ]]; then
  log "already there: $version"
  exit 0
fi
[[ $EUID -eq 0 ]] || die "must run as root"
[[ "$(dpkg --print-architecture 2>/dev/null)" == amd64 ]] || die "only amd64 is supported (got $(dpkg --print-architecture 2>/dev/null || uname -m))"

# --- 1. download docker-compose from trixie (scripts/trixie-download.sh) ----------------------

work=$(mktemp -d /tmp/install-compose.XXXXXX)
trap 'rm -rf "$work"' EXIT
trixie_download "$work" docker-compose
deb=$(echo "$work"/debs/docker-compose_*.deb)
[[ -f "$deb" ]] || die "no docker-compose package was downloaded"
[[ "$(dpkg-deb -f "$deb" Version)" == 2.* ]] || die "$(basename "$deb") is not Compose v2"

# --- 3. install the one binary ---------------------------------------------------------------

mkdir -p "$work/root"
dpkg-deb -x "$deb" "$work/root"
binary="$work/root/usr/libexec/docker/cli-plugins/docker-compose"
[[ -x "$binary" ]] || die "$(basename "$deb") has no usr/libexec/docker/cli-plugins/docker-compose"
if ldd "$binary" 2>&1 | grep -q 'not found'; then
  ldd "$binary" >&2
  die "the docker-compose binary needs libraries this system lacks"
fi
mkdir -p "$(dirname "$PLUGIN")"
tmp=$(mktemp "$(dirname "$PLUGIN")/.docker-compose.XXXXXX")
install -m 0755 "$binary" "$tmp"
mv -f "$tmp" "$PLUGIN"

version=$(docker compose version 2>&1) || die "docker compose does not answer after installing $PLUGIN: $version"
log "installed $(basename "$deb") as $PLUGIN: $version"
