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
SUITE=trixie
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

log() { echo "install-compose: $*"; }
die() { echo "install-compose: ERROR: $*" >&2; exit 1; }

# --- 0. fast path --------------------------------------------------------------------------

command -v docker >/dev/null || { log "no docker CLI on PATH: nothing to plug into, skipping"; exit 0; }
if version=$(docker compose version 2>/dev/null) && [[ -n "$version" ]]; then
  log "already there: $version"
  exit 0
fi
[[ $EUID -eq 0 ]] || die "must run as root"
[[ "$(dpkg --print-architecture 2>/dev/null)" == amd64 ]] || die "only amd64 is supported (got $(dpkg --print-architecture 2>/dev/null || uname -m))"
for t in apt-get dpkg-deb gpg; do
  command -v "$t" >/dev/null || die "required tool '$t' not found"
done
[[ -r "$KEYRING" ]] || die "$KEYRING missing (install debian-archive-keyring)"
if ! gpg --no-default-keyring --keyring "$KEYRING" --list-keys 2>/dev/null | grep -q "(13/trixie)"; then
  die "$KEYRING has no Debian 13/trixie key; upgrade debian-archive-keyring (bookworm's 2023.3+deb12u2 or later has it)"
fi

# --- 1. the Debian mirror this machine already uses (as install-criu.sh finds it) -----------

mirror=""
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
  mirror=$(awk '
    BEGIN{RS=""}
    /(^|\n)Types:[^\n]*deb([ \t]|\n|$)/ && $0 !~ /Suites:[^\n]*-security/ {
      if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
        s=substr($0,RSTART,RLENGTH); sub(/^\n?URIs:[ \t]*/,"",s)
        if (s ~ /debian\/?$/) {print s; exit}
      }
    }' "$f")
  [[ -n "$mirror" ]] && break
done
if [[ -z "$mirror" ]]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    mirror=$(sed -e 's/\[[^]]*\]//' "$f" | awk '$1=="deb" && $3 !~ /-security/ && $2 ~ /debian\/?$/ {print $2; exit}')
    [[ -n "$mirror" ]] && break
  done
fi
shopt -u nullglob
[[ -n "$mirror" ]] || die "could not find a Debian archive mirror in /etc/apt/sources.list(.d)"
mirror=${mirror%/}

# --- 2. download docker-compose from trixie with private apt state --------------------------

work=$(mktemp -d /tmp/install-compose.XXXXXX)
chmod 0755 "$work"   # the _apt sandbox user must reach lists/ and debs/
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/etc" "$work/root"
: >"$work/status"
echo "deb [signed-by=$KEYRING] $mirror $SUITE main" >"$work/etc/sources.list"
if id _apt >/dev/null 2>&1; then chown -R _apt "$work/lists" "$work/cache" "$work/debs"; fi

APT=(apt-get -q
  -o Dir::Etc::SourceList="$work/etc/sources.list"
  -o Dir::Etc::SourceParts=/dev/null
  -o Dir::Etc::Preferences=/dev/null
  -o Dir::Etc::PreferencesParts=/dev/null
  -o Dir::State::Lists="$work/lists"
  -o Dir::State::status="$work/status"
  -o Dir::Cache="$work/cache"
  -o APT::Architecture=amd64
  -o APT::Architectures::=amd64
  -o Acquire::Languages=none
  -o Debug::NoLocking=1)

log "fetching docker-compose (Compose v2) from $SUITE at $mirror"
"${APT[@]}" update >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; die "apt-get update for $SUITE failed"; }
if grep -qE '^(W|E):' "$work/update.log"; then
  grep -E '^(W|E):' "$work/update.log" >&2
  die "apt-get update for $SUITE reported warnings/errors (signature or mirror problem?)"
fi
(cd "$work/debs" && "${APT[@]}" download docker-compose) >"$work/download.log" 2>&1 \
  || { cat "$work/download.log" >&2; die "apt-get download docker-compose failed"; }
deb=$(echo "$work"/debs/docker-compose_*.deb)
[[ -f "$deb" ]] || die "no docker-compose package was downloaded"
[[ "$(dpkg-deb -f "$deb" Version)" == 2.* ]] || die "$(basename "$deb") is not Compose v2"

# --- 3. install the one binary ---------------------------------------------------------------

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
