#!/usr/bin/env bash
# Installs every system dependency OMX needs, idempotently: the Debian packages, then a CRIU >= 4
# (scripts/install-criu.sh) and the docker compose plugin that validates compose/ (scripts/install-compose.sh).
# Run as root on Debian 12 or later. Re-running does nothing new.
set -euo pipefail

log() { echo "setup: $*"; }
[[ $EUID -eq 0 ]] || { echo "setup: run as root (sudo $0)" >&2; exit 1; }

packages=(
  pkg-config libuv1-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev
  libfuse3-dev fuse3 iproute2 debian-archive-keyring gpg
  protobuf-compiler python3-protobuf python3-yaml stress-ng procps psmisc tmux gcc util-linux
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "Debian packages already installed"
fi

command -v swift >/dev/null || { echo "setup: no swift on PATH (Swift 6 toolchain required, see README)" >&2; exit 1; }

"$(dirname "$0")/install-criu.sh"
"$(dirname "$0")/install-compose.sh"
log "done"
